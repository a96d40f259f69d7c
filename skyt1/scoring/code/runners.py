"""Test formats -> sandbox jobs -> verdicts.

Formats (the `tests` field of a code row):
  {"kind": "stdio", "inputs": [str], "outputs": [str]}             APPS/TACO/LiveCodeBench stdin/stdout
  {"kind": "call", "fn_name", "inputs": [args], "outputs": [value]}   APPS/TACO call-based (a function or a
      `class Solution` method; each input is the list of positional arguments) and LiveCodeBench functional
      (an input may be a string of newline-separated JSON arguments, an output a JSON string)
  {"kind": "assert", "test_code": str | [str], "entry_point": str?, "setup_code": str?}
      HumanEval (`check(candidate)` is called with entry_point) and MBPP (a list of asserts, each one
      test; setup_code runs after the program, as MBPP tasks 367/927 need)
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


def _call_args(value):
    if isinstance(value, str):  # LiveCodeBench functional: one JSON value per line
        try:
            return [json.loads(line) for line in value.split("\n") if line.strip()]
        except json.JSONDecodeError as e:
            raise InvalidTests(f"call input is not newline-separated JSON: {e}") from None
    if not isinstance(value, list | dict):
        raise InvalidTests("call inputs must be lists of arguments")
    return value


def _call_output(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


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
        return ({"mode": "call", "code": code, "fn_name": fn_name, "tests": [_call_args(i) for i in inputs]},
                [_call_output(o) for o in outputs])
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
    return record.get("asserts_passed") is True


def run_tests(code: str, tests: dict, limits: Limits, *, early_stop: bool = False,
              isolation: str = "auto") -> dict:
    job, expected = build_job(code, tests)
    job["early_stop"] = early_stop
    records, info = run_job(job, limits, isolation=isolation)
    total = len(expected)
    passed, failures = 0, []
    for i in range(total):
        # a missing record: the harness died (e.g. the program killed it) or stopped early
        record = records[i] if i < len(records) else None
        if record is not None and _test_passed(job["mode"], record, expected[i]):
            passed += 1
        elif record is not None or not (job["early_stop"] and failures):
            failures.append(_status_of(record or {"status": "runtime_error"}))
    # like the APPS labels: a crash, timeout or compile error outranks a wrong answer
    crashes = [s for s in failures if s != "wrong_answer"]
    status = "passed" if not failures else (crashes[0] if crashes else "wrong_answer")
    if "compile_error" in failures:
        status = "compile_error"
    return {"correct": passed == total, "status": status, "passed": passed, "total": total,
            "isolation": info["isolation"], "process_limit": info["process_limit"]}


def _status_of(record: dict) -> str:
    status = record.get("status", "runtime_error")
    return "wrong_answer" if status == "ok" else status
