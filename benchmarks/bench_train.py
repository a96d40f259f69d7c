"""Training throughput of `skyt1 train` (LlamaFactory under skyt1's launcher and checkpoint hygiene).

CPU (default): the tiny random Qwen2 with the rendered config (deepspeed none), against a baseline of plain
`llamafactory-cli train` on the same YAML in the same run: tokens/s of both and skyt1's wall-time overhead.
The MFU formula printed is what --gpu applies: 6 * N * tokens/s / peak (N = parameters; attention FLOPs
left out, as in the cost model).

--gpu: a randomly initialised Qwen2.5-1.5B-shaped model at cutoff 16384, bf16, for zero3 and zero3_offload;
tokens/s per GPU over the steps after the first, and MFU against --peak-tflops (H100/H200 dense bf16: 989).

Prints ONE JSON line.  python benchmarks/bench_train.py [--gpu] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
QWEN25_15B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True)


def _rows(n: int, words: int) -> list[dict]:
    return [{"system": "Think step by step.", "conversations": [
        {"from": "user", "value": f"Problem {i}: what is {i} + {i}?"},
        {"from": "assistant", "value": " ".join(f"step {j} adds {i} and {j % 10}." for j in range(words))}]}
        for i in range(n)]


def _assembled(root: Path, rows: list[dict]):
    from skyt1.store import RunDir

    run = RunDir(root)
    ph = run.phase("assemble")
    ph.write_text("train.json", json.dumps(rows))
    ph.write_manifest(recipe_digest="bench", inputs={}, counts={"rows": len(rows)}, started_at=time.time())
    return run


def _params(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in model_dir.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            total += sum(math.prod(st.get_slice(k).get_shape()) for k in st.keys())
    return total


def _throughput(output_dir: Path, skip_first: bool) -> float:
    """Tokens/s from LlamaFactory's per-step log (optionally leaving out the warm-up step)."""
    entries = [json.loads(x) for x in (output_dir / "trainer_log.jsonl").read_text().splitlines() if x.strip()]
    entries = [e for e in entries if "total_tokens" in e and "elapsed_time" in e]
    if skip_first and len(entries) > 2:
        first, last = entries[0], entries[-1]
        return (last["total_tokens"] - first["total_tokens"]) / max(1e-9, _seconds(last) - _seconds(first))
    res = json.loads((output_dir / "train_results.json").read_text())
    return res["num_input_tokens_seen"] / res["train_runtime"]


def _seconds(entry: dict) -> float:
    h, m, s = (int(x) for x in entry["elapsed_time"].split(":"))
    return h * 3600 + m * 60 + s


def cpu(steps: int) -> dict:
    from skyt1.recipe import load_recipe
    from skyt1.tiny_model import build_tiny_model
    from skyt1.training import train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_tiny_model(tmp / "model", seed=0)
        n_params = _params(model)
        run = _assembled(tmp / "run", _rows(64, 40))
        recipe = load_recipe(REPO / "recipes" / "tiny.yaml", {
            "train.base_model": str(model), "train.max_steps": steps, "train.save_steps": max(2, steps // 4),
            "train.deepspeed": "none", "train.gpus_per_node": 1})
        t0 = time.time()
        manifest = train.run(recipe, run, progress=False)
        skyt1_wall = time.time() - t0
        out = run.local_path("train/checkpoints")
        skyt1_tps = _throughput(out, skip_first=False)

        # Baseline: plain llamafactory-cli on the same arguments (stock `qwen` template, fresh output dir).
        args = json.loads(json.dumps(manifest["config"]["train_args"]))
        base_out = tmp / "baseline"
        args.update(template="qwen", output_dir=str(base_out), tokenized_path=str(tmp / "baseline-tok"))
        cfg = tmp / "baseline.yaml"
        cfg.write_text(json.dumps(args))  # JSON is YAML
        t0 = time.time()
        subprocess.run([str(Path(sys.executable).parent / "llamafactory-cli"), "train", str(cfg)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base_wall = time.time() - t0
        base_tps = _throughput(base_out, skip_first=False)
    return {
        "mode": "cpu", "machine": "2-core x86_64 CPU VM, 24 GiB, no GPU", "model_params": n_params, "steps": steps,
        "tokens_seen": manifest["counts"]["tokens_seen"],
        "skyt1_tokens_per_s": round(skyt1_tps, 1), "baseline_llamafactory_cli_tokens_per_s": round(base_tps, 1),
        "skyt1_wall_s": round(skyt1_wall, 2), "baseline_wall_s": round(base_wall, 2),
        "skyt1_overhead_s": round(skyt1_wall - base_wall, 2),
        "model_flops_per_s": round(6 * n_params * skyt1_tps, 1),
        "mfu_formula": "6 * N * tokens_per_s_per_gpu / (peak_bf16_tflops * 1e12)",
        "mfu": None,
    }


def gpu(steps: int, peak_tflops: float) -> dict:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from skyt1.recipe import load_recipe
    from skyt1.tiny_model import build_tiny_model
    from skyt1.training import train

    n_gpus = torch.cuda.device_count()
    if n_gpus == 0:
        raise SystemExit("--gpu needs a CUDA device")
    out: dict = {"mode": "gpu", "gpu": torch.cuda.get_device_name(0), "gpus": n_gpus, "cutoff_len": 16384,
                 "peak_bf16_tflops": peak_tflops, "steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok_dir = build_tiny_model(tmp / "tok", seed=0)
        model_dir = tmp / "qwen2.5-1.5b-random"
        tok = AutoTokenizer.from_pretrained(tok_dir)
        cfg = Qwen2Config(**QWEN25_15B, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                          torch_dtype="bfloat16")
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        del model
        out["model_params"] = n_params
        rows = _rows(steps * n_gpus + 8, 5000)  # every row is cut at 16384 tokens
        for mode in ("zero3", "zero3_offload"):
            run = _assembled(tmp / f"run-{mode}", rows)
            recipe = load_recipe(REPO / "recipes" / "sky-t1-32b-preview.yaml", {
                "train.base_model": str(model_dir), "train.max_steps": steps, "train.save_steps": 10**6,
                "train.deepspeed": mode, "train.gradient_accumulation_steps": 1, "train.gpus_per_node": n_gpus,
                "train.preprocessing_num_workers": 8})
            t0 = time.time()
            train.run(recipe, run, progress=False)
            tps = _throughput(run.local_path("train/checkpoints"), skip_first=True) / n_gpus
            out[mode] = {"tokens_per_s_per_gpu": round(tps, 1), "wall_s": round(time.time() - t0, 1),
                         "mfu": round(6 * n_params * tps / (peak_tflops * 1e12), 4)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    a = p.parse_args()
    result = gpu(a.steps or 8, a.peak_tflops) if a.gpu else cpu(a.steps or 16)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
