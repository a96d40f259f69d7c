"""Fixtures for the cloud area: SkyPilot runs once per session in a subprocess with a private HOME and the
pinned catalog (importing sky is slow and reads HOME at import time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO.parent / "shared" / "data" / "skypilot_catalog_v8"
PUBLISHED = REPO / "recipes" / "sky-t1-32b-preview.yaml"


def run_validate(tmp: Path, *args: str) -> tuple[int, dict, str]:
    out = tmp / "validate.json"
    env = {**os.environ, "HOME": str(tmp), "SKY_RUNTIME_DIR": str(tmp)}
    proc = subprocess.run(
        [sys.executable, "-m", "skyt1.cloud.validate", "--catalog", str(CATALOG), "--output", str(out), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    return proc.returncode, json.loads(out.read_text()), proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def sky_report(tmp_path_factory):
    """SkyPilot's loader, skyt1's checks and SkyPilot's optimizer over every task in sky_tasks/."""
    rc, report, log = run_validate(tmp_path_factory.mktemp("sky"), "--recipe", str(PUBLISHED))
    return rc, report, log
