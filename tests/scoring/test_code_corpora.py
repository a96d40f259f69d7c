"""Reference solutions of real benchmarks pass; labelled model samples get the verdicts of their labels."""

import json

import pytest

from .conftest import fenced, read_jsonl

APPS_PROBLEMS = ("0001", "0111", "2287", "2404", "4184")
# CodeRL labels: True passed, False failed tests, -1 runtime error (incl. timeouts), -2 did not compile
LABEL_STATUSES = {True: {"passed"}, False: {"wrong_answer"}, -1: {"runtime_error", "timeout", "memory_limit"},
                  -2: {"compile_error"}}


def humaneval_tests(row):
    return {"kind": "assert", "test_code": row["test"], "entry_point": row["entry_point"]}


def mbpp_tests(row):
    return {"kind": "assert", "test_code": row["test_list"], "setup_code": row["test_setup_code"]}


def test_humaneval_all_164_canonical_solutions_pass(data, pool):
    rows = read_jsonl(data / "humaneval" / "HumanEval.jsonl")
    futures = [pool.submit("code", fenced(r["prompt"] + r["canonical_solution"]), humaneval_tests(r)) for r in rows]
    failed = [(r["task_id"], f.result()) for r, f in zip(rows, futures, strict=True) if not f.result()["correct"]]
    assert len(rows) == 164 and failed == []
    assert {f.result()["isolation"] for f in futures} == {"bwrap"}


def test_humaneval_wrong_solution_fails(data, pool):
    row = read_jsonl(data / "humaneval" / "HumanEval.jsonl")[0]
    verdict = pool.submit("code", fenced(row["prompt"] + "    return True\n"), humaneval_tests(row)).result()
    assert verdict["status"] == "wrong_answer" and not verdict["correct"]


def test_humaneval_prompt_imports_run_before_a_completion_that_omits_them(data, pool):
    """HumanEval scores prompt + completion: a chat model's complete function without the prompt's
    `from typing import List` is judged on its behaviour once the prompt's imports run first."""
    row = read_jsonl(data / "humaneval" / "HumanEval.jsonl")[0]
    body = row["prompt"][row["prompt"].index("def "):] + row["canonical_solution"]
    assert "from typing import List" in row["prompt"] and "import" not in body
    without = pool.submit("code", fenced(body), humaneval_tests(row)).result()
    assert without["status"] == "runtime_error"  # NameError: List
    tests = {**humaneval_tests(row), "prelude_code": "from typing import List"}
    assert pool.submit("code", fenced(body), tests).result()["status"] == "passed"
    wrong = body.replace("return True", "return 1 == 2").replace("return False", "return 1 == 1")
    assert pool.submit("code", fenced(wrong), tests).result()["status"] == "wrong_answer"


def test_humaneval_task_carries_the_prompt_imports(data):
    from skyt1.data.benchmarks import load_task

    task = load_task("humaneval", data_dir=data, limit=3)
    assert task.problems[0].target["prelude_code"] == "from typing import List"


def _mbpp(data, pool, rows):
    futures = [pool.submit("code", fenced(r["code"]), mbpp_tests(r)) for r in rows]
    return [(r["task_id"], f.result()) for r, f in zip(rows, futures, strict=True) if not f.result()["correct"]]


def test_mbpp_all_974_reference_solutions_pass(data, pool):
    rows = read_jsonl(data / "mbpp" / "mbpp.jsonl")
    assert len(rows) == 974 and _mbpp(data, pool, rows) == []


def test_mbpp_setup_code_runs_after_the_program(data, pool):
    row = next(r for r in read_jsonl(data / "mbpp" / "mbpp.jsonl") if r["task_id"] == 367)
    verdict = pool.submit("code", fenced(row["code"]), mbpp_tests(row)).result()
    assert verdict["correct"] and verdict["passed"] == verdict["total"] == len(row["test_list"])


def _apps(data, problem):
    folder = data / "apps_coderl" / "train" / problem
    io = json.loads((folder / "input_output.json").read_text())
    tests = {"kind": "call" if io.get("fn_name") else "stdio", **io}
    return tests, json.loads((folder / "solutions.json").read_text()), \
        json.loads((folder / "gen_solutions.json").read_text())


@pytest.mark.parametrize("problem", APPS_PROBLEMS)
def test_apps_references_pass_and_labels_match(data, pool, problem):
    tests, solutions, samples = _apps(data, problem)
    refs = [pool.submit("code", fenced(s), tests, timeout_s=4) for s in solutions[:12]]
    # the labels come from running every test (a crash anywhere outranks a wrong answer)
    gens = [pool.submit("code", fenced(g["code"]), tests, timeout_s=4, full_run=True) for g in samples]
    assert [f.result()["status"] for f in refs] == ["passed"] * len(refs)
    mismatched = [(i, g["result"], f.result()["status"]) for i, (g, f) in enumerate(zip(samples, gens, strict=True))
                  if f.result()["status"] not in LABEL_STATUSES[g["result"]]]
    assert mismatched == []
