"""vLLM's own OpenAI-compatible server on 127.0.0.1: start it, wait until it is healthy, stop it.

The server runs under `supervise.py` (its parent), which stops the server's whole process group when this
process closes the pipe to it or dies, even by SIGKILL: no server is ever left holding GPUs. Its output goes
to a log file whose last lines every error quotes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from skyt1.engines.base import EngineUnavailable

HERE = Path(__file__).resolve().parent
SUPERVISE = HERE / "supervise.py"
LAUNCH = HERE / "vllm_launch.py"
_PORT_TAKEN = ("address already in use", "errno 98")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(message: str) -> None:
    print(f"vllm: {message}", file=sys.stderr, flush=True)


class VLLMServer:
    def __init__(self, python: str, serve_args: list[str], *, env: dict[str, str] | None = None,
                 startup_timeout_s: float = 3600.0, grace_s: float = 15.0,
                 progress: Callable[[str], None] = say, progress_every_s: float = 15.0):
        self.python, self.serve_args, self.env = python, list(serve_args), env
        self.startup_timeout_s, self.grace_s = startup_timeout_s, grace_s
        self.progress, self.progress_every_s = progress, progress_every_s
        self.dir = Path(tempfile.mkdtemp(prefix="skyt1-vllm-"))
        self.log_path = self.dir / "server.log"
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._keep_log = False

    @property
    def url(self) -> str:
        """The OpenAI API root (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def supervisor_pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the server and return once it answers /health; EngineUnavailable (with the log's tail) if not."""
        try:
            for _ in range(3):  # another process may take the free port between our check and the server's bind
                self._launch()
                if self._wait_healthy():
                    return
                self.stop(keep_log=True)
            raise self._error("could not bind a free port on 127.0.0.1 in 3 tries")
        except BaseException:  # Ctrl-C while loading, or the error above: leave nothing running
            self.stop(keep_log=True)
            raise

    def _launch(self) -> None:
        self.port = free_port()
        command = [sys.executable, str(SUPERVISE), str(self.grace_s), "--", self.python, str(LAUNCH), "serve",
                   *self.serve_args, "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            # A session of its own: a Ctrl-C in the terminal reaches skyt1, which then stops the server in order.
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                          env=self.env, start_new_session=True)

    def _wait_healthy(self) -> bool:
        """True once healthy; False when the port was taken; raises on death or timeout."""
        import httpx

        t0 = time.monotonic()
        next_note = t0 + self.progress_every_s
        health = self.url.removesuffix("/v1") + "/health"
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self._proc.poll() is not None:
                    if any(s in self.log_tail(40).lower() for s in _PORT_TAKEN):
                        return False
                    raise self._error(f"exited with code {self._proc.returncode} before it was ready")
                try:
                    if client.get(health).status_code == 200:
                        self.progress(f"server ready at {self.url} after {time.monotonic() - t0:.0f} s")
                        return True
                except httpx.HTTPError:
                    pass
                elapsed = time.monotonic() - t0
                if elapsed > self.startup_timeout_s:
                    raise self._error(f"was not ready after {self.startup_timeout_s:.0f} s (it was stopped)")
                if time.monotonic() >= next_note:
                    last = self.log_tail(1).strip()
                    self.progress(f"starting the server ({elapsed:.0f} s){': ' + last[:160] if last else ''}")
                    next_note += self.progress_every_s
                time.sleep(0.5)

    def check(self) -> None:
        """Raise EngineUnavailable if the server has exited (it is never restarted behind the caller's back)."""
        if self._proc is not None and self._proc.poll() is not None:
            raise self._error(f"exited with code {self._proc.returncode} during the run")

    def stop(self, *, keep_log: bool = False) -> None:
        """Stop the server and everything it started; idempotent. The log is deleted unless an error cited it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin and not proc.stdin.closed:
                try:
                    proc.stdin.close()  # end of file: the supervisor stops the server's process group
                except OSError:
                    pass
            try:
                proc.wait(timeout=self.grace_s + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._keep_log = self._keep_log or keep_log
        if not self._keep_log:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 200 * lines - 4096))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _error(self, what: str) -> EngineUnavailable:
        self._keep_log = True
        tail = "\n".join(f"  | {line}" for line in self.log_tail(20).splitlines())
        return EngineUnavailable(f"the vLLM server {what}; see {self.log_path} (last lines below)\n{tail}")
