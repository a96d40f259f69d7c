"""Hostile programs are contained and judged wrong; nothing they start outlives the verdict.

Most programs here would PASS their test if the attack worked (the expected output is the stolen value),
so a verdict of "not correct" proves the attack failed.
"""

import socket
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from skyt1.scoring import ScoringPool, score
from skyt1.scoring.code import SandboxUnavailable, sandbox, score_code

from .conftest import cmdline, descendants, fenced


def _stdio(expected: str, inputs: str = "") -> dict:
    return {"kind": "stdio", "inputs": [inputs], "outputs": [expected]}


pytestmark = pytest.mark.usefixtures("no_stray_processes")


def run(program: str, tests: dict, **kw) -> dict:
    verdict = score("code", fenced(program), tests, **kw)
    assert verdict["isolation"] == "bwrap", "bubblewrap must work on the test machine"
    return verdict


def test_bwrap_is_used_and_recorded():
    verdict = run("print(input())", _stdio("hi\n", "hi\n"))
    assert verdict["correct"] and verdict["isolation"] == "bwrap"


def test_environment_secrets_are_invisible(monkeypatch):
    secret = "sk-" + uuid.uuid4().hex
    monkeypatch.setenv("SKYT1_TEST_API_KEY", secret)
    program = "import os\nprint(os.environ.get('SKYT1_TEST_API_KEY'))"
    assert not run(program, _stdio(secret))["correct"]


def test_host_files_home_and_tmp_are_invisible(tmp_path):
    token = uuid.uuid4().hex
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(token)
    program = (f"import os\nout = open({str(secret_file)!r}).read()\n"
               "print(out)")
    verdict = run(program, _stdio(token))
    assert verdict["status"] == "runtime_error"
    listing = "import os\nprint(os.path.exists('/home'), os.path.exists('/root/.bashrc'), os.path.exists('/etc/passwd'),"\
              " os.path.exists('/proc/1'), os.path.exists(os.path.expanduser('~/.ssh')))"
    assert run(listing, _stdio("False False False False False"))["correct"]


def test_expected_outputs_are_not_readable():
    expected = "SKYT1EXPECTED-" + uuid.uuid4().hex
    program = """
import os
hit = None
for root, dirs, files in os.walk('/'):
    if root.startswith(('/usr', '/root/.pyenv', '/dev')):
        continue
    for name in files:
        try:
            data = open(os.path.join(root, name), 'rb').read(1 << 20)
        except OSError:
            continue
        i = data.find(b'SKYT1EXPECTED-')
        if i >= 0:
            hit = data[i:i + 46].decode()
print(hit)
"""
    verdict = run(program, _stdio(expected), timeout_s=10)
    assert verdict["status"] == "wrong_answer" and not verdict["correct"]


def test_no_network():
    greeting = uuid.uuid4().hex
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve():
        try:
            conn, _ = server.accept()
            conn.sendall(greeting.encode())
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    program = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint(s.recv(64).decode())"
    try:
        verdict = run(program, _stdio(greeting))
    finally:
        server.close()
    assert verdict["status"] == "runtime_error"


def test_cannot_write_outside_the_sandbox(tmp_path):
    target = tmp_path / "pwned"
    program = f"open({str(target)!r}, 'w').write('x')\nprint('done')"
    verdict = run(program, _stdio("done"))
    assert not verdict["correct"] and not target.exists()
    assert not run("open('/usr/pwned', 'w')\nprint('done')", _stdio("done"))["correct"]
    assert not Path("/usr/pwned").exists()


def test_private_tmp_is_writable_and_private():
    assert run("open('/tmp/x', 'w').write('7')\nprint(open('/tmp/x').read())", _stdio("7"))["correct"]


def test_fork_bomb_is_contained():
    t0 = time.monotonic()
    verdict = run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
                  _stdio("1"), timeout_s=2)
    assert not verdict["correct"] and time.monotonic() - t0 < 30


def test_memory_bomb():
    verdict = run("x = bytearray(8 * 1024 ** 3)\nprint(1)", _stdio("1"), memory_mb=512)
    assert verdict["status"] == "memory_limit"


def test_infinite_loop_times_out():
    t0 = time.monotonic()
    verdict = run("while True:\n    pass", {"kind": "stdio", "inputs": ["", ""], "outputs": ["1", "1"]}, timeout_s=1)
    assert verdict["status"] == "timeout" and verdict["passed"] == 0
    assert time.monotonic() - t0 < 10


def test_huge_output_is_cut_off():
    verdict = run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", _stdio("x"), timeout_s=5)
    assert not verdict["correct"] and verdict["status"] in ("runtime_error", "timeout")


def test_sleeping_children_do_not_outlive_the_verdict():
    program = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint(1)"
    assert run(program, _stdio("1"))["correct"]  # the fixture checks nothing is left


def test_the_harness_cannot_be_killed_or_traced():
    """The harness is the sandbox's pid 1: signals from inside do not reach it, and it is not dumpable."""
    program = ("import ctypes, os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\n"
               "print(os.getppid(), ctypes.CDLL(None).ptrace(16, 1, None, None))")  # PTRACE_ATTACH
    verdict = run(program, {"kind": "stdio", "inputs": ["", ""], "outputs": ["1 -1", "1 -1"]}, full_run=True)
    assert verdict["correct"] and verdict["passed"] == 2


def test_closing_leaves_no_sandbox_processes():
    run("print(1)", _stdio("1"))
    sandbox.close_idle_sessions()
    left = [cmdline(pid) for pid in descendants()]
    assert [c for c in left if "harness.py" in c or c.startswith("bwrap")] == []


def test_kill_everything_is_a_failure():
    program = "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint(1)"
    assert not run(program, _stdio("1"))["correct"]


FAILING_ASSERT = {"kind": "assert", "test_code": "def check(candidate):\n    assert candidate(1) == 3\n",
                  "entry_point": "f"}


@pytest.mark.parametrize("program", [
    "def f(x):\n    return x + 1\nimport sys\nsys.exit(0)",
    "def f(x):\n    return x + 1\nimport os\nos._exit(0)",
    "import atexit, os\natexit.register(lambda: os._exit(0))\ndef f(x):\n    return x + 1",
    "def f(x):\n    import os\n    os._exit(0)",
    "def f(x):\n    raise SystemExit(0)",
    "def f(x):\n    print('OK')\n    return x + 1",
    "import builtins\nbuiltins.AssertionError = SystemExit\ndef f(x):\n    return x + 1",
])
def test_exit_code_tricks_cannot_pass_failed_asserts(program):
    verdict = run(program, FAILING_ASSERT)
    assert not verdict["correct"] and verdict["passed"] == 0


def test_asserts_that_hold_pass():
    assert run("def f(x):\n    return x + 2", FAILING_ASSERT)["correct"]


def test_eq_trick_fails():
    program = ("class Anything:\n    def __eq__(self, other):\n        return True\n"
               "class Solution:\n    def solve(self, x):\n        return Anything()")
    tests = {"kind": "call", "fn_name": "solve", "inputs": [[1], [2]], "outputs": [2, 4]}
    verdict = run(program, tests)
    assert not verdict["correct"] and verdict["passed"] == 0
    subclass = "class Int(int):\n    def __eq__(self, other):\n        return True\ndef solve(x):\n    return Int(0)"
    assert not run(subclass, tests)["correct"]


@pytest.fixture
def no_bwrap(monkeypatch):
    """A machine without bubblewrap (PATH without it), on a laptop (no SkyPilot variables)."""
    monkeypatch.setenv("PATH", "/nonexistent")
    for name in sandbox.CLOUD_NODE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sandbox, "_warned", False)
    sandbox.bwrap_available.cache_clear()
    yield monkeypatch
    sandbox.bwrap_available.cache_clear()


def test_fallback_without_bwrap_is_loud_and_recorded(no_bwrap):
    with pytest.warns(RuntimeWarning, match="CODE SANDBOX DISABLED"):
        assert sandbox.choose_isolation() == "rlimits"
    verdict = score_code(fenced("print(input())"), _stdio("5", "5"), isolation="auto")
    assert verdict["correct"] and verdict["isolation"] == "rlimits"
    looping = score_code(fenced("while True:\n    pass"), _stdio("5"), timeout_s=1, isolation="auto")
    assert looping["status"] == "timeout" and looping["isolation"] == "rlimits"


def test_a_cloud_node_without_bwrap_fails_unless_the_fallback_is_allowed(no_bwrap):
    no_bwrap.setenv("SKYPILOT_TASK_ID", "sky-2026-01-01-00-00-00-000000_cluster_1")
    with pytest.raises(SandboxUnavailable) as failure:
        sandbox.choose_isolation()
    message = str(failure.value)
    assert "\n" not in message and "bwrap is not installed" in message and "--allow-unsandboxed" in message
    with ScoringPool(workers=1) as pool:
        with pytest.raises(SandboxUnavailable):  # before any work, in the caller's thread
            pool.submit("code", fenced("print(1)"), _stdio("1"))
        assert pool.submit("math", "\\boxed{1}", "1").result()["correct"]  # math needs no sandbox
    with ScoringPool(workers=1, allow_unsandboxed=True) as pool, pytest.warns(RuntimeWarning):
        assert pool.code_isolation() == "rlimits"
        verdict = pool.submit("code", fenced("print(1)"), _stdio("1")).result()
    assert verdict["correct"] and verdict["isolation"] == "rlimits"


# ------------------------------------------------------------------------------------------ state and shared memory

_SYSV = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
KEY, CREATE = 0x5C0FE, 0o1000 | 0o600
"""
LEAKS = {  # how a program leaves a token behind, and how a later one looks for it ("absent" if gone)
    "tmp": ("open('/tmp/leak', 'w').write(TOKEN)", "print(open('/tmp/leak').read())"),
    "dev-shm": ("open('/dev/shm/leak', 'w').write(TOKEN)", "print(open('/dev/shm/leak').read())"),
    "mqueue": ("os.close(os.open('/dev/mqueue/leak', os.O_CREAT | os.O_RDWR, 0o600))",
               "print(TOKEN if os.path.exists('/dev/mqueue/leak') else 'absent')"),
    "sysv-shm": (_SYSV + "ctypes.memmove(libc.shmat(libc.shmget(KEY, 4096, CREATE), None, 0), TOKEN.encode(), 32)",
                 _SYSV + "i = libc.shmget(KEY, 0, 0)\nprint(ctypes.string_at(libc.shmat(i, None, 0), 32).decode() "
                         "if i >= 0 else 'absent')"),
    "sysv-sem": (_SYSV + "libc.semget(KEY, 1, CREATE)", _SYSV + "print(TOKEN if libc.semget(KEY, 1, 0) >= 0 else 'absent')"),
    "sysv-msg": (_SYSV + "libc.msgget(KEY, CREATE)", _SYSV + "print(TOKEN if libc.msgget(KEY, 0) >= 0 else 'absent')"),
}


def _leaker(kind: str) -> str:
    write, read = (textwrap.indent(code.strip(), " " * depth) for code, depth in zip(LEAKS[kind], (4, 8), strict=True))
    return (f"import os\nTOKEN = {uuid.uuid4().hex!r}\nif input() == 'write':\n{write}\n    print('ok')\n"
            f"else:\n    try:\n{read}\n    except OSError:\n        print('absent')\n")


@pytest.mark.parametrize("kind", sorted(LEAKS))
def test_nothing_survives_from_one_test_to_the_next(kind):
    verdict = run(_leaker(kind), {"kind": "stdio", "inputs": ["write\n", "read\n"], "outputs": ["ok", "absent"]},
                  full_run=True)
    assert verdict["correct"], verdict


@pytest.mark.parametrize("kind", sorted(LEAKS))
def test_nothing_survives_from_one_solution_to_the_next(kind):
    program = _leaker(kind)  # run one after the other, they share the idle sandbox of this process
    assert run(program, _stdio("ok", "write\n"))["correct"]
    assert run(program, _stdio("absent", "read\n"))["correct"]


def test_dev_is_read_only():
    assert run("import os\ntry:\n    open('/dev/leak', 'w')\nexcept OSError as e:\n    print(e.errno)",
               _stdio("30"))["correct"]  # EROFS


def test_dev_shm_is_capped():
    program = """
written = 0
try:
    for i in range(1024):  # files of 1 MiB (one file alone may not pass the file size limit)
        with open(f'/dev/shm/part{i}', 'wb') as f:
            f.write(b'x' * (1 << 20))
        written += 1
except OSError:
    pass
print('capped' if written <= 64 else f'wrote {written} MiB')
"""
    assert run(program, _stdio("capped"), memory_mb=2048)["correct"]


def test_sysv_shared_memory_is_capped():
    program = _SYSV + """
size = 2 << 30
segment = libc.shmget(KEY, ctypes.c_size_t(size), CREATE)
address = libc.shmat(segment, None, 0) if segment >= 0 else None
if address in (None, ctypes.c_void_p(-1).value):
    print('refused')
else:
    ctypes.memset(address, 1, size)
    print('wrote 2 GiB')
"""
    verdict = run(program, _stdio("wrote 2 GiB"), memory_mb=512)
    assert not verdict["correct"] and verdict["status"] in ("wrong_answer", "memory_limit", "runtime_error")
