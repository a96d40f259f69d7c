"""Engines on this machine, one run, the same chat prompts and sampling: skyt1's vllm backend (vLLM's own
server, every request through skyt1's OpenAI client) against the baseline it must stay within 15% of, vLLM's
offline `LLM.chat` in the same environment with the same engine settings, and skyt1's hf backend.
Prints one JSON line: completion tokens/s, time to the first result and start-up time of each.

    python benchmarks/bench_engines.py [--model DIR] [--prompts 100] [--max-tokens 128] [--dtype bfloat16]

Without --model it uses the tiny random model (`skyt1 tiny-model --hidden-size 128`). Needs vLLM's
environment (`make install` builds .venv-vllm; SKYT1_VLLM_PYTHON overrides).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from skyt1.engines import Request, SamplingParams  # noqa: E402
from skyt1.engines.hf import HFEngine  # noqa: E402
from skyt1.engines.vllm import CPU_KV_CACHE_BYTES, VLLMEngine, find_vllm_python, server_env  # noqa: E402

OFFLINE = Path(__file__).with_name("vllm_offline.py")
TEMPERATURE, TOP_P = 0.7, 0.95


def _messages(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Problem {i}: a shop sells {i + 3} apples for {2 * i + 5} dollars. "
              "How much do 7 apples cost? Think step by step."}] for i in range(n)]


def _timed(engine, messages: list[list[dict]], max_tokens: int) -> dict:
    reqs = [Request(f"r{i}", m, SamplingParams(TEMPERATURE, TOP_P, max_tokens)) for i, m in enumerate(messages)]
    t0 = time.perf_counter()
    first, tokens, count = None, 0, 0
    for c in engine.generate(reqs):
        first = first if first is not None else time.perf_counter() - t0
        tokens += c.completion_tokens
        count += 1
    elapsed = time.perf_counter() - t0
    assert count == len(reqs), f"{count} of {len(reqs)} completions"
    return {"tokens": tokens, "generate_s": round(elapsed, 2), "tokens_per_s": round(tokens / elapsed, 1),
            "first_result_s": round(first, 2)}


def vllm_server(model: str, dtype: str, messages, max_tokens: int) -> dict:
    t0 = time.perf_counter()
    engine = VLLMEngine(model, dtype=dtype)
    try:
        start_s = time.perf_counter() - t0
        return {**_timed(engine, messages, max_tokens), "start_s": round(start_s, 1), "device": engine.device,
                "vllm": engine.version, "cpu_threads_bind": engine.info()["cpu_threads_bind"]}
    finally:
        engine.close()


def vllm_offline(model: str, dtype: str, messages, max_tokens: int, device: str) -> dict:
    # The engine settings the backend gives `vllm serve` (skyt1.engines.vllm), as LLM() arguments.
    engine = {"dtype": dtype, "seed": 0, "enable_prefix_caching": True, "generation_config": "vllm"}
    if device == "cpu":
        engine.update(enforce_eager=True, kv_cache_memory_bytes=CPU_KV_CACHE_BYTES)
    cfg = {"model": model, "engine": engine, "messages": messages,
           "sampling": {"temperature": TEMPERATURE, "top_p": TOP_P, "max_tokens": max_tokens}}
    env = server_env(device, 1)  # the server's environment too (on a small CPU: every core to the worker)
    out = subprocess.run([find_vllm_python(), str(OFFLINE)], input=json.dumps(cfg), capture_output=True,
                         text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"vLLM offline run failed:\n{out.stderr[-3000:]}")
    r = json.loads([x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1].removeprefix("RESULT "))
    # LLM.chat returns every result at once, when the last request finishes.
    return {"tokens": r["tokens"], "generate_s": round(r["generate_s"], 2),
            "tokens_per_s": round(r["tokens"] / r["generate_s"], 1), "first_result_s": round(r["generate_s"], 2),
            "start_s": round(r["start_s"], 1)}


def hf(model: str, dtype: str, messages, max_tokens: int, batch_size: int) -> dict:
    t0 = time.perf_counter()
    engine = HFEngine(model, dtype=dtype, batch_size=batch_size)
    start_s = time.perf_counter() - t0
    return {**_timed(engine, messages, max_tokens), "start_s": round(start_s, 1), "batch_size": batch_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a local model directory [default: the tiny random model]")
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--dtype", default=None, help="[default: float32 for the tiny model, else bfloat16]")
    ap.add_argument("--hf-batch-size", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from skyt1.tiny_model import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "tiny", hidden_size=128))
        dtype = args.dtype or ("float32" if args.model is None else "bfloat16")
        messages = _messages(args.prompts)
        server = vllm_server(model, dtype, messages, args.max_tokens)
        offline = vllm_offline(model, dtype, messages, args.max_tokens, server["device"])
        local = hf(model, dtype, messages, args.max_tokens, args.hf_batch_size)
    print(json.dumps({
        "model": Path(model).name if args.model else "tiny (skyt1 tiny-model --hidden-size 128)", "dtype": dtype,
        "prompts": args.prompts, "max_tokens": args.max_tokens, "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 1), "vllm_server": server, "vllm_offline": offline, "hf": local,
        "server_vs_offline_throughput": round(server["tokens_per_s"] / offline["tokens_per_s"], 3),
    }))


if __name__ == "__main__":
    sys.exit(main())
