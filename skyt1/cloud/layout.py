"""How vLLM should split a model over a node's GPUs: tensor parallelism (TP) from the model's size and the
GPU's memory, data parallelism (DP) for the rest of the node.

Per GPU, vLLM gets `gpu_memory_utilization` x the GPU's memory. It holds 1/TP of the weights, a reserve for
activations and CUDA graphs, and the KV cache in what remains. One token of KV cache costs
2 (K and V) x layers x KV heads x head dim x 2 bytes (bf16), split over the TP ranks. vLLM refuses to start
unless the cache holds one sequence of `max_model_len` tokens; continuous batching needs many more for
throughput, so skyt1 asks for at least MIN_SEQUENCES full-length sequences per replica. The smallest TP that
gives that wins (fewer, larger replicas waste GPUs on communication), and DP = GPUs / TP.

Example, Qwen2.5-32B (bf16) on an 80 GiB H100 at utilization 0.9 (72 GiB), 32,768-token sequences:
weights 61.1 GiB, KV 256 KiB per token, 8 GiB per sequence.
  TP=1: 72 - 61.1 - 4 (reserve) = 6.9 GiB of cache: 0.9 sequences, vLLM cannot start.
  TP=2: 72 - 30.5 - 4 = 37.5 GiB of cache, 4 GiB per sequence per GPU: 9.4 sequences. TP=2 x DP=4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

GIB = 1024**3
RESERVE_GIB = 4.0  # activations, CUDA graphs and non-torch memory of one vLLM rank (an estimate)
MIN_SEQUENCES = 8  # full-length sequences the KV cache must hold per replica
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "auto": 2}


class LayoutError(ValueError):
    """A layout that cannot work; the message says why and what would."""


@dataclass(frozen=True)
class Arch:
    """What the memory arithmetic needs of a model (from its config.json)."""

    params: float
    layers: int
    kv_heads: int
    head_dim: int
    max_position: int
    source: str

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


# config.json of the models the published recipe uses (Qwen2.5-32B-Instruct and QwQ-32B-Preview share the
# Qwen2.5-32B architecture), for a dry run without the hub.
KNOWN = {
    "Qwen/Qwen2.5-32B-Instruct": Arch(32.8e9, 64, 8, 128, 32768, "Qwen/Qwen2.5-32B-Instruct config.json"),
    "Qwen/QwQ-32B-Preview": Arch(32.8e9, 64, 8, 128, 32768, "Qwen/QwQ-32B-Preview config.json"),
    "NovaSky-AI/Sky-T1-32B-Preview": Arch(32.8e9, 64, 8, 128, 32768, "NovaSky-AI/Sky-T1-32B-Preview config.json"),
}

# GPU memory in GiB by SkyPilot accelerator name, for when no catalog is at hand.
GPU_GIB = {"H100": 80.0, "H100-MEGA": 80.0, "H200": 141.0, "A100-80GB": 80.0, "A100": 40.0, "L40S": 48.0,
           "L4": 24.0, "A10G": 24.0, "A10": 24.0}


def arch_from_config(config: dict, params: float | None, source: str) -> Arch:
    text = config.get("text_config") or config
    heads = int(text["num_attention_heads"])
    head_dim = int(text.get("head_dim") or text["hidden_size"] // heads)
    if params is None:  # embeddings + per-layer attention and MLP weights (no biases): close enough for memory
        h, inter, vocab, n = text["hidden_size"], text["intermediate_size"], text["vocab_size"], text["num_hidden_layers"]
        kv = int(text.get("num_key_value_heads") or heads) * head_dim
        per_layer = h * (heads * head_dim) * 2 + h * kv * 2 + 3 * h * inter
        params = float(vocab * h * (1 if text.get("tie_word_embeddings") else 2) + n * per_layer)
    return Arch(float(params), int(text["num_hidden_layers"]), int(text.get("num_key_value_heads") or heads),
                head_dim, int(text.get("max_position_embeddings") or 0), source)


def model_arch(model: str, params: float | None = None) -> Arch:
    """The model's architecture: its config.json when it is a local directory or reachable on the hub, else
    the table above."""
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return arch_from_config(json.loads((path / "config.json").read_text()), params, str(path / "config.json"))
    if model in KNOWN:
        known = KNOWN[model]
        return known if params is None else replace(known, params=params)
    try:
        from huggingface_hub import hf_hub_download

        cfg = hf_hub_download(model, "config.json")
    except Exception as e:  # offline, gated or unknown: say so, with the way out
        raise LayoutError(f"cannot read {model}'s config.json ({type(e).__name__}); run once online or use a "
                          "local model directory") from None
    return arch_from_config(json.loads(Path(cfg).read_text()), params, f"{model} config.json")


@dataclass(frozen=True)
class Fit:
    tp: int
    dp: int
    weights_gib: float  # per GPU
    cache_gib: float  # per GPU, after weights and reserve
    sequences: float  # full-length sequences the cache holds per replica

    def describe(self, max_len: int) -> str:
        return (f"TP={self.tp} x DP={self.dp}: {self.weights_gib:.1f} GiB of weights and "
                f"{self.cache_gib:.1f} GiB of KV cache per GPU, {self.sequences:.1f} sequences of {max_len:,} tokens")


def fit(arch: Arch, tp: int, gpus: int, gpu_gib: float, max_len: int, *, dtype_bytes: int = 2,
        utilization: float = 0.9) -> Fit:
    weights = arch.params * dtype_bytes / GIB / tp
    cache = gpu_gib * utilization - weights - RESERVE_GIB
    per_sequence = arch.kv_bytes_per_token(dtype_bytes) * max_len / GIB / tp
    return Fit(tp, gpus // tp, weights, cache, max(cache, 0.0) / per_sequence)


def choose(arch: Arch, gpus: int, gpu_gib: float, max_len: int, *, dtype_bytes: int = 2,
           utilization: float = 0.9) -> Fit:
    """The smallest TP (dividing the GPUs and the KV heads) whose cache holds MIN_SEQUENCES sequences."""
    options = [tp for tp in (1, 2, 4, 8, 16) if tp <= gpus and gpus % tp == 0 and arch.kv_heads % tp == 0]
    fits = [fit(arch, tp, gpus, gpu_gib, max_len, dtype_bytes=dtype_bytes, utilization=utilization) for tp in options]
    for f in fits:
        if f.sequences >= MIN_SEQUENCES:
            return f
    best = fits[-1] if fits else None
    raise LayoutError(f"no layout of {gpus} x {gpu_gib:g} GiB GPUs holds {MIN_SEQUENCES} sequences of {max_len:,} "
                      f"tokens (best: {best.describe(max_len) if best else 'none'}); use larger or more GPUs, or "
                      "a smaller max_model_len")


def check(engine, arch: Arch, gpus: int, gpu_gib: float, phase: str) -> tuple[Fit, list[str]]:
    """The layout skyt1 would choose for `engine` on `gpus` GPUs, and what is wrong with the engine's own."""
    max_len = engine.max_model_len or arch.max_position
    dtype_bytes = DTYPE_BYTES.get(engine.dtype, 2)
    best = choose(arch, gpus, gpu_gib, max_len, dtype_bytes=dtype_bytes, utilization=engine.gpu_memory_utilization)
    tp, dp = engine.tensor_parallel_size, engine.data_parallel_size
    problems = []
    if tp * dp != gpus:
        problems.append(f"{phase}: tensor_parallel_size {tp} x data_parallel_size {dp} = {tp * dp} GPUs, but the "
                        f"task gives {gpus}; use {best.describe(max_len).split(':')[0]}")
    ours = fit(arch, tp, gpus, gpu_gib, max_len, dtype_bytes=dtype_bytes, utilization=engine.gpu_memory_utilization)
    if ours.sequences < 1:
        problems.append(f"{phase}: TP={tp} leaves {ours.cache_gib:.1f} GiB of KV cache per GPU, less than one "
                        f"sequence of {max_len:,} tokens (vLLM will not start); use {best.describe(max_len)}")
    elif ours.sequences < MIN_SEQUENCES:
        problems.append(f"{phase}: TP={tp} leaves room for {ours.sequences:.1f} sequences of {max_len:,} tokens "
                        f"per replica (skyt1 asks >= {MIN_SEQUENCES} for throughput); use {best.describe(max_len)}")
    return best, problems
