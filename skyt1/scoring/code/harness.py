"""Test harness that runs INSIDE the sandbox (standard library only; started as a script next to judge.py
and wire.py, which it imports).

It serves jobs, one JSON line each on stdin: {"mode": "stdio"|"call"|"assert", "code", "tests": [...],
"timeout_s", "memory_mb", "output_bytes", "early_stop", "private", ...}. It answers one JSON line per test
as soon as that test has run; with `early_stop` it then reads one line, "next" or "stop", from the scorer,
which compares the output with the expected one (expected outputs never enter the sandbox). After the last
test it writes {"end": true}.

Every test runs in a fresh process forked from this harness, with limits on CPU time, address space, file
size and message queues, a wall-clock timeout, and everything it started killed afterwards; the scratch
directory, /dev/shm, POSIX message queues and SysV IPC objects are wiped between tests, so nothing one test
or solution leaves behind reaches the next.

Nothing the verdict relies on runs in the program's process after its code did:
- stdio and call tests are judged outside the sandbox on what the program produced (its stdout, or its
  return value as data, see wire.py); the few harness steps left in the program's process (exit status,
  flushing) are bound before the program runs, so patching os._exit or json cannot change them;
- assert tests (HumanEval's check(candidate), MBPP's asserts) run in a separate JUDGE process forked
  before the program starts. The judge executes the test code and reaches the program only through
  calls over a socket: arguments go out as data, results come back as data (decoded into builtin values,
  so an object whose __eq__ always says True arrives as a reference that equals nothing but itself). The
  judge reports its verdict on a pipe the program never holds; a program that tampers with the
  interpreter (builtins.compile, exec, os._exit) tampers with its own process only.
"""

import atexit
import builtins
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import socket
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `python -I` leaves out the script's folder
import judge  # noqa: E402
import wire  # noqa: E402

del sys.path[0]

# Bound before any program runs: the steps a test process takes after the program's code cannot be
# redirected by patching these modules.
_exit, _write, _close = os._exit, os.write, os.close
_compile, _exec = compile, exec
_thread_shutdown, _run_exitfuncs = threading._shutdown, atexit._run_exitfuncs
_format_exception = traceback.format_exception
_result_text = wire.dumps

EXIT_OK, EXIT_RUNTIME, EXIT_COMPILE, EXIT_MEMORY = 0, 1, 2, 3
EXIT_STATUS = {EXIT_OK: "ok", EXIT_COMPILE: "compile_error", EXIT_MEMORY: "memory_limit"}
STDERR_TAIL = 2000
WORK = "/tmp"  # the private scratch directory (a tmpfs inside bwrap)
PRIVATE_DIRS = ("/dev/shm", "/dev/mqueue")  # wiped between tests inside bwrap (never the host's)
CHANNEL_FD = 3  # the program's end of the judge's socket, in assert mode

# APPS, TACO and LiveCodeBench run every stdin and call-based program after a block of common imports
# (typing names such as List for LeetCode signatures, math, collections, ...). They are imported once here,
# before any fork, so a test pays nothing for them.
_PRELUDE_SOURCE = """
import sys, time, itertools, collections, functools, math, heapq, bisect, random, string, re, fractions, copy
from itertools import accumulate, product, permutations, combinations, combinations_with_replacement
from collections import Counter, OrderedDict, deque, defaultdict, ChainMap
from functools import lru_cache, reduce, cache
from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2, inf
from heapq import heappush, heappop, heapify, heappushpop, heapreplace, nlargest, nsmallest
from bisect import bisect, bisect_left, bisect_right, insort
from typing import *
"""
PRELUDE = {}
exec(_PRELUDE_SOURCE, PRELUDE)
del PRELUDE["__builtins__"]


# ------------------------------------------------------------------------------------------ test processes


def _limit(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass


def _isolate(job, keep):
    """Common set-up of a test process: own process group, fds 0-2 + `keep` only, resource limits."""
    os.setpgid(0, 0)
    os.chdir(WORK)
    os.closerange(max([2] + keep) + 1, 1 << 16)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    _limit(resource.RLIMIT_CPU, int(job["timeout_s"]) + 1)
    _limit(resource.RLIMIT_AS, int(job["memory_mb"]) * 1024 * 1024)
    _limit(resource.RLIMIT_FSIZE, int(job["output_bytes"]))
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_MSGQUEUE, 1 << 20)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _redirect(index):
    """stdin from the test input, stdout/stderr to files; returns the harness's own stream objects."""
    fds = [os.open(f"{WORK}/in{index}", os.O_RDONLY),
           os.open(f"{WORK}/out{index}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
           os.open(f"{WORK}/err{index}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = sys.__stdin__ = open(0, closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", closefd=False)
    return sys.stdout, sys.stderr


def _program(job, index, channel_fd):
    """The program's process (never returns). Runs the untrusted program as `python solution.py` would:
    uncaught exception -> traceback and exit 1, SystemExit -> its code, then non-daemon threads are
    joined, atexit hooks run and stdout is flushed (a program may have closed it)."""
    mode = job["mode"]
    status = EXIT_RUNTIME
    try:
        channel = None
        if channel_fd is not None:
            if channel_fd != CHANNEL_FD:
                os.dup2(channel_fd, CHANNEL_FD)
            channel = socket.socket(fileno=CHANNEL_FD)
        _isolate(job, [CHANNEL_FD] if channel is not None else [])
        out, err = _redirect(index)
        atexit._clear()
        sys.argv = ["solution.py"]
        sys.set_int_max_str_digits(0)
        status = _run_program(job, index, mode, channel)
        status = _finish(status, out, err)
    finally:
        _exit(status)


def _run_program(job, index, mode, channel):
    try:
        code = _compile_program(job["code"], mode)
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as e:
        print(f"compile error: {e!r}", file=sys.stderr)
        if channel is not None:
            judge.send(channel, {"load_error": ["compile_error", repr(e)[:500]]})
        return EXIT_COMPILE
    env = {"__name__": "__main__", "__builtins__": builtins}
    if mode in ("stdio", "call"):
        env.update(PRELUDE)
    try:
        if mode == "assert":
            if job.get("prelude_code"):  # e.g. the imports of a HumanEval prompt, which precede the completion
                _exec(_compile(job["prelude_code"], "prelude.py", "exec"), env)
            _exec(code, env)
            if job.get("setup_code"):  # MBPP: set-up that uses the program's classes runs after it
                _exec(_compile(job["setup_code"], "setup.py", "exec"), env)
            judge.send(channel, {"ready": True})
            judge.serve(channel, env)
            return EXIT_OK
        try:
            _exec(code, env)
        except BaseException as e:  # noqa: BLE001
            if mode == "call" and not isinstance(e, SystemExit):  # APPS: a program that cannot even load
                sys.stderr.write("error while loading the program: " + "".join(_format_exception(e))[-1500:])
                return EXIT_COMPILE
            raise
        if mode == "call":
            _call(job, job["tests"][index], env)
        return EXIT_OK
    except SystemExit as e:
        return _exit_code(e)
    except MemoryError:
        _report_load_error(channel, "memory_limit", "MemoryError")
        return EXIT_MEMORY
    except BaseException as e:  # noqa: BLE001 - any exception from untrusted code is a runtime error
        _report_load_error(channel, "runtime_error", f"{type(e).__name__}: {e}"[:500])
        try:
            sys.stderr.write("".join(_format_exception(e)))
        except BaseException:  # noqa: BLE001
            pass
        return EXIT_RUNTIME


def _report_load_error(channel, status, detail):
    if channel is not None:
        try:
            judge.send(channel, {"load_error": [status, detail]})
        except BaseException:  # noqa: BLE001
            pass


def _exit_code(e):
    code = e.code
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:  # noqa: BLE001
        pass
    return EXIT_RUNTIME


def _finish(status, out, err):
    """What the interpreter does at exit: join non-daemon threads, run atexit hooks, flush the streams."""
    for step in (_thread_shutdown, _run_exitfuncs):
        try:
            step()
        except BaseException:  # noqa: BLE001 - as Python: an error in an exit hook does not change the status
            pass
    for stream in {id(s): s for s in (sys.stdout, sys.stderr, out, err)}.values():
        try:
            if not stream.closed:
                stream.flush()
        except BaseException:  # noqa: BLE001
            if stream is out:
                status = status or EXIT_RUNTIME
    return status


def _compile_program(source, mode):
    try:
        return _compile(source, "solution.py", "exec")
    except SyntaxError as e:
        # APPS runs stdin programs as the body of a function, so a top-level `return` ends the program
        if mode != "stdio" or "'return' outside function" not in str(e):
            raise
    body = "".join("    " + line for line in source.splitlines(True))
    return _compile(f"def _program():\n{body}\n_program()\n", "solution.py", "exec")


def _call(job, args, env):
    name = job["fn_name"]
    fn = env.get(name)
    if fn is None and "Solution" in env:
        fn = getattr(env["Solution"](), name)
    if fn is None:
        raise NameError(f"function {name!r} is not defined")
    result = fn(**args) if isinstance(args, dict) else fn(*args)
    try:
        text = _result_text(result)  # data only: never objects the program created
    except wire.WireError as e:
        raise TypeError(f"returned {e}") from None
    fd = os.open(WORK + "/result", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    data = text.encode()
    while data:
        data = data[_write(fd, data):]
    _close(fd)


# ------------------------------------------------------------------------------------------ the judge's process


def _judge(job, test, sock, verdict_fd):
    """The judge's process (never returns): runs the test code against the program, reports on verdict_fd."""
    verdict = {"status": "runtime_error", "detail": "the judge did not finish"}
    try:
        _isolate(job, [sock.fileno(), verdict_fd])
        null = os.open(os.devnull, os.O_RDWR)  # the test code may print; never onto the harness's stdout
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        verdict = judge.judge_test(job, test, judge.Rpc(sock))
    except BaseException as e:  # noqa: BLE001
        verdict = {"status": "runtime_error", "detail": f"judge: {type(e).__name__}: {e}"[:500]}
    finally:
        try:
            _write(verdict_fd, json.dumps(verdict).encode())
        finally:
            _exit(0)


# ------------------------------------------------------------------------------------------ the harness


def _kill_all(pids, private):
    """Kill the test's processes and everything they started. In our own pid namespace kill(-1) reaches
    every process but us and init; without one, their process groups are the best we can do."""
    targets = [-1] if private else [-pid for pid in pids]
    for target in targets:
        try:
            os.kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_any(fds, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        return []
    return select.select(fds, [], [], left)[0]


def _status_of(wait_status):
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        return ("timeout" if sig == signal.SIGXCPU else "runtime_error"), {"signal": sig}
    code = os.WEXITSTATUS(wait_status)
    return EXIT_STATUS.get(code, "runtime_error"), {"exit_code": code}


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.002)


def _read(path, limit, tail=False):
    try:
        with open(path, "rb") as f:
            if tail:
                f.seek(max(0, os.fstat(f.fileno()).st_size - limit))
            data = f.read(limit + 1)
    except OSError:
        return "", False
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


def _fork(target, *args):
    pid = os.fork()
    if pid == 0:
        try:
            target(*args)
        finally:
            _exit(EXIT_RUNTIME)
    return pid


def _run_test(job, index, test):
    mode = job["mode"]
    with open(f"{WORK}/in{index}", "w") as f:
        f.write(test if mode == "stdio" else "")
    t0 = time.monotonic()
    deadline = t0 + float(job["timeout_s"])
    judge = verdict_r = None
    if mode == "assert":
        judge_sock, program_sock = socket.socketpair()
        verdict_r, verdict_w = os.pipe()
        judge = _fork(_judge, job, test, judge_sock, verdict_w)
        judge_sock.close()
        os.close(verdict_w)
        program = _fork(_program, job, index, program_sock.fileno())
        program_sock.close()
    else:
        program = _fork(_program, job, index, None)
    program_fd = os.pidfd_open(program)
    watched = [program_fd] + ([verdict_r] if verdict_r is not None else [])
    program_status = verdict = None
    while True:
        ready = _wait_any(watched, deadline)
        if not ready:
            break
        if program_fd in ready and program_status is None:
            program_status = os.waitpid(program, 0)[1]
            watched.remove(program_fd)
            if verdict_r is None:
                break
        if verdict_r is not None and verdict_r in ready:
            verdict = _read_verdict(verdict_r)
            break
    elapsed = time.monotonic() - t0
    os.close(program_fd)
    _kill_all([p for p in (program, judge) if p], job["private"])
    if program_status is None:
        try:
            _, program_status = os.waitpid(program, 0)
        except ChildProcessError:
            pass
    _reap()
    record = {"index": index, "seconds": round(elapsed, 4)}
    if verdict is not None and verdict.get("status") != "program_gone":
        record["status"] = verdict["status"]
        record["detail"] = verdict.get("detail")
    elif elapsed >= float(job["timeout_s"]) and (verdict is None or program_status is None):
        record["status"] = "timeout"
    elif program_status is not None:
        status, extra = _status_of(program_status)
        record["status"] = "runtime_error" if (mode == "assert" and status == "ok") else status
        record.update(extra)
        if verdict is not None:
            record["detail"] = verdict.get("detail")
    else:
        record["status"] = "timeout"
    if verdict_r is not None:
        os.close(verdict_r)
    limit = int(job["output_bytes"])
    record["stdout"], record["truncated"] = _read(f"{WORK}/out{index}", limit)
    record["stderr"], _ = _read(f"{WORK}/err{index}", STDERR_TAIL, tail=True)
    if "MemoryError" in record["stderr"] and record["status"] == "runtime_error":
        record["status"] = "memory_limit"
    if mode == "call" and record["status"] == "ok":
        record["result"], truncated = _read(WORK + "/result", limit)
        record["truncated"] = record["truncated"] or truncated
        if not record["result"]:
            record["status"] = "runtime_error"
    _wipe(job["private"])
    return record


def _read_verdict(fd):
    data = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    try:
        verdict = json.loads(data)
    except ValueError:
        return None
    return verdict if isinstance(verdict, dict) and isinstance(verdict.get("status"), str) else None


def _wipe(private):
    """Nothing a test wrote survives it (the next test, or the next job, starts clean)."""
    for folder in (WORK,) + (PRIVATE_DIRS if private else ()):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass
    if private:
        _remove_sysv_ipc()


# SysV IPC objects live in the sandbox's IPC namespace (shared by its tests) until removed.
_IPC_RMID, _SHM_STAT_ANY, _SEM_STAT_ANY, _MSG_STAT_ANY = 0, 15, 20, 13
_SHM_INFO, _SEM_INFO, _MSG_INFO = 14, 19, 12
_libc = None


def _remove_sysv_ipc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(1024)
    for info, stat, remove in (
        (lambda: _libc.shmctl(0, _SHM_INFO, buf), lambda i: _libc.shmctl(i, _SHM_STAT_ANY, buf),
         lambda ident: _libc.shmctl(ident, _IPC_RMID, None)),
        (lambda: _libc.semctl(0, 0, _SEM_INFO, buf), lambda i: _libc.semctl(i, 0, _SEM_STAT_ANY, buf),
         lambda ident: _libc.semctl(ident, 0, _IPC_RMID)),
        (lambda: _libc.msgctl(0, _MSG_INFO, buf), lambda i: _libc.msgctl(i, _MSG_STAT_ANY, buf),
         lambda ident: _libc.msgctl(ident, _IPC_RMID, None)),
    ):
        highest = info()
        for index in range(highest + 1):
            ident = stat(index)
            if ident >= 0:
                remove(ident)


def _not_dumpable():
    """Test processes run as the same user: without this, a program could ptrace the harness or the
    judge (both non-dumpable: a fork inherits it) and forge results."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def run_job(job, out, control):
    for index, test in enumerate(job["tests"]):
        record = _run_test(job, index, test)
        out.write(json.dumps(record) + "\n")
        out.flush()
        stop = record["status"] == "compile_error"
        if job.get("early_stop"):  # the scorer answers every record: "next" or "stop"
            stop = control.readline().strip() != b"next" or stop
        if stop:
            break
    out.write(json.dumps({"end": True}) + "\n")
    out.flush()


def main():
    """Serve jobs, one JSON line each on stdin, until stdin closes."""
    global WORK
    _not_dumpable()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.set_int_max_str_digits(0)
    if len(sys.argv) > 1:
        WORK = sys.argv[1]
    control = sys.stdin.buffer
    while True:
        line = control.readline()
        if not line:
            return
        run_job(json.loads(line), sys.stdout, control)


if __name__ == "__main__":
    main()
