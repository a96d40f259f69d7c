"""Output comparison, test formats and the reference checker's verdict bugs."""

import time

import pytest

from skyt1.scoring import extract_code, score
from skyt1.scoring.code.compare import result_matches, stdout_matches

from .conftest import fenced


@pytest.mark.parametrize("actual,expected,ok", [
    ("1 2\n3\n", "1 2\n3", True),
    ("1  2 \r\n3\n\n", "1 2\n3\n", True),
    ("1\n2\n", "1 2", True),  # APPS: whitespace-insensitive tokens
    ("0.3333333", "0.333333333", True),  # float tolerance where the expected value is not an integer
    ("0.34", "0.333333", False),
    ("1000000000001", "1000000000000", False),  # reference bug: allclose accepted off-by-one big ints
    ("100001", "100000", False),
    ("2.0", "2", False),  # integers compare exactly
    ("YES", "yes", False),
    ("", "0", False),
])
def test_stdout_matches(actual, expected, ok):
    assert stdout_matches(actual, expected) is ok


@pytest.mark.parametrize("actual,expected,ok", [
    ("[1,2]", [1, 2], True),
    ("[1,2]", [[1, 2]], True),  # APPS wraps outputs in a list
    ("5", [5], True),
    ("true", True, True),
    ("1", True, False),  # bool is not int
    ("0.30000000000000004", 0.3, True),
    ("1000000000001", 1000000000000, False),
    ('{"d":[["a",1]]}', {"a": 1}, True),
    ('{"t":[1,2]}', [1, 2], True),  # a returned tuple compares as a list
    ('{"s":[2,1]}', [1, 2], True),  # a set as a sorted list
    ('"512301"', "512301", True),  # a string of digits stays a string
    ('"512301"', 512301, False),
    ('{"r":[0,"Anything"]}', 1, False),  # an object that is not data never matches
    ('{"a": 1}', {"a": 1}, False),  # not the harness's encoding
    ("not json", 1, False),
])
def test_result_matches(actual, expected, ok):
    assert result_matches(actual, expected) is ok


def test_extract_code():
    assert extract_code("text\n```python\nprint(1)\n```\nmore ```py\nprint(2)\n```") == "print(2)\n"
    assert extract_code("```\nprint(3)\n```") == "print(3)\n"
    assert extract_code("<|begin_of_thought|>```python\nprint(1)\n```") is None  # truncated
    assert extract_code("```python\nprint(1)") is None  # unclosed fence
    assert extract_code("no code") is None


STDIO = {"kind": "stdio", "inputs": ["2 3\n", "10 20\n"], "outputs": ["5\n", "30\n"]}


def test_stdio_and_partial_credit():
    assert score("code", fenced("a, b = map(int, input().split())\nprint(a + b)"), STDIO)["correct"]
    verdict = score("code", fenced("print(5)"), STDIO)
    assert verdict == {**verdict, "correct": False, "status": "wrong_answer", "passed": 1, "total": 2}


@pytest.mark.parametrize("program,status", [
    ("a, b = map(int, input().split())\nprint(a + b)\nraise ValueError", "runtime_error"),  # reference bug: -1 was truthy
    ("def f(:\n    pass", "compile_error"),  # -2 was truthy
    ("import time\ntime.sleep(30)", "timeout"),  # -3 ... and timeouts
])
def test_crashing_code_is_wrong(program, status):
    verdict = score("code", fenced(program), STDIO, timeout_s=1)
    assert verdict["status"] == status and not verdict["correct"] and verdict["passed"] == 0


def test_stops_at_the_first_failure_unless_full_run():
    t0 = time.monotonic()
    verdict = score("code", fenced("import time\ntime.sleep(30)"), STDIO, timeout_s=1)
    assert verdict["status"] == "timeout" and (verdict["passed"], verdict["total"]) == (0, 2)
    assert time.monotonic() - t0 < 1.9  # the second test never ran
    wrong_first = fenced("a, b = map(int, input().split())\nprint(a + b + (a == 2))")
    assert score("code", wrong_first, STDIO)["passed"] == 0  # stopped: the second test never ran
    full = score("code", wrong_first, STDIO, full_run=True)
    assert (full["status"], full["passed"], full["total"]) == ("wrong_answer", 1, 2)


def test_call_based_function_class_and_lcb_formats():
    tests = {"kind": "call", "fn_name": "add", "inputs": [[1, 2], "3\n4"], "outputs": [[3], "7"]}
    assert score("code", fenced("def add(a, b):\n    return a + b"), tests)["correct"]
    leet = "class Solution:\n    def add(self, a: int, b: int) -> List[int]:\n        return (a + b,)"
    assert score("code", fenced(leet), {**tests, "outputs": [[3], "[7]"]})["correct"]


def test_top_level_return_in_stdio_program_runs_like_apps():
    assert score("code", fenced("n = int(input())\nif n > 0:\n    print(n)\n    return\nprint(0)"), STDIO | {
        "inputs": ["4\n"], "outputs": ["4\n"]})["correct"]


@pytest.mark.parametrize("tests", [
    {"kind": "stdio", "inputs": ["1"], "outputs": []},
    {"kind": "call", "inputs": [[1]], "outputs": [1]},
    {"kind": "assert"},
    {"kind": "bogus"},
    "not a dict",
])
def test_invalid_tests(tests):
    assert score("code", fenced("print(1)"), tests)["status"] == "invalid_input"


def test_no_code():
    assert score("code", "I could not solve it.", STDIO)["status"] == "no_code"
