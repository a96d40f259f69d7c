"""Run untrusted Python programs: bubblewrap isolation plus resource limits.

Inside bwrap (`--unshare-all`: no network, own pid/ipc/uts namespaces) the program sees only the Python
install and /usr read-only, a read-only /dev with a private size-capped tmpfs at /dev/shm and its own
POSIX message queues, a private size-capped tmpfs as /tmp, no /home, no /proc, no host files and an empty
environment. The harness (`harness.py`) forks one process per test with limits on CPU time, address space
and file size, a wall-clock timeout, and kills everything the test started; it wipes /tmp, /dev/shm,
message queues and SysV IPC objects between tests. Processes (and, where the kernel offers it, memory) of
a sandbox are capped by a cgroup when running as root (where RLIMIT_NPROC does not apply), else by
RLIMIT_NPROC.

Which isolation runs is decided once per pool by `choose_isolation`: bwrap when it works; else, on a
cloud node (SkyPilot's variables are set) the run stops with a one-line error unless the user allowed
the fallback; elsewhere programs run with the limits alone and a loud warning. Every verdict records the
isolation used (`isolation`: "bwrap" or "rlimits").
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

HERE = Path(__file__).parent
HARNESS = HERE / "harness.py"
HARNESS_FILES = ("harness.py", "judge.py", "wire.py")  # the harness and the modules it imports
SANDBOX_DIR = "/skyt1"  # where they appear inside the sandbox
ISOLATIONS = ("bwrap", "rlimits")
CLOUD_NODE_VARIABLES = ("SKYPILOT_TASK_ID", "SKYPILOT_NODE_IPS")  # set by SkyPilot on its nodes
RECORD_GRACE_S = 5.0  # beyond the per-test timeout, how long the scorer waits for a test's record


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 6.0  # wall clock per test (LiveCodeBench uses 6 s); CPU time limit is this + 1 s
    memory_mb: int = 1024  # address space per test process
    output_bytes: int = 4 * 1024 * 1024  # stdout/file size per test
    max_processes: int = 64  # processes + threads of one sandbox
    tmpfs_mb: int = 64  # private /tmp
    shm_mb: int = 64  # private /dev/shm

    @property
    def sandbox_memory_mb(self) -> int:
        """Memory cap of a whole sandbox (cgroup): one test's program, its tmpfs files and the harness."""
        return self.memory_mb + self.tmpfs_mb + self.shm_mb + 256


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program under test)."""


class SandboxUnavailable(SandboxError, ValueError):
    """bubblewrap cannot run here and the fallback to resource limits alone was not allowed: a setting to
    change (a ValueError, so the CLI reports it in one line like any other bad setting)."""


def _python() -> tuple[str, str]:
    """The real interpreter (not a venv shim) and the install prefix to expose in the sandbox."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def _bwrap_prefix(prefix: str, limits: Limits) -> list[str]:
    """bwrap and its mounts, up to (not including) the command to run."""
    cmd = ["bwrap", "--unshare-all", "--as-pid-1", "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
           "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    if not prefix.startswith("/usr/"):
        cmd += ["--ro-bind", prefix, prefix]
    return cmd + [
        "--dev", "/dev", "--size", str(limits.shm_mb << 20), "--tmpfs", "/dev/shm", "--mqueue", "/dev/mqueue",
        "--remount-ro", "/dev", "--size", str(limits.tmpfs_mb << 20), "--tmpfs", "/tmp",
        *[arg for name in HARNESS_FILES for arg in ("--ro-bind", str(HERE / name), f"{SANDBOX_DIR}/{name}")],
        "--remount-ro", "/", "--cap-drop", "ALL", "--chdir", "/tmp"]


def _harness_command(use_bwrap: bool, limits: Limits, scratch: str | None) -> list[str]:
    python, prefix = _python()
    if use_bwrap:
        return _bwrap_prefix(prefix, limits) + [python, "-I", "-B", f"{SANDBOX_DIR}/harness.py"]
    return [python, "-I", "-B", str(HARNESS), scratch]


@functools.lru_cache(maxsize=1)
def bwrap_available() -> tuple[bool, str]:
    """Can bwrap start a sandbox here? (cached; probes once per process)"""
    if shutil.which("bwrap") is None:
        return False, "bwrap is not installed (apt-get install bubblewrap)"
    python, prefix = _python()
    cmd = _bwrap_prefix(prefix, Limits()) + [python, "-I", "-c", "print('ok')"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bwrap failed to start: {e}"
    if out.returncode != 0 or out.stdout.strip() != "ok":
        return False, f"bwrap failed to start: {out.stderr.strip()[:300]}"
    return True, ""


def on_cloud_node() -> bool:
    return any(os.environ.get(name) for name in CLOUD_NODE_VARIABLES)


def choose_isolation(requested: str = "auto", *, allow_unsandboxed: bool = False) -> str:
    """The isolation code runs under: "bwrap" or "rlimits".

    requested: "auto" (bwrap if it works), "bwrap" (fail if it does not), "none" (limits only, on purpose).
    Without bwrap, "auto" fails on a cloud node unless `allow_unsandboxed`; elsewhere it falls back to
    the limits alone with a loud warning. Raises SandboxUnavailable with a one-line message.
    """
    if requested == "none":
        return "rlimits"
    if requested not in ("auto", "bwrap"):
        raise ValueError(f"isolation must be auto, bwrap or none, not {requested!r}")
    ok, reason = bwrap_available()
    if ok:
        return "bwrap"
    if requested == "bwrap":
        raise SandboxUnavailable(f"the code sandbox cannot start: {reason}")
    if on_cloud_node() and not allow_unsandboxed:
        raise SandboxUnavailable(
            f"the code sandbox cannot start on this node ({reason}); install bubblewrap in the task's setup, "
            "or accept running untrusted code with resource limits only: --allow-unsandboxed "
            "(recipe: filter.allow_unsandboxed: true)")
    _warn_no_bwrap(reason)
    return "rlimits"


# ------------------------------------------------------------------------------------------ cgroups

_CONTROL_FILES = {"pids": ("pids.max",), "memory": ("memory.max", "memory.limit_in_bytes")}


_probe_lock = threading.Lock()


def _cgroup_root(controller: str) -> str | None:
    with _probe_lock:  # sessions start from several threads at once: probe once, one thread at a time
        return _probe_cgroup_root(controller)


@functools.cache
def _probe_cgroup_root(controller: str) -> str | None:
    """A writable cgroup hierarchy (v1 or v2) offering `controller`, used when running as root."""
    if os.geteuid() != 0:
        return None
    for root in (f"/sys/fs/cgroup/{controller}", "/sys/fs/cgroup"):
        probe = os.path.join(root, f"skyt1-probe-{uuid.uuid4().hex[:12]}")
        try:
            os.mkdir(probe)
        except OSError:
            continue
        ok = any(os.path.exists(os.path.join(probe, f)) for f in _CONTROL_FILES[controller])
        os.rmdir(probe)
        if ok:
            return root
    return None


class _Cgroups:
    """Caps one sandbox: processes (a pids cgroup, else RLIMIT_NPROC, else nothing) and, where a memory
    cgroup is writable, the memory of everything in it (tmpfs files and SysV shared memory included)."""

    def __init__(self, limits: Limits):
        self.max_processes = limits.max_processes
        self.paths: dict[str, str] = {}
        self.process_cap = "none"
        name = f"skyt1-{uuid.uuid4().hex[:12]}"
        for controller, value in (("pids", limits.max_processes), ("memory", limits.sandbox_memory_mb << 20)):
            root = _cgroup_root(controller)
            if root is None:
                continue
            path = os.path.join(root, name)
            try:
                os.makedirs(path, exist_ok=True)
                control = next(f for f in _CONTROL_FILES[controller] if os.path.exists(os.path.join(path, f)))
                Path(path, control).write_text(str(value))
                self.paths[controller] = path
            except (OSError, StopIteration):
                pass
        if "pids" in self.paths:
            self.process_cap = "cgroup"
        elif os.geteuid() != 0:
            self.process_cap = "rlimit"
        else:
            _warn_once("no process-count limit: running as root (where RLIMIT_NPROC does not apply) "
                       "without a writable pids cgroup")
        self.memory_cap = "cgroup" if "memory" in self.paths else "rlimit"
        self._procs_fds = [os.open(os.path.join(p, "cgroup.procs"), os.O_WRONLY) for p in set(self.paths.values())]

    def preexec(self) -> None:  # runs in the forked child before exec: keep it minimal
        for fd in self._procs_fds:
            os.write(fd, b"0")
        if self.process_cap == "rlimit":
            resource.setrlimit(resource.RLIMIT_NPROC, (self.max_processes, self.max_processes))

    def oom_kills(self) -> int:
        """How many processes the memory cgroup has killed so far (0 without one)."""
        path = self.paths.get("memory")
        for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
            try:
                for line in Path(path, name).read_text().splitlines():
                    if line.startswith(key + " "):
                        return int(line.split()[1])
            except (OSError, TypeError, ValueError):
                continue
        return 0

    def close(self) -> None:
        for fd in self._procs_fds:
            os.close(fd)
        self._procs_fds = []
        for path in set(self.paths.values()):
            _remove_cgroup(path)
        self.paths = {}


def _remove_cgroup(path: str) -> None:
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


# ------------------------------------------------------------------------------------------ sessions


class _Session:
    """One long-lived harness (inside bwrap, or bare with limits only) that runs jobs one at a time."""

    def __init__(self, isolation: str, limits: Limits):
        self.isolation = isolation
        use_bwrap = isolation == "bwrap"
        self.scratch = None if use_bwrap else tempfile.mkdtemp(prefix="skyt1-sandbox-")
        self.cgroups = _Cgroups(limits)
        self.proc = subprocess.Popen(_harness_command(use_bwrap, limits, self.scratch), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.scratch,
                                     env={} if not use_bwrap else None, start_new_session=True,
                                     preexec_fn=self.cgroups.preexec)
        self._buffer = b""

    def run(self, job: dict, record_timeout_s: float, judge) -> tuple[list[dict], bool]:
        """Run a job, handing each test's record to `judge(record) -> passed` as it arrives; with
        `job["early_stop"]` the harness is told to stop after the first failure. Returns (records, True)
        when the job finished, (records so far, False) when the harness died or a record did not come in
        time, after which this session is closed."""
        records = []
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.flush()
            while True:
                oom_before = self.cgroups.oom_kills()
                line = self._readline(time.monotonic() + record_timeout_s)
                if line is None:
                    break
                record = json.loads(line)
                if record.get("end"):
                    return records, True
                if record.get("signal") == signal.SIGKILL and self.cgroups.oom_kills() > oom_before:
                    record["status"] = "memory_limit"
                records.append(record)
                passed = judge(record)
                if job.get("early_stop"):
                    self.proc.stdin.write(b"next\n" if passed else b"stop\n")
                    self.proc.stdin.flush()
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
        self.cgroups.close()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


_idle: dict[tuple, list[_Session]] = {}
_idle_lock = threading.Lock()


def _key(isolation: str, limits: Limits) -> tuple:
    return isolation, limits.tmpfs_mb, limits.shm_mb, limits.max_processes, limits.sandbox_memory_mb


def _checkout(isolation: str, limits: Limits) -> _Session:
    with _idle_lock:
        while _idle.get(_key(isolation, limits)):
            session = _idle[_key(isolation, limits)].pop()
            if session.alive():
                return session
            session.close()
    return _Session(isolation, limits)


def _checkin(session: _Session, limits: Limits) -> None:
    with _idle_lock:
        _idle.setdefault(_key(session.isolation, limits), []).append(session)


def close_idle_sessions() -> None:
    """Stop every idle harness (the scoring pool calls this when it closes; also at exit)."""
    with _idle_lock:
        sessions = [s for group in _idle.values() for s in group]
        _idle.clear()
    for session in sessions:
        session.close()


atexit.register(close_idle_sessions)


def run_job(job: dict, limits: Limits, *, isolation: str, judge=lambda record: record.get("status") == "ok",
            early_stop: bool = True) -> tuple[list[dict], dict]:
    """Run one program on its test inputs under `isolation` ("bwrap" or "rlimits", see choose_isolation).
    Returns (per-test records, run info). `judge(record) -> passed` sees each record as it arrives; with
    `early_stop` no test runs after the first that did not pass. A harness that dies (e.g. killed by the
    program) or whose record is late is killed with everything in it; its missing tests count as failed.
    """
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}")
    job = dict(job, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb, output_bytes=limits.output_bytes,
               private=isolation == "bwrap", early_stop=early_stop)
    session = _checkout(isolation, limits)
    records, finished = session.run(job, limits.timeout_s + RECORD_GRACE_S, judge)
    if finished and isolation == "bwrap":
        _checkin(session, limits)
    elif finished:  # without a pid namespace only closing the session's cgroup reaches escaped processes
        session.close()
    info = {"isolation": isolation, "process_limit": session.cgroups.process_cap,
            "memory_limit": session.cgroups.memory_cap, "harness_finished": finished, "limits": asdict(limits)}
    return records, info


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
