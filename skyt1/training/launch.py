"""Start LlamaFactory training (one process, or torchrun from the SKYPILOT_* variables) and show progress.

Progress comes from LlamaFactory's `trainer_log.jsonl` (one line per logged step), which is steadier than
parsing console output; the console output of every attempt is kept in a log file for post-mortems.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TRAINER_LOG = "trainer_log.jsonl"
DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class Topology:
    """How many processes train, where, and which of them this node is."""

    nnodes: int = 1
    node_rank: int = 0
    nproc_per_node: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def is_head(self) -> bool:
        return self.node_rank == 0


def topology(env: dict[str, str] | None = None) -> Topology:
    """From SkyPilot's variables when present (head node first in SKYPILOT_NODE_IPS), else this machine."""
    env = dict(os.environ if env is None else env)
    port = int(env.get("MASTER_PORT") or DEFAULT_MASTER_PORT)
    if env.get("SKYPILOT_NODE_IPS"):
        ips = [ip.strip() for ip in env["SKYPILOT_NODE_IPS"].splitlines() if ip.strip()]
        nnodes = int(env.get("SKYPILOT_NUM_NODES") or len(ips))
        if nnodes != len(ips):
            raise ValueError(f"SKYPILOT_NUM_NODES={nnodes} but SKYPILOT_NODE_IPS lists {len(ips)} addresses")
        return Topology(
            nnodes=nnodes,
            node_rank=int(env.get("SKYPILOT_NODE_RANK") or 0),
            nproc_per_node=max(1, int(env.get("SKYPILOT_NUM_GPUS_PER_NODE") or 1)),
            master_addr=ips[0],
            master_port=port,
        )
    return Topology(nproc_per_node=_local_devices(), master_port=port)


def _local_devices() -> int:
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except ImportError:
        return 1


def command(config_path: Path, topo: Topology, *, distributed: bool) -> list[str]:
    """The training command line: torchrun over skyt1's launcher, or the launcher alone."""
    launcher = ["-m", "skyt1.training.launcher", str(config_path)]
    if not distributed:
        return [sys.executable, *launcher]
    return [
        sys.executable, "-m", "torch.distributed.run",
        f"--nnodes={topo.nnodes}", f"--node_rank={topo.node_rank}", f"--nproc_per_node={topo.nproc_per_node}",
        f"--master_addr={topo.master_addr}", f"--master_port={topo.master_port}",
        *launcher,
    ]


def process_env(distributed: bool, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    if not distributed:  # a stray WORLD_SIZE/RANK would make a single process wait for peers
        for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(key, None)
    return env


class LogFollower:
    """Reads new lines of trainer_log.jsonl as training appends them and hands each to `on_entry`."""

    def __init__(self, path: Path, on_entry: Callable[[dict], None]):
        self.path, self.on_entry = path, on_entry
        self.offset = path.stat().st_size if path.exists() else 0

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                self.on_entry(entry)


def run_training(cmd: list[str], env: dict[str, str], *, log_path: Path, trainer_log: Path,
                 on_entry: Callable[[dict], None], poll_s: float = 1.0) -> int:
    """Run the training command to completion; console output goes to `log_path`. Returns the exit code.

    Ctrl-C / SIGTERM (what SkyPilot sends at preemption) are passed on to the whole process group.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    follower = LogFollower(trainer_log, on_entry)
    with log_path.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent)
        done = threading.Event()

        def forward(signum, _frame):
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                pass

        restore = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                restore[sig] = signal.signal(sig, forward)
        try:
            while not done.is_set():
                try:
                    proc.wait(timeout=poll_s)
                    done.set()
                except subprocess.TimeoutExpired:
                    pass
                follower.poll()
        finally:
            for sig, handler in restore.items():
                signal.signal(sig, handler)
            if proc.poll() is None:  # we are being torn down: do not leave trainers behind
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    follower.poll()
    return proc.returncode


def _die_with_parent() -> None:
    """Linux: SIGTERM the trainer when skyt1 itself is killed, so no orphan keeps writing checkpoints into
    the directory the next attempt resumes from (torchrun passes SIGTERM on to its workers)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
