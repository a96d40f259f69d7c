"""Scoring throughput. Prints ONE JSON line.

Code: the reference solutions of HumanEval (164), MBPP (first --mbpp tasks) and the 5 APPS problems, scored
through ScoringPool (bwrap sandbox, one process per solution, fork per test inside it) vs a baseline in the
same run that starts one plain `python` process per test (no sandbox), with the same number of workers.
Math: MATH500 gold solutions + GSM8K example model solutions through ScoringPool (answers/s), and the
latency of single answers scored one at a time (p50/p99).

    python benchmarks/bench_scoring.py [--workers 2] [--mbpp 974] [--latency-sample 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skyt1.scoring import ScoringPool, extract_math_answer, score
from skyt1.scoring.code.compare import stdout_matches
from skyt1.scoring.code.sandbox import bwrap_available

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GSM8K_ANSWER = r"^A:\s*(.+?)\s*$"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def code_cases(mbpp_limit: int) -> list[tuple[str, dict]]:
    cases = []
    for row in _jsonl(DATA / "humaneval" / "HumanEval.jsonl"):
        cases.append((row["prompt"] + row["canonical_solution"],
                      {"kind": "assert", "test_code": row["test"], "entry_point": row["entry_point"]}))
    for row in _jsonl(DATA / "mbpp" / "mbpp.jsonl")[:mbpp_limit]:
        cases.append((row["code"], {"kind": "assert", "test_code": row["test_list"],
                                    "setup_code": row["test_setup_code"]}))
    for folder in sorted((DATA / "apps_coderl" / "train").iterdir()):
        io = json.loads((folder / "input_output.json").read_text())
        tests = {"kind": "call" if io.get("fn_name") else "stdio", **io}
        cases += [(code, tests) for code in json.loads((folder / "solutions.json").read_text())]
    return cases


def _baseline_test(code: str, tests: dict, index: int, timeout_s: float) -> bool:
    """What a naive checker does: a fresh `python` process for every single test, no sandbox."""
    stdin = ""
    if tests["kind"] == "assert":
        cases = tests["test_code"] if isinstance(tests["test_code"], list) else [tests["test_code"]]
        program = "\n".join([code, tests.get("setup_code") or "", cases[index]])
        if tests.get("entry_point"):
            program += f"\ncheck({tests['entry_point']})\n"
    elif tests["kind"] == "stdio":
        program, stdin = code, tests["inputs"][index]
    else:
        args = json.dumps(tests["inputs"][index])
        program = (f"from typing import *\n{code}\nimport json\n_f = globals().get({tests['fn_name']!r}) or "
                   f"getattr(Solution(), {tests['fn_name']!r})\nprint(json.dumps(_f(*json.loads({args!r}))))")
    try:
        out = subprocess.run([sys.executable, "-c", program], input=stdin, capture_output=True, text=True,
                             timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    if out.returncode != 0:
        return False
    if tests["kind"] == "stdio":
        return stdout_matches(out.stdout, tests["outputs"][index])
    return True


def _n_tests(tests: dict) -> int:
    if tests["kind"] == "assert":
        return len(tests["test_code"]) if isinstance(tests["test_code"], list) else 1
    return len(tests["inputs"])


def bench_code(workers: int, mbpp_limit: int, timeout_s: float) -> dict:
    cases = code_cases(mbpp_limit)
    n_tests = sum(_n_tests(t) for _, t in cases)
    t0 = time.perf_counter()
    with ScoringPool(workers=workers, timeout_s=timeout_s) as pool:
        verdicts = [f.result() for f in [pool.submit("code", f"```python\n{c}\n```", t) for c, t in cases]]
    sandbox_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        jobs = [ex.submit(_baseline_test, c, t, i, timeout_s) for c, t in cases for i in range(_n_tests(t))]
        baseline_passed = sum(j.result() for j in jobs)
    baseline_s = time.perf_counter() - t0
    return {
        "code_solutions": len(cases), "code_tests": n_tests,
        "code_isolation": sorted({v.get("isolation", "?") for v in verdicts}),
        "code_solutions_correct": sum(v["correct"] for v in verdicts),
        "code_tests_passed": sum(v["passed"] for v in verdicts),
        "code_sandbox_s": round(sandbox_s, 2),
        "code_solutions_per_s": round(len(cases) / sandbox_s, 2),
        "code_tests_per_s": round(n_tests / sandbox_s, 2),
        "baseline_tests_passed": baseline_passed,
        "baseline_s": round(baseline_s, 2),
        "baseline_tests_per_s": round(n_tests / baseline_s, 2),
        "code_speedup_vs_baseline": round(baseline_s / sandbox_s, 2),
    }


def math_cases() -> list[tuple[str, str, dict]]:
    cases = [(r["solution"], r["answer"], {}) for r in _jsonl(DATA / "math500" / "test.jsonl")]
    for row in _jsonl(DATA / "gsm8k" / "example_model_solutions.jsonl"):
        reference = extract_math_answer(row["ground_truth"], answer_pattern=GSM8K_ANSWER)
        for model in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            cases.append((row[model]["solution"], reference, {"answer_pattern": GSM8K_ANSWER}))
    return cases


def bench_math(workers: int, latency_sample: int) -> dict:
    cases = math_cases()
    t0 = time.perf_counter()
    with ScoringPool(workers=workers) as pool:
        for f in [pool.submit("math", resp, ref, **kw) for resp, ref, kw in cases]:
            f.result()
    pool_s = time.perf_counter() - t0
    score("math", "\\boxed{1}", "1")  # start the shared worker before timing single answers
    step = max(1, len(cases) // latency_sample)
    latencies = []
    for resp, ref, kw in cases[::step][:latency_sample]:
        t = time.perf_counter()
        score("math", resp, ref, **kw)
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    return {
        "math_answers": len(cases), "math_pool_s": round(pool_s, 2),
        "math_answers_per_s": round(len(cases) / pool_s, 1),
        "math_latency_p50_ms": round(1000 * statistics.median(latencies), 2),
        "math_latency_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--mbpp", type=int, default=974, help="number of MBPP tasks")
    parser.add_argument("--timeout", type=float, default=6.0, help="seconds per code test")
    parser.add_argument("--latency-sample", type=int, default=500)
    args = parser.parse_args()
    figures = {"workers": args.workers, "bwrap": bwrap_available()[0]}
    figures.update(bench_code(args.workers, args.mbpp, args.timeout))
    figures.update(bench_math(args.workers, args.latency_sample))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
