"""Per-sample overhead of the eval loop (everything except generation and scoring).

An engine that answers instantly and a scorer that returns at once stand in for vLLM and the scoring pool,
so the figure is the loop itself: request building, id bookkeeping, the writer thread, immutable shards
through the run store (with their .ids sidecars), redaction, the folder's lock, progress, summaries and the
samples export. Baseline in the same run: the bare minimum (one json.dumps + write per sample). Also timed:
a resume pass over a finished run (nothing to generate: sidecars listed, shards read for the summary).

    python benchmarks/bench_eval.py [--samples 10000] [--data-dir ../shared/data]

Prints one JSON line. Target: <= 2 ms/sample for 10,000 samples on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

from skyt1.data.benchmarks import load_tasks
from skyt1.engines.base import Completion, Engine
from skyt1.evaluation.runner import Sampling, evaluate

RESPONSE = "Let me think step by step. " * 40 + "The answer is \\boxed{42}."  # ~1 kB, a short trace


class InstantEngine(Engine):
    def generate(self, requests):
        for r in requests:
            yield Completion(r.id, RESPONSE, "stop", prompt_tokens=120, completion_tokens=300)

    def info(self) -> dict:
        return {"backend": "instant", "model": "none"}


class InstantScorer:
    def submit(self, kind, response, target, **kw) -> Future:
        f: Future = Future()
        f.set_result({"correct": str(target) in response, "extracted": "42", "status": "wrong_answer",
                      "passed": 0, "total": 1})
        return f


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    n = 10
    tasks, _ = load_tasks(["gsm8k"], data_dir=args.data_dir, limit=args.samples // n)
    total = len(tasks[0].problems) * n
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = evaluate(InstantEngine(), tasks, output_dir=Path(tmp) / "run", n=n, sampling=Sampling(),
                           scorer=InstantScorer(), progress=True)
        loop_s = time.perf_counter() - t0
        assert summary["complete"] and summary["benchmarks"]["gsm8k"]["scores"]["samples"] == total
        t0 = time.perf_counter()
        evaluate(InstantEngine(), tasks, output_dir=Path(tmp) / "run", n=n, sampling=Sampling(),
                 scorer=InstantScorer(), progress=False)
        resume_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with open(Path(tmp) / "baseline.jsonl", "w") as f:
            for p in tasks[0].problems:
                for k in range(n):
                    f.write(json.dumps({"id": f"{p.id}#{k}", "response": RESPONSE, "correct": False}) + "\n")
        baseline_s = time.perf_counter() - t0
    print(json.dumps({
        "bench": "eval_loop", "samples": total,
        "ms_per_sample": round(1000 * loop_s / total, 3),
        "resume_pass_ms_per_sample": round(1000 * resume_s / total, 3),
        "baseline_bare_write_ms_per_sample": round(1000 * baseline_s / total, 4),
        "target_ms_per_sample": 2.0, "meets_target": loop_s / total <= 0.002,
    }))


if __name__ == "__main__":
    main()
