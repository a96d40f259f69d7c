"""Engine throughput on the tiny model: the hf engine batched (batch_size 8) against one request at a time,
and the openai engine with concurrency 16 against concurrency 1, in front of a loopback server whose
every answer takes 0.2 s (standing in for API latency). Prints one JSON line."""

from __future__ import annotations

import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from skyt1.engines import Request, SamplingParams  # noqa: E402
from skyt1.engines.hf import HFEngine  # noqa: E402
from skyt1.engines.openai import OpenAIEngine  # noqa: E402
from skyt1.engines.server import FaultPlan, start_server  # noqa: E402
from skyt1.tiny_model import build_tiny_model  # noqa: E402


def _requests(n: int, max_tokens: int) -> list[Request]:
    return [Request(f"r{i}", [{"role": "user", "content": f"Compute {i} * {i + 3}."}],
                    SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=i)) for i in range(n)]


def _timed(engine, reqs) -> tuple[float, int]:
    t0 = time.perf_counter()
    tokens = sum(c.completion_tokens for c in engine.generate(reqs))
    return time.perf_counter() - t0, tokens


def main(n_hf: int = 32, max_tokens: int = 64, n_api: int = 64) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_model(f"{tmp}/m"))
        hf = HFEngine(model, batch_size=8)
        batched_s, tokens = _timed(hf, _requests(n_hf, max_tokens))
        hf.batch_size = 1
        single_s, tokens_1 = _timed(hf, _requests(n_hf, max_tokens))
        assert tokens == tokens_1  # same seeds, same samples
        with start_server(hf, faults=FaultPlan(slow_rate=1.0, delay_s=0.2)) as srv:
            hf.batch_size = 8
            reqs = _requests(n_api, 4)
            fast_s, _ = _timed(OpenAIEngine("tiny", base_url=srv.url, api_keys=["EMPTY"], concurrency=16), reqs)
            slow_s, _ = _timed(OpenAIEngine("tiny", base_url=srv.url, api_keys=["EMPTY"], concurrency=1), reqs)
    print(json.dumps({
        "hf_requests": n_hf, "max_tokens": max_tokens, "hf_completion_tokens": tokens,
        "hf_batch8_tokens_per_s": round(tokens / batched_s, 1), "hf_batch1_tokens_per_s": round(tokens / single_s, 1),
        "hf_speedup": round(single_s / batched_s, 2),
        "api_requests": n_api, "api_latency_s": 0.2,
        "api_conc16_requests_per_s": round(n_api / fast_s, 2), "api_conc1_requests_per_s": round(n_api / slow_s, 2),
        "api_speedup": round(slow_s / fast_s, 2),
    }))


if __name__ == "__main__":
    main()
