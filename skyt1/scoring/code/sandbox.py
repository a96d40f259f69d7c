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

import functools
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
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


def _warn_no_bwrap(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        msg = (f"CODE SANDBOX DISABLED: {reason}. Untrusted programs now run with resource limits only: "
               "they can read host files and reach the network. Install bubblewrap to isolate them.")
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def run_job(job: dict, limits: Limits, *, isolation: str = "auto") -> tuple[list[dict], dict]:
    """Run the harness on one job (program + test inputs). Returns (per-test records, run info).

    isolation: "auto" (bwrap if it works, else limits with a warning), "bwrap" (fail if unavailable),
    "none" (limits only, e.g. for a baseline).
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
    python, prefix = _python()
    job = dict(job, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb,
               output_bytes=limits.output_bytes, pid_namespace=use_bwrap)
    scratch = None
    if use_bwrap:
        cmd, cwd = _bwrap_command(python, prefix, limits), None
    else:
        scratch = tempfile.mkdtemp(prefix="skyt1-sandbox-")
        job["workdir"] = scratch
        cmd, cwd = [python, "-I", "-B", str(HARNESS)], scratch
    cap = _ProcessCap(limits.max_processes)
    overall = len(job["tests"]) * (limits.timeout_s + 1.5) + 10
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=cwd, env={} if not use_bwrap else None, start_new_session=True,
                                preexec_fn=cap.preexec)
        try:
            out, err = proc.communicate(json.dumps(job).encode(), timeout=overall)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            out, err = proc.communicate()
        finally:
            _killpg(proc.pid)  # the session is bwrap's; anything left in it goes now
    finally:
        cap.close()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    records = []
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a harness killed mid-line: the remaining tests count as failed
    info = {"isolation": "bwrap" if use_bwrap else "rlimits", "process_limit": cap.kind,
            "harness_exit": proc.returncode, "limits": asdict(limits)}
    if proc.returncode not in (0, None) and not records:
        info["harness_error"] = err.decode("utf-8", "replace")[-500:]
    return records, info


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
