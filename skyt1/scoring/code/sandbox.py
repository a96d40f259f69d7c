"""Run untrusted Python programs: bubblewrap isolation plus resource limits.

Inside bwrap (`--unshare-all`: no network, own pid/ipc/uts/user namespaces) the program sees only the
Python install and /usr read-only, a private size-capped tmpfs as /tmp, no /home, no /proc, no host files
and an empty environment. The harness (`harness.py`) forks one child per test with limits on CPU time,
address space and file size, a wall-clock timeout, and kills everything the child started. The number of
processes is capped by a pids cgroup (when running as root, where RLIMIT_NPROC does not apply) or by
RLIMIT_NPROC. When bwrap cannot run, programs run with the limits alone and a loud warning; every verdict
records which isolation was used (`isolation`: "bwrap" or "rlimits").
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HARNESS = Path(__file__).with_name("harness.py")
SANDBOX_HARNESS = "/harness.py"


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 6.0  # wall clock per test (LiveCodeBench uses 6 s); CPU time limit is this + 1 s
    memory_mb: int = 1024  # address space per test process
    output_bytes: int = 4 * 1024 * 1024  # stdout/file size per test
    max_processes: int = 64  # processes + threads of one sandbox
    tmpfs_mb: int = 64  # private /tmp


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program under test)."""


def _python() -> tuple[str, str]:
    """The real interpreter (not a venv shim) and the install prefix to expose in the sandbox."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def _bwrap_command(python: str, prefix: str, limits: Limits) -> list[str]:
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
           "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    if not prefix.startswith("/usr/"):
        cmd += ["--ro-bind", prefix, prefix]
    cmd += ["--dev", "/dev", "--size", str(limits.tmpfs_mb * 1024 * 1024), "--tmpfs", "/tmp",
            "--ro-bind", str(HARNESS), SANDBOX_HARNESS, "--remount-ro", "/", "--cap-drop", "ALL",
            "--chdir", "/tmp", python, "-I", "-B", SANDBOX_HARNESS]
    return cmd


@functools.lru_cache(maxsize=1)
def bwrap_available() -> tuple[bool, str]:
    """Can bwrap start a sandbox here? (cached; probes once per process)"""
    if shutil.which("bwrap") is None:
        return False, "bwrap is not installed (apt-get install bubblewrap)"
    python, prefix = _python()
    cmd = _bwrap_command(python, prefix, Limits())[:-4] + [python, "-I", "-c", "print('ok')"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bwrap failed to start: {e}"
    if out.returncode != 0 or out.stdout.strip() != "ok":
        return False, f"bwrap failed to start: {out.stderr.strip()[:300]}"
    return True, ""


@functools.lru_cache(maxsize=1)
def _pids_cgroup_root() -> str | None:
    """A writable pids cgroup hierarchy (v1 or v2), used when running as root."""
    if os.geteuid() != 0:
        return None
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        probe = os.path.join(root, f"skyt1-probe-{os.getpid()}")
        try:
            os.mkdir(probe)
        except OSError:
            continue
        ok = os.path.exists(os.path.join(probe, "pids.max"))
        os.rmdir(probe)
        if ok:
            return root
    return None


class _ProcessCap:
    """Caps the processes of one sandbox run: a fresh pids cgroup, else RLIMIT_NPROC, else nothing."""

    def __init__(self, limit: int):
        self.limit = limit
        self.path = None
        self.kind = "none"
        root = _pids_cgroup_root()
        if root is not None:
            path = os.path.join(root, f"skyt1-{uuid.uuid4().hex[:12]}")
            try:
                os.mkdir(path)
                Path(path, "pids.max").write_text(str(limit))
                self.path, self.kind = path, "cgroup"
            except OSError:
                self._remove(path)
        elif os.geteuid() != 0:
            self.kind = "rlimit"
        else:
            _warn_once("no process-count limit: running as root (where RLIMIT_NPROC does not apply) "
                       "without a writable pids cgroup")
        self._procs_fd = os.open(os.path.join(self.path, "cgroup.procs"), os.O_WRONLY) if self.path else None

    def preexec(self) -> None:  # runs in the forked child before exec: keep it minimal
        if self._procs_fd is not None:
            os.write(self._procs_fd, b"0")
        elif self.kind == "rlimit":
            resource.setrlimit(resource.RLIMIT_NPROC, (self.limit, self.limit))

    def close(self) -> None:
        if self._procs_fd is not None:
            os.close(self._procs_fd)
            self._procs_fd = None
        if self.path:
            self._remove(self.path)

    @staticmethod
    def _remove(path: str) -> None:
        for _ in range(200):  # dying processes leave the cgroup within milliseconds
            try:
                for pid in Path(path, "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)
        log.warning("could not remove the sandbox cgroup %s", path)


_warned = False
_warned_messages: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _warned_messages:
        _warned_messages.add(msg)
        log.warning(msg)


def _warn_no_bwrap(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        msg = (f"CODE SANDBOX DISABLED: {reason}. Untrusted programs now run with resource limits only: "
               "they can read host files and reach the network. Install bubblewrap to isolate them.")
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


class _Session:
    """One long-lived harness (inside bwrap, or bare with limits only) that runs jobs one at a time."""

    def __init__(self, use_bwrap: bool, limits: Limits):
        python, prefix = _python()
        self.use_bwrap = use_bwrap
        self.scratch = None
        if use_bwrap:
            cmd = _bwrap_command(python, prefix, limits)
        else:
            self.scratch = tempfile.mkdtemp(prefix="skyt1-sandbox-")
            cmd = [python, "-I", "-B", str(HARNESS), self.scratch]
        self.cap = _ProcessCap(limits.max_processes)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     cwd=self.scratch, env={} if not use_bwrap else None, start_new_session=True,
                                     preexec_fn=self.cap.preexec)
        self._buffer = b""

    def run(self, job: dict, timeout_s: float) -> tuple[list[dict], bool]:
        """(records, True) when the job finished; (records so far, False) when the harness died or the job
        ran out of time, after which this session is closed."""
        records, deadline = [], time.monotonic() + timeout_s
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.flush()
            while True:
                line = self._readline(deadline)
                if line is None:
                    break
                record = json.loads(line)
                if record.get("end"):
                    return records, True
                records.append(record)
        except (OSError, ValueError):
            pass
        self.close()
        return records, False

    def _readline(self, deadline: float) -> bytes | None:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        _killpg(self.proc.pid)  # the session is bwrap's (or the bare harness's); everything in it goes
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc.wait()
        self.cap.close()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


_idle: dict[tuple, list[_Session]] = {}
_idle_lock = threading.Lock()


def _checkout(use_bwrap: bool, limits: Limits) -> _Session:
    key = (use_bwrap, limits.tmpfs_mb, limits.max_processes)
    with _idle_lock:
        while _idle.get(key):
            session = _idle[key].pop()
            if session.alive():
                return session
            session.close()
    return _Session(use_bwrap, limits)


def _checkin(session: _Session, limits: Limits) -> None:
    with _idle_lock:
        _idle.setdefault((session.use_bwrap, limits.tmpfs_mb, limits.max_processes), []).append(session)


def close_idle_sessions() -> None:
    """Stop every idle harness (the scoring pool calls this when it closes; also at exit)."""
    with _idle_lock:
        sessions = [s for group in _idle.values() for s in group]
        _idle.clear()
    for session in sessions:
        session.close()


atexit.register(close_idle_sessions)


def run_job(job: dict, limits: Limits, *, isolation: str = "auto") -> tuple[list[dict], dict]:
    """Run one program on its test inputs. Returns (per-test records, run info).

    isolation: "auto" (bwrap if it works, else limits with a warning), "bwrap" (fail if unavailable),
    "none" (limits only). A harness that dies (e.g. killed by the program) or overruns
    tests x (timeout + 1.5 s) + 10 s is killed with everything in it; its missing tests count as failed.
    """
    use_bwrap = False
    if isolation in ("auto", "bwrap"):
        use_bwrap, reason = bwrap_available()
        if not use_bwrap:
            if isolation == "bwrap":
                raise SandboxError(reason)
            _warn_no_bwrap(reason)
    elif isolation != "none":
        raise ValueError(f"isolation must be auto, bwrap or none, not {isolation!r}")
    job = dict(job, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb,
               output_bytes=limits.output_bytes, pid_namespace=use_bwrap)
    session = _checkout(use_bwrap, limits)
    records, finished = session.run(job, len(job["tests"]) * (limits.timeout_s + 1.5) + 10)
    if finished and use_bwrap:
        _checkin(session, limits)
    elif finished:  # without a pid namespace only closing the session's cgroup reaches escaped processes
        session.close()
    info = {"isolation": "bwrap" if use_bwrap else "rlimits", "process_limit": session.cap.kind,
            "harness_finished": finished, "limits": asdict(limits)}
    return records, info


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
