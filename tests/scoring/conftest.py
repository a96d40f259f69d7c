import json
import os
import time
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"benchmark data not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def pool():
    from skyt1.scoring import ScoringPool

    with ScoringPool(workers=2) as p:
        yield p


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def descendants() -> dict[int, list[int]]:
    """pid -> its ancestors up to this test process, for every descendant of it."""
    me, found = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        chain, ancestor = [], int(entry)
        while ancestor > 1 and ancestor != me:
            ancestor = _parent(ancestor)
            chain.append(ancestor)
        if ancestor == me:
            found[int(entry)] = chain[:-1]
    return found


def _sandbox_processes() -> list[str]:
    """Processes started by programs under test: anything below a harness. (Idle harnesses waiting for
    their next job are the scorer's own and stay; others on the machine may be scoring too.)"""
    return [f"{pid}: {cmdline(pid)[:100]}" for pid, chain in descendants().items()
            if any(_is_harness(cmdline(a)) for a in chain)]


def _is_harness(line: str) -> bool:
    return "harness.py" in line and not line.startswith("bwrap")


@pytest.fixture
def no_stray_processes():
    yield
    time.sleep(0.05)
    assert _sandbox_processes() == []
