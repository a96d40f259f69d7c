"""Fixtures of the eval tests: the real benchmark files in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "math500" / "test.jsonl").exists():
        pytest.skip(f"benchmark data not found at {DATA} (see shared/data/SOURCES.md)")
    return DATA
