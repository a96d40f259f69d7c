"""ScoringPool: score many responses in parallel while the caller keeps working.

Math runs in worker processes (Math-Verify's signal-based timeouts need a main thread, and sympy can hang):
each item gets a hard timeout (counted once its worker has imported what it needs), after which the worker
is killed and replaced and the verdict is `timeout`.
Code runs in long-lived sandboxes (one per worker); those are subprocesses, so a thread per job keeps all
cores busy. The isolation code runs under is decided once per pool (`code_isolation()`), before the first
code item: on a cloud node without bubblewrap it raises SandboxUnavailable unless `allow_unsandboxed`.
"""

from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from skyt1.scoring.math_worker import READY
from skyt1.scoring.registry import MATH_TIMEOUT_S, check_kind, invalid, score_in_thread, verdict

WORKER_START_TIMEOUT_S = 120.0


class _MathProcess:
    """One `skyt1.scoring.math_worker` subprocess, talking JSON lines over pipes."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "skyt1.scoring.math_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ready = False

    def _wait_ready(self) -> bool:
        """Wait (apart from any item's time limit) for the worker's imports: on a CPU busy with generation
        they take seconds, and charged to the first item they turned right answers into timeouts."""
        if not self.ready:
            ready, _, _ = select.select([self.proc.stdout], [], [], WORKER_START_TIMEOUT_S)
            self.ready = bool(ready) and self.proc.stdout.readline().strip() == READY
        return self.ready

    def call(self, args: tuple, kw: dict, timeout_s: float) -> dict | None:
        """The verdict, or None when the item ran out of time or the worker died (it is then dead)."""
        try:
            if not self._wait_ready():
                raise OSError("the math worker did not start")
            self.proc.stdin.write(json.dumps({"args": list(args), "kw": kw}) + "\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
            line = self.proc.stdout.readline() if ready else ""
            if line:
                return json.loads(line)
        except (OSError, ValueError):
            pass
        self.kill()
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class ScoringPool:
    """`with ScoringPool(workers=4) as pool: fut = pool.submit("math", response, "42")` -> Future[dict].

    full_run: run every code test (partial credit in `passed`) instead of stopping at the first failure.
    allow_unsandboxed: on a cloud node without bubblewrap, run code with resource limits only instead of
    failing (see `skyt1.scoring.code.sandbox.choose_isolation`).
    """

    def __init__(self, workers: int | None = None, timeout_s: float | None = None, memory_mb: int | None = None,
                 *, full_run: bool = False, allow_unsandboxed: bool = False):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.timeout_s, self.memory_mb = timeout_s, memory_mb
        self.full_run, self.allow_unsandboxed = full_run, allow_unsandboxed
        self._isolation: str | None = None
        self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="skyt1-score")
        self._idle: queue.SimpleQueue[_MathProcess] = queue.SimpleQueue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: list[_MathProcess] = []
        self._closed = False

    def __enter__(self) -> ScoringPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def code_isolation(self) -> str:
        """The isolation this pool runs code under ("bwrap" or "rlimits"), decided on first use; raises
        SandboxUnavailable (one line) when code may not run here. Call it up front to fail before any work."""
        if self._isolation is None:
            from skyt1.scoring.code.sandbox import choose_isolation

            self._isolation = choose_isolation("auto", allow_unsandboxed=self.allow_unsandboxed)
        return self._isolation

    def submit(self, kind: str, response, target, *, finish_reason: str | None = None, **kw) -> Future:
        """Score one response. `finish_reason` is how the response ended ("stop", "length", ...): math reads
        an answer stated in prose only from a response that finished normally."""
        check_kind(kind)
        if self._closed:
            raise RuntimeError("this ScoringPool is closed")
        kw.setdefault("timeout_s", self.timeout_s)
        kw.setdefault("memory_mb", self.memory_mb)
        if kind == "math":
            kw["finish_reason"] = finish_reason
        elif kind == "code":
            kw.setdefault("isolation", self.code_isolation())
            kw.setdefault("full_run", self.full_run)
        return self._threads.submit(self._score, kind, response, target, kw)

    def _score(self, kind: str, response, target, kw: dict) -> dict:
        try:
            if kind == "math":
                return self._score_math(response, target, kw)
            return score_in_thread(kind, response, target, **kw)
        except TypeError as e:  # unknown keyword for this scorer
            return invalid(str(e))

    def _score_math(self, response, reference, kw: dict) -> dict:
        timeout_s = kw.pop("timeout_s", None) or MATH_TIMEOUT_S
        kw.pop("memory_mb", None)
        unknown = set(kw) - {"answer_pattern", "finish_reason"}
        if unknown:
            return invalid(f"unknown option(s) for the math scorer: {', '.join(sorted(unknown))}")
        # Math-Verify's own timeouts are a backstop; the hard per-item limit is ours
        worker = self._checkout()
        result = worker.call((response, reference), {"timeout_s": timeout_s + 5, **kw}, timeout_s)
        if result is None:
            with self._lock:
                self._started -= 1
            return verdict(False, None, "timeout")
        self._idle.put(worker)
        return result

    def _checkout(self) -> _MathProcess:
        with self._lock:
            if self._idle.empty() and self._started < self.workers:
                self._started += 1
                proc = _MathProcess()
                self._all.append(proc)
                return proc
        while True:
            proc = self._idle.get()
            if proc.alive():
                return proc
            with self._lock:  # died on its own: replace it
                proc = _MathProcess()
                self._all.append(proc)
                return proc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._threads.shutdown(wait=True)
        for proc in self._all:
            proc.kill()
        self._all.clear()
        from skyt1.scoring.code.sandbox import close_idle_sessions

        close_idle_sessions()
