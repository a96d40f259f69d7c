"""Process checks for the vLLM tests: which processes a test started, and that none of them outlive it; and
the `skyt1` command they start, with vLLM's environment."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
SKYT1 = [sys.executable, "-c", "import sys; from skyt1.cli import main; sys.exit(main())"]


def skyt1_env(vllm_python: str) -> dict[str, str]:
    """The environment for `SKYT1`: vLLM's Python, nothing from the hub, this checkout first on the path."""
    return {**os.environ, "SKYT1_VLLM_PYTHON": vllm_python, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def family(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (those alive now)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def mentioning(text: str) -> list[psutil.Process]:
    """Every live process whose command line contains `text` (a path unique to one test)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(text in part for part in p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until none of `procs` runs (zombies count as gone); return those still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def command(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:160]}")
        except psutil.NoSuchProcess:
            continue
    return out
