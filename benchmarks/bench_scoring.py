"""Scoring throughput. Prints ONE JSON line.

Code: a corpus of passing AND failing solutions: the reference solutions of HumanEval (164), MBPP (first
--mbpp tasks) and the 5 APPS problems; CodeRL's labelled model samples of those APPS problems (wrong
answers, crashes, timeouts); a wrong answer for every HumanEval and MBPP task (the function returns None);
and --loops MBPP solutions that never return (timeouts). It is scored three ways with the same number of
workers: ScoringPool stopping at each solution's first failing test (the default: bwrap sandbox, one
long-lived harness per worker, a process per test); ScoringPool running every test (`full_run`); and a
baseline that starts one plain `python` process per test (no sandbox), as a naive checker does.
Math: MATH500 gold solutions + GSM8K example model solutions through ScoringPool (answers/s), and the
latency of single answers scored one at a time (p50/p99).

    python benchmarks/bench_scoring.py [--workers 2] [--mbpp 974] [--loops 4] [--timeout 6] [--latency-sample 500]
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skyt1.scoring import ScoringPool, extract_math_answer, score
from skyt1.scoring.code.compare import result_matches, stdout_matches
from skyt1.scoring.code.sandbox import bwrap_available

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GSM8K_ANSWER = r"^A:\s*(.+?)\s*$"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _function_under_test(test_list: list[str]) -> str:
    calls = [n.func.id for n in ast.walk(ast.parse(test_list[0])) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return next((name for name in calls if not hasattr(builtins, name)), calls[0])


def code_cases(mbpp_limit: int, loops: int) -> list[tuple[str, str, dict]]:
    """(kind, program, tests): kind is reference, sample (a labelled model sample), wrong or loop."""
    cases = []
    for row in _jsonl(DATA / "humaneval" / "HumanEval.jsonl"):
        tests = {"kind": "assert", "test_code": row["test"], "entry_point": row["entry_point"]}
        cases.append(("reference", row["prompt"] + row["canonical_solution"], tests))
        cases.append(("wrong", row["prompt"] + "    return None\n", tests))
    for i, row in enumerate(_jsonl(DATA / "mbpp" / "mbpp.jsonl")[:mbpp_limit]):
        tests = {"kind": "assert", "test_code": row["test_list"], "setup_code": row["test_setup_code"]}
        name = _function_under_test(row["test_list"])
        cases.append(("reference", row["code"], tests))
        cases.append(("wrong", f"def {name}(*args, **kwargs):\n    return None\n", tests))
        if i < loops:
            cases.append(("loop", f"def {name}(*args, **kwargs):\n    while True:\n        pass\n", tests))
    for folder in sorted((DATA / "apps_coderl" / "train").iterdir()):
        io = json.loads((folder / "input_output.json").read_text())
        tests = {"kind": "call" if io.get("fn_name") else "stdio", **io}
        cases += [("reference", code, tests) for code in json.loads((folder / "solutions.json").read_text())]
        cases += [("sample", s["code"], tests) for s in json.loads((folder / "gen_solutions.json").read_text())]
    return cases


def _n_tests(tests: dict) -> int:
    if tests["kind"] == "assert":
        return len(tests["test_code"]) if isinstance(tests["test_code"], list) else 1
    return len(tests["inputs"])


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
    if tests["kind"] == "call":
        return result_matches(out.stdout.strip(), tests["outputs"][index])
    return True


def _score_all(cases: list, workers: int, timeout_s: float, full_run: bool) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    with ScoringPool(workers=workers, timeout_s=timeout_s, full_run=full_run) as pool:
        verdicts = [f.result() for f in [pool.submit("code", f"```python\n{c}\n```", t) for _, c, t in cases]]
    return verdicts, time.perf_counter() - t0


def _tests_run(verdict: dict, full_run: bool) -> int:
    if full_run or verdict["status"] == "passed":
        return verdict["total"]
    return min(verdict["total"], verdict["passed"] + 1)  # stopped at the first failure


def bench_code(workers: int, mbpp_limit: int, loops: int, timeout_s: float) -> dict:
    cases = code_cases(mbpp_limit, loops)
    n_tests = sum(_n_tests(t) for _, _, t in cases)
    stop, stop_s = _score_all(cases, workers, timeout_s, full_run=False)
    full, full_s = _score_all(cases, workers, timeout_s, full_run=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        jobs = [[ex.submit(_baseline_test, c, t, i, timeout_s) for i in range(_n_tests(t))] for _, c, t in cases]
        baseline = [all(j.result() for j in solution) for solution in jobs]
    baseline_s = time.perf_counter() - t0
    kinds = {k: sum(kind == k for kind, _, _ in cases) for k in ("reference", "sample", "wrong", "loop")}
    return {
        "code_solutions": len(cases), "code_corpus": kinds, "code_tests": n_tests,
        "code_isolation": sorted({v.get("isolation", "?") for v in stop}),
        "code_correct": sum(v["correct"] for v in stop),
        "code_statuses": {s: sum(v["status"] == s for v in stop) for s in sorted({v["status"] for v in stop})},
        "code_stop_vs_full_disagree": sum(a["correct"] != b["correct"] for a, b in zip(stop, full, strict=True)),
        "code_stop_s": round(stop_s, 2), "code_stop_tests_run": sum(_tests_run(v, False) for v in stop),
        "code_stop_solutions_per_s": round(len(cases) / stop_s, 2),
        "code_full_s": round(full_s, 2), "code_full_tests_per_s": round(n_tests / full_s, 2),
        "baseline_s": round(baseline_s, 2), "baseline_tests_per_s": round(n_tests / baseline_s, 2),
        "baseline_correct": sum(baseline),
        "baseline_disagrees_with_scorer": sum(b != v["correct"] for b, v in zip(baseline, stop, strict=True)),
        "speedup_stop_vs_full": round(full_s / stop_s, 2),
        "speedup_stop_vs_baseline": round(baseline_s / stop_s, 2),
        "speedup_full_vs_baseline": round(baseline_s / full_s, 2),
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
    parser.add_argument("--loops", type=int, default=4, help="MBPP solutions that never return (timeouts)")
    parser.add_argument("--timeout", type=float, default=6.0, help="seconds per code test")
    parser.add_argument("--latency-sample", type=int, default=500)
    parser.add_argument("--skip-code", action="store_true", help="math figures only")
    args = parser.parse_args()
    figures = {"workers": args.workers, "bwrap": bwrap_available()[0], "timeout_s": args.timeout}
    if not args.skip_code:
        figures.update(bench_code(args.workers, args.mbpp, args.loops, args.timeout))
    figures.update(bench_math(args.workers, args.latency_sample))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
