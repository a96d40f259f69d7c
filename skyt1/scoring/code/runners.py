"""Test formats -> sandbox jobs -> verdicts.

Formats (the `tests` field of a code row):
  {"kind": "stdio", "inputs": [str], "outputs": [str]}             APPS/TACO/LiveCodeBench stdin/stdout
  {"kind": "call", "fn_name", "inputs": [args], "outputs": [value]}   APPS/TACO call-based (a function or a
      `class Solution` method; each input is the list of positional arguments, each output the expected
      value as it is) and LiveCodeBench functional in its raw form (an input given as text holds one JSON
      argument per line, and its output is then JSON text, decoded once)
  {"kind": "assert", "test_code": str | [str], "entry_point": str?, "setup_code": str?, "prelude_code": str?}
      HumanEval (the test code's `check(candidate)` is called with entry_point when the test code defines
      it; plain asserts run as they are) and MBPP (a list of asserts, each one test; setup_code runs after
      the program, as MBPP tasks 367/927 need; prelude_code before it, e.g. a HumanEval prompt's imports)
"""

from __future__ import annotations

import json

from skyt1.scoring.code.compare import result_matches, stdout_matches
from skyt1.scoring.code.sandbox import Limits, run_job


class InvalidTests(ValueError):
    pass


def _as_text(value) -> str:
    if isinstance(value, list):  # some APPS problems store input/output as a list of lines
        return "\n".join(str(v) for v in value) + "\n"
    if not isinstance(value, str):
        raise InvalidTests(f"expected a string, got {type(value).__name__}")
    return value


def _call_case(inputs, output) -> tuple:
    """(arguments, expected value) of one call test. APPS/TACO form: a list (or dict) of arguments and the
    expected value as it is. LiveCodeBench's raw form: the input is text with one JSON value per line, and
    the output is then JSON text too, decoded once (a string of digits stays a string)."""
    if isinstance(inputs, str):
        try:
            args = [json.loads(line) for line in inputs.split("\n") if line.strip()]
            expected = json.loads(output) if isinstance(output, str) else output
        except json.JSONDecodeError as e:
            raise InvalidTests(f"a call test given as text must hold JSON (one value per line): {e}") from None
        return args, expected
    if not isinstance(inputs, list | dict):
        raise InvalidTests("call inputs must be lists of arguments (or LiveCodeBench's JSON lines)")
    return inputs, output


def build_job(code: str, tests: dict) -> tuple[dict, list]:
    """(job for the harness, expected values kept outside the sandbox)."""
    if not isinstance(tests, dict):
        raise InvalidTests("tests must be an object with a 'kind'")
    kind = tests.get("kind")
    if kind in ("stdio", "call"):
        inputs, outputs = tests.get("inputs"), tests.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise InvalidTests(f"{kind} tests need 'inputs' and 'outputs' lists of the same length")
        if not inputs:
            raise InvalidTests("no tests")
        if kind == "stdio":
            return ({"mode": "stdio", "code": code, "tests": [_as_text(i) for i in inputs]},
                    [_as_text(o) for o in outputs])
        fn_name = tests.get("fn_name")
        if not isinstance(fn_name, str) or not fn_name.isidentifier():
            raise InvalidTests("call tests need 'fn_name', a Python identifier")
        cases = [_call_case(i, o) for i, o in zip(inputs, outputs, strict=True)]
        return ({"mode": "call", "code": code, "fn_name": fn_name, "tests": [args for args, _ in cases]},
                [expected for _, expected in cases])
    if kind == "assert":
        test_code = tests.get("test_code")
        cases = [test_code] if isinstance(test_code, str) else test_code
        if not isinstance(cases, list) or not cases or not all(isinstance(c, str) for c in cases):
            raise InvalidTests("assert tests need 'test_code': a string or a list of strings")
        entry_point = tests.get("entry_point") or None
        if entry_point is not None and not (isinstance(entry_point, str) and entry_point.isidentifier()):
            raise InvalidTests("'entry_point' must be a Python identifier")
        setup, prelude = tests.get("setup_code") or "", tests.get("prelude_code") or ""
        if not isinstance(setup, str) or not isinstance(prelude, str):
            raise InvalidTests("'setup_code' and 'prelude_code' must be strings")
        return ({"mode": "assert", "code": code, "tests": cases, "entry_point": entry_point,
                 "setup_code": setup, "prelude_code": prelude}, [None] * len(cases))
    raise InvalidTests(f"unknown tests kind {kind!r}; expected stdio, call or assert")


def _test_passed(mode: str, record: dict, expected) -> bool:
    if record.get("status") != "ok" or record.get("truncated"):
        return False
    if mode == "stdio":
        return stdout_matches(record.get("stdout", ""), expected)
    if mode == "call":
        return result_matches(record.get("result", ""), expected)
    return True  # assert tests: "ok" is the judge's verdict that every assertion held


def run_tests(code: str, tests: dict, limits: Limits, *, isolation: str, full_run: bool = False) -> dict:
    """Run the tests; stop at the first failure (the APPS/LiveCodeBench convention) unless `full_run`,
    which runs them all for partial credit. `passed` counts the tests that passed before stopping."""
    job, expected = build_job(code, tests)
    outcomes: list[bool] = []

    def judge(record: dict) -> bool:
        index = record.get("index")
        ok = index == len(outcomes) and index < len(expected) and _test_passed(job["mode"], record, expected[index])
        outcomes.append(ok)
        return ok

    records, info = run_job(job, limits, isolation=isolation, judge=judge, early_stop=not full_run)
    total = len(expected)
    failures = [_status_of(r) for r, ok in zip(records, outcomes, strict=True) if not ok]
    if len(records) < total and (not failures or full_run):
        failures.append("runtime_error")  # the harness died (e.g. the program killed it) before the end
    # like the APPS labels: a crash, timeout or compile error outranks a wrong answer
    crashes = [s for s in failures if s != "wrong_answer"]
    status = "passed" if not failures else (crashes[0] if crashes else "wrong_answer")
    if "compile_error" in failures:
        status = "compile_error"
    passed = sum(outcomes)
    return {"correct": not failures and passed == total, "status": status, "passed": passed, "total": total,
            "isolation": info["isolation"], "process_limit": info["process_limit"]}


def _status_of(record: dict) -> str:
    status = record.get("status", "runtime_error")
    return "wrong_answer" if status == "ok" else status
