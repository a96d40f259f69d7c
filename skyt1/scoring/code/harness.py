"""Test harness that runs INSIDE the sandbox (standard library only; started as a script).

It serves jobs, one JSON line each on stdin: {"mode": "stdio"|"call"|"assert", "code", "tests": [...],
"timeout_s", "memory_mb", "output_bytes", "early_stop", "pid_namespace"}. For every test it forks a child
that applies the resource limits, runs the untrusted program, and exits; the harness waits with a
wall-clock timeout, then kills everything the child started and wipes the scratch directory, so one
harness serves many solutions without one seeing another (sandbox start-up is paid once per worker). It writes one JSON line per test to its own stdout, which the
child cannot reach (the child's fds are closed; no /proc in the sandbox).

Expected outputs are never part of the job: the harness reports what the program produced (stdout text,
or the JSON text of a returned value) and the comparison happens outside the sandbox. For assert-style
tests the child only learns a per-test random nonce through a pipe at a random fd number, reads it after
all asserts ran, and writes it back on a second pipe: exit codes, atexit hooks, sys.exit and os._exit
cannot produce it. (Python code sharing an interpreter with its tests can always inspect that interpreter;
deliberately hunting for the harness's pipes is outside this guarantee, and the sandbox still contains it.)
"""

import json
import os
import random
import resource
import select
import shutil
import signal
import sys
import time

EXIT_OK, EXIT_RUNTIME, EXIT_COMPILE, EXIT_MEMORY, EXIT_ASSERT = 0, 1, 2, 3, 4
STDERR_TAIL = 2000
WORK = "/tmp"  # the private scratch directory (a tmpfs inside bwrap)


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


def _limit(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass


def _child(job, test, index, nonce_r, verdict_w):
    os.setpgid(0, 0)
    workdir = f"{WORK}/t{index}"
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    out_fd = os.open(f"{WORK}/out{index}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err_fd = os.open(f"{WORK}/err{index}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    in_fd = os.open(f"{WORK}/in{index}", os.O_RDONLY)
    os.dup2(in_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    # Hide the two verdict pipes at random fd numbers, then close everything else (incl. the harness stdout).
    keep = []
    if nonce_r is not None:
        keep = random.sample(range(100, 1000), 2)
        os.dup2(nonce_r, keep[0])
        os.dup2(verdict_w, keep[1])
        nonce_r, verdict_w = keep
    low = 3
    for fd in sorted(keep) + [1024]:
        os.closerange(low, fd)
        low = fd + 1
    cpu = int(job["timeout_s"]) + 1
    _limit(resource.RLIMIT_CPU, cpu)
    _limit(resource.RLIMIT_AS, int(job["memory_mb"]) * 1024 * 1024)
    _limit(resource.RLIMIT_FSIZE, int(job["output_bytes"]))
    _limit(resource.RLIMIT_CORE, 0)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    sys.argv = ["solution.py"]
    mode = job["mode"]
    try:
        code = _compile(job["code"], mode)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        print(f"compile error: {e!r}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_COMPILE)
    env = {"__name__": "__main__", "__builtins__": __builtins__}
    if mode in ("stdio", "call"):
        env.update(PRELUDE)
    status = EXIT_OK
    try:
        try:
            if job.get("prelude_code"):  # e.g. the imports of a HumanEval prompt, which precede the completion
                exec(compile(job["prelude_code"], "prelude.py", "exec"), env)
            exec(code, env)
        except SystemExit:
            if mode != "stdio":
                raise
        except BaseException as e:  # noqa: BLE001
            if mode == "call":  # APPS semantics: a program that cannot even be loaded did not compile
                print(f"error while loading the program: {e!r}", file=sys.stderr)
                sys.stderr.flush()
                os._exit(EXIT_COMPILE)
            raise
        if mode == "call":
            _call(job, test, env)
        elif mode == "assert":
            if job.get("setup_code"):
                exec(compile(job["setup_code"], "setup.py", "exec"), env)
            exec(compile(test, "test.py", "exec"), env)
            if job.get("entry_point"):
                env["check"](env[job["entry_point"]])
            nonce = os.read(nonce_r, 64)
            os.write(verdict_w, nonce)
    except MemoryError:
        status = EXIT_MEMORY
    except AssertionError as e:
        status = EXIT_ASSERT
        print(f"assertion failed: {e!r}", file=sys.stderr)
    except BaseException as e:  # noqa: BLE001 - any exception from untrusted code is a runtime error
        status = EXIT_RUNTIME
        try:
            import traceback

            traceback.print_exception(e)
        except BaseException:  # noqa: BLE001
            pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        status = status or EXIT_RUNTIME
    os._exit(status)


def _compile(source, mode):
    try:
        return compile(source, "solution.py", "exec")
    except SyntaxError as e:
        # APPS runs stdin programs as the body of a function, so a top-level `return` ends the program
        if mode != "stdio" or "'return' outside function" not in str(e):
            raise
    body = "".join("    " + line for line in source.splitlines(True))
    return compile(f"def _program():\n{body}\n_program()\n", "solution.py", "exec")


def _call(job, args, env):
    name = job["fn_name"]
    fn = env.get(name)
    if fn is None and "Solution" in env:
        fn = getattr(env["Solution"](), name)
    if fn is None:
        raise NameError(f"function {name!r} is not defined")
    if isinstance(args, dict):
        result = fn(**args)
    else:
        result = fn(*args)
    text = json.dumps(result, default=_reject)  # data only: never objects the program created
    with open(WORK + "/result", "w") as f:
        f.write(text)
    sys.stdout.flush()


def _reject(obj):
    if isinstance(obj, (set, frozenset, tuple)):
        return sorted(obj, key=repr) if not isinstance(obj, tuple) else list(obj)
    raise TypeError(f"returned a {type(obj).__name__}, which is not plain data")


def _kill_all(pid, pid_namespace):
    """Kill the child and everything it started. In our own pid namespace kill(-1) reaches every process
    but us and init; without one, the child's process group is the best we can do."""
    try:
        if pid_namespace:
            os.kill(-1, signal.SIGKILL)
        else:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(pid, timeout_s):
    """Wait for pid up to timeout_s; return (wait status or None on timeout, seconds)."""
    t0 = time.monotonic()
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)
    elapsed = time.monotonic() - t0
    if not ready:
        return None, elapsed
    _, status = os.waitpid(pid, 0)
    return status, elapsed


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.005)


def _read(path, limit, tail=False):
    try:
        with open(path, "rb") as f:
            if tail:
                f.seek(max(0, os.fstat(f.fileno()).st_size - limit))
            data = f.read(limit + 1)
    except OSError:
        return "", False
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


def _run_test(job, index, test):
    mode = job["mode"]
    with open(f"{WORK}/in{index}", "w") as f:
        f.write(test if mode == "stdio" else "")
    nonce = nonce_r = nonce_w = verdict_r = verdict_w = None
    if mode == "assert":
        nonce = os.urandom(16).hex().encode()
        nonce_r, nonce_w = os.pipe()
        verdict_r, verdict_w = os.pipe()
    try:
        os.unlink(WORK + "/result")
    except OSError:
        pass
    pid = os.fork()
    if pid == 0:
        try:
            _child(job, test, index, nonce_r, verdict_w)
        finally:
            os._exit(EXIT_RUNTIME)
    if nonce is not None:
        os.close(nonce_r)
        os.close(verdict_w)
        os.write(nonce_w, nonce)
        os.close(nonce_w)
    status, elapsed = _wait(pid, float(job["timeout_s"]))
    _kill_all(pid, job["pid_namespace"])
    _reap()
    record = {"index": index, "seconds": round(elapsed, 4)}
    if status is None:
        record["status"] = "timeout"
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        record["status"] = "timeout" if sig == signal.SIGXCPU else "runtime_error"
        record["signal"] = sig
    else:
        code = os.WEXITSTATUS(status)
        record["status"] = {EXIT_OK: "ok", EXIT_COMPILE: "compile_error", EXIT_MEMORY: "memory_limit",
                EXIT_ASSERT: "wrong_answer"}.get(
            code, "runtime_error")
        record["exit_code"] = code
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
    if nonce is not None:
        got = b""
        try:
            os.set_blocking(verdict_r, False)
            got = os.read(verdict_r, 64)
        except OSError:
            pass
        os.close(verdict_r)
        record["asserts_passed"] = got == nonce and record["status"] == "ok"
    _wipe_scratch()
    return record


def _wipe_scratch():
    """Nothing a test wrote survives it (the next test, or the next job, starts clean)."""
    for entry in os.scandir(WORK):
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def _not_dumpable():
    """Children run as the same user: without this, a program could ptrace the harness and forge results."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def run_job(job, out):
    for index, test in enumerate(job["tests"]):
        record = _run_test(job, index, test)
        out.write(json.dumps(record) + "\n")
        out.flush()
        failed = record["status"] != "ok" or record.get("asserts_passed") is False
        if record["status"] == "compile_error" or (failed and job.get("early_stop")):
            break
    out.write(json.dumps({"end": True}) + "\n")
    out.flush()


def main():
    """Serve jobs, one JSON line each on stdin, until stdin closes. Each job's answer is one JSON line per
    test that ran, then {"end": true}."""
    global WORK
    _not_dumpable()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) > 1:
        WORK = sys.argv[1]
    for line in sys.stdin.buffer:
        run_job(json.loads(line), sys.stdout)


if __name__ == "__main__":
    main()
