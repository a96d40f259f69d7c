"""Forged verdicts, leaked state and legitimate programs that a real judge accepts.

Every program in the forgery tests computes a WRONG answer (f(x) = x + 1 where the tests want 3x) and
then attacks the harness instead: had an attack worked, the verdict would be "passed". The legitimate
programs at the end produce the right output in ways a naive harness misjudges.
"""

import pytest

from skyt1.scoring import score

from .conftest import fenced

pytestmark = pytest.mark.usefixtures("no_stray_processes")

WRONG = "def f(x):\n    return x + 1\n"
HUMANEVAL = {"kind": "assert", "entry_point": "f",
             "test_code": "def check(candidate):\n    assert candidate(1) == 3\n    assert candidate(2) == 6\n"}
MBPP = {"kind": "assert", "test_code": ["assert f(1) == 3", "assert f(2) == 6"]}
PLAIN_WITH_ENTRY_POINT = {"kind": "assert", "entry_point": "f", "test_code": "assert f(1) == 3\nassert f(2) == 6\n"}
CALL = {"kind": "call", "fn_name": "f", "inputs": [[1], [2]], "outputs": [3, 6]}
ASSERT_FORMATS = pytest.mark.parametrize("tests", [HUMANEVAL, MBPP, PLAIN_WITH_ENTRY_POINT],
                                         ids=["humaneval", "mbpp", "plain+entry_point"])


def run(program: str, tests: dict, **kw) -> dict:
    verdict = score("code", fenced(program), tests, **kw)
    assert verdict["isolation"] == "bwrap", "bubblewrap must work on the test machine"
    return verdict


def assert_rejected(verdict: dict) -> None:
    assert not verdict["correct"] and verdict["status"] != "passed" and verdict["passed"] == 0, verdict


@ASSERT_FORMATS
def test_the_wrong_program_fails_and_a_right_one_passes(tests):
    assert_rejected(run(WRONG, tests))
    assert run("def f(x):\n    return 3 * x\n", tests)["correct"]


FD_HUNT = """
import os
FORGED = [b'{"status": "ok"}\\n', b'{"ready": true}\\n', b'{"ok": true}\\n', b'{"index": 0, "status": "ok"}\\n',
          b'{"end": true}\\n', b'next\\n']
def hunt():
    for fd in range(0, 1024):
        for message in FORGED:
            try:
                os.write(fd, message)
            except OSError:
                pass
"""


@ASSERT_FORMATS
@pytest.mark.parametrize("program", [
    FD_HUNT + "hunt()\n" + WRONG + "os._exit(0)\n",  # forge at load time, then leave
    FD_HUNT + "def f(x):\n    hunt()\n    return x + 1\n",  # forge from inside the call
    FD_HUNT + "def f(x):\n    hunt()\n    os._exit(0)\n",
], ids=["at-load", "in-call", "in-call-then-exit"])
def test_writing_forged_verdicts_to_every_file_descriptor_fails(tests, program):
    assert_rejected(run(program, tests))


@ASSERT_FORMATS
@pytest.mark.parametrize("program", [
    "import builtins\n_c = builtins.compile\n"
    "builtins.compile = lambda source, name, mode, *a, **k: _c('pass', name, mode)\n" + WRONG,
    "import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.eval = lambda *a, **k: True\n" + WRONG,
    "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n" + WRONG,
    "import sys\nsys.settrace(lambda *a: None)\nsys.setprofile(lambda *a: None)\n" + WRONG,
], ids=["compile", "exec-eval", "AssertionError", "settrace"])
def test_tampering_with_the_interpreter_fails(tests, program):
    assert_rejected(run(program, tests))


@ASSERT_FORMATS
@pytest.mark.parametrize("program", [
    "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
    "def f(x):\n    return Anything()\n",
    "class Int(int):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Int(x + 1)\n",
    "class Text(str):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Text('no')\n",
    "class Seq(list):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Seq()\n",
    "from unittest import mock\ndef f(x):\n    return mock.ANY\n",
    "class Meta(type):\n    def __eq__(cls, other):\n        return True\n"
    "class Anything(metaclass=Meta):\n    pass\ndef f(x):\n    return Anything\n",
], ids=["object", "int-subclass", "str-subclass", "list-subclass", "mock.ANY", "class"])
def test_objects_that_claim_equality_fail(tests, program):
    assert_rejected(run(program, tests))


def test_an_object_that_claims_truth_fails():
    tests = {"kind": "assert", "test_code": ["assert f(1)", "assert not f(2)"]}
    truthy = "class Yes:\n    def __bool__(self):\n        return True\ndef f(x):\n    return Yes()\n"
    assert_rejected(run(truthy, tests))
    assert run("def f(x):\n    return x == 1\n", tests)["correct"]


@pytest.mark.parametrize("test_code,wrong,right", [
    ("assert set(f(3)) == set([3, 6])", "set = lambda *a: 0\ndef f(x):\n    return [x]\n",
     "def f(x):\n    return [x, 2 * x]\n"),
    ("assert sorted(f(1)) == [1, 2]", "sorted = lambda *a, **k: [1, 2]\ndef f(x):\n    return [x]\n",
     "def f(x):\n    return [2 * x, x]\n"),
    ("assert math.isclose(f(1)[1], 2.0)",  # the test relies on the program's `import math`
     "import math\nmath.isclose = lambda *a, **k: True\ndef f(x):\n    return [x, 0]\n",
     "import math\ndef f(x):\n    return [x, 2.0 * x]\n"),
], ids=["set", "sorted", "math.isclose"])
def test_names_the_test_relies_on_stay_the_judges(test_code, wrong, right):
    tests = {"kind": "assert", "test_code": test_code}
    assert_rejected(run(wrong, tests))
    assert run(right, tests)["correct"]


def test_the_programs_own_check_is_never_called():
    program = "import os\ndef check(candidate):\n    os._exit(0)\ndef f(x):\n    return 3 * x\n"
    assert run(program, PLAIN_WITH_ENTRY_POINT)["correct"]  # had its check() run, the judge lost the program
    assert_rejected(run(program.replace("3 * x", "x + 1"), PLAIN_WITH_ENTRY_POINT))


@ASSERT_FORMATS
@pytest.mark.parametrize("program", [
    "import os, signal\ndef f(x):\n    os.kill(-1, signal.SIGKILL)\n",
    "import os, signal\ndef f(x):\n    os.kill(-1, signal.SIGSTOP)\n",
    "import socket\ndef f(x):\n    socket.socket(fileno=3).close()\n    return x + 1\n",
    "import os\ndef f(x):\n    os.close(3)\n    return 3 * x\n",  # right value, but no way left to say it
], ids=["kill-all", "stop-all", "close-channel", "close-fd"])
def test_attacking_the_judge_fails(tests, program):
    assert_rejected(run(program, tests, timeout_s=2))


def test_the_judge_cannot_be_traced():
    program = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
attached = sum(libc.ptrace(16, pid, None, None) == 0 for pid in range(1, 200))  # PTRACE_ATTACH
print(attached)
"""
    assert run(program, {"kind": "stdio", "inputs": [""], "outputs": ["0"]})["correct"]


@pytest.mark.parametrize("program", [
    "import json\njson.dumps = lambda *a, **k: '3'\n" + WRONG,
    "import json\njson.JSONEncoder.encode = lambda self, o: '3'\n" + WRONG,
    "import sys\nfor m in list(sys.modules.values()):\n    if hasattr(m, 'dumps'):\n"
    "        try:\n            m.dumps = lambda *a, **k: '3'\n        except Exception:\n            pass\n" + WRONG,
], ids=["json.dumps", "JSONEncoder", "every-dumps"])
def test_patching_the_result_encoder_fails(program):
    assert_rejected(run(program, {"kind": "call", "fn_name": "f", "inputs": [[1]], "outputs": [3]}))


@pytest.mark.parametrize("program", [
    "import os\n_exit = os._exit\nos._exit = lambda code: _exit(0)\nprint(3)\nraise RuntimeError('after printing')",
    "import sys, os\nsys.excepthook = lambda *a: None\nos._exit = lambda code: None\nprint(3)\nraise ValueError",
    "import os, sys\n_exit = os._exit\nos._exit = lambda code: _exit(0)\nprint(3)\nsys.exit(1)",
])
def test_a_crash_after_printing_stays_a_crash(program):
    verdict = run(program, {"kind": "stdio", "inputs": [""], "outputs": ["3"]})
    assert verdict["status"] == "runtime_error" and not verdict["correct"]


# ------------------------------------------------------------------------------------------ legitimate


@pytest.mark.parametrize("program", [
    "import threading, time\ndef later():\n    time.sleep(0.2)\n    print(input())\n"
    "threading.Thread(target=later).start()",  # never joined: Python joins it at exit
    "import atexit\nanswer = input()\natexit.register(lambda: print(answer))",
    "import sys\nprint(input())\nsys.stdout.close()",
    "import sys\nsys.stdout.write(input() + '\\n')\nsys.stdout.flush()\nsys.exit(0)",
    "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())",
    "import os\nos.write(1, (input() + '\\n').encode())",
], ids=["thread", "atexit", "stdout.close", "sys.exit(0)", "buffers", "os.write"])
def test_programs_a_real_judge_accepts_pass(program):
    assert run(program, {"kind": "stdio", "inputs": ["42\n"], "outputs": ["42\n"]})["correct"]


def test_call_results_that_are_not_json_types():
    big = {"kind": "call", "fn_name": "f", "inputs": [[20000]], "outputs": [2 ** 20000]}
    assert run("def f(n):\n    return 2 ** n\n", big)["correct"]  # over Python's 4300-digit default
    tests = {"kind": "call", "fn_name": "f", "inputs": [[1]], "outputs": [[1, 2]]}
    for value in ("(1, 2)", "{2, 1}", "collections.deque([1, 2])"):
        verdict = run(f"import collections\ndef f(x):\n    return {value}\n", tests)
        assert verdict["correct"] is (value != "collections.deque([1, 2])"), value  # a deque is not plain data


def test_digit_strings_stay_strings_in_every_call_format():
    from skyt1.data.livecodebench import tests_of

    row = {"question_id": "x", "metadata": '{"func_name": "f"}',
           "public_test_cases": '[{"input": "\\"512300\\"", "output": "\\"512301\\"", "testtype": "functional"}]',
           "private_test_cases": "[]"}
    program = "def f(s):\n    return str(int(s) + 1)\n"
    for tests in (tests_of(row),  # skyt1's LiveCodeBench loader
                  {"kind": "call", "fn_name": "f", "inputs": ['"512300"'], "outputs": ['"512301"']},  # raw
                  {"kind": "call", "fn_name": "f", "inputs": [["512300"]], "outputs": ["512301"]}):  # APPS
        assert run(program, tests)["correct"], tests
        assert_rejected(run("def f(s):\n    return int(s) + 1\n", tests))
