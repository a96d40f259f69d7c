"""`skyt1 distill` and `skyt1 eval` with `backend: vllm`, against vLLM's own server on this CPU, for real.

Each command starts its own server (as on a node). kill -9 of `skyt1 distill` mid-run and Ctrl-C of
`skyt1 eval` mid-run must leave no vLLM process behind, and the next run must resume to the same records.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from skyt1.store import RunDir, jsonl_lines, output_dir

from .procs import REPO, SKYT1, command, describe, family, mentioning, skyt1_env, wait_gone

DATA = REPO.parent / "shared" / "data"


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    # Its own session: signals reach skyt1 alone. SIGINT as a terminal leaves it: a shell that starts jobs in
    # the background (some CI runners) passes SIGINT on ignored, and Python would then never see the Ctrl-C.
    with open(log, "wb") as out:
        return subprocess.Popen([*SKYT1, *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt_when(proc: subprocess.Popen, ready, sig: int, log: Path, timeout_s: float = 600) -> list:
    """Wait until `ready()` (work is under way), snapshot skyt1's process tree, send `sig`; return the tree."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, f"exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no progress in {timeout_s} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    tree = family(proc.pid)
    assert proc.poll() is None, "it finished before the signal could land mid-run"
    assert any("vllm_launch.py serve" in command(p) for p in tree[1:]), describe(tree)
    os.kill(proc.pid, sig)
    proc.wait(timeout=120)
    return tree


def _shard_rows(folder: Path) -> list[dict]:
    """Every row of the store's immutable shards in `folder` (duplicates included, unlike the store's reader)."""
    return [json.loads(line) for shard in sorted(folder.glob("part-*.jsonl"))
            for line in jsonl_lines(shard.read_text()) if line.strip()]


@pytest.fixture
def teacher(vllm_model, tmp_path) -> Path:
    """A copy of the tiny model at a path unique to the test: every process naming it is this test's."""
    return shutil.copytree(vllm_model, tmp_path / "teacher")


def test_distill_kill9_leaves_no_server_and_the_rerun_resumes(vllm_python, teacher, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "vllm-distill",
        "sources": [{"name": "demo_math", "dataset": "demo", "domain": "math", "subset": "math", "count": 60}],
        "distill": {"engine": {"backend": "vllm", "model": str(teacher), "dtype": "float32"},
                    "sampling": {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256, "n": 8, "seed": 0},
                    "sources": ["demo_math"], "flush_every": 4},
    }))
    run, env = tmp_path / "run", skyt1_env(vllm_python)
    args = ["distill", "--recipe", str(recipe), "--run-dir", str(run)]
    phase = RunDir(str(run)).phase("distill")
    first = _start(args, env, tmp_path / "first.log")
    tree = _interrupt_when(first, lambda: len(phase.ids("records")) >= 8, signal.SIGKILL, tmp_path / "first.log")
    assert first.returncode == -signal.SIGKILL
    assert not wait_gone(tree, 60), describe(wait_gone(tree, 0))
    assert not mentioning(str(teacher)), describe(mentioning(str(teacher)))

    kept = {r["id"]: r for r in phase.records("records")}
    assert 8 <= len(kept) < 480, "the kill must land mid-run"
    second = subprocess.run([*SKYT1, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert "vllm: server ready at http://127.0.0.1:" in second.stderr
    final = {r["id"]: r for r in phase.records("records")}
    assert len(final) == 480 and len({r["problem_id"] for r in final.values()}) == 60
    assert {r["sample_index"] for r in final.values()} == set(range(8))
    assert all(final[i] == r for i, r in kept.items())  # resumed: what was written stays as it was
    assert max(Counter(r["id"] for r in _shard_rows(run / "distill" / "records")).values()) == 1  # none twice
    assert {r["finish_reason"] for r in final.values()} <= {"stop", "length"}
    manifest = phase.manifest()
    assert manifest["counts"]["out"] == 480
    info = manifest["config"]["engine_info"]
    assert info["backend"] == "vllm" and info["vllm"].endswith("+cpu") and info["per_request_seed"] is False
    assert not mentioning(str(teacher)), describe(mentioning(str(teacher)))


@pytest.mark.skipif(not (DATA / "math500").is_dir(), reason="needs ../shared/data")
def test_eval_ctrl_c_stops_the_server_cleanly_and_the_rerun_resumes(vllm_python, teacher, tmp_path):
    out, env = tmp_path / "eval", skyt1_env(vllm_python)
    args = ["eval", "--backend", "vllm", "--model", str(teacher), "--dtype", "float32", "-b", "math500",
            "--data-dir", str(DATA), "--limit", "60", "--n", "8", "--max-tokens", "256", "-o", str(out),
            "--scoring-workers", "1", "--quiet"]
    folder = output_dir(out)  # samples reach the store as shards while the run goes on

    first = _start(args, env, tmp_path / "first.log")
    tree = _interrupt_when(first, lambda: len(folder.ids("math500")) >= 8, signal.SIGINT, tmp_path / "first.log")
    log = (tmp_path / "first.log").read_text()
    assert first.returncode == 1 and "Aborted!" in log, log[-2000:]
    # Ctrl-C closes the engine in order: the server is asked to stop and is gone at once, without a kill.
    assert not wait_gone(tree, 30), describe(wait_gone(tree, 0))
    assert not mentioning(str(teacher)), describe(mentioning(str(teacher)))
    kept = {r["id"]: r for r in folder.records("math500")}
    assert 8 <= len(kept) < 480

    second = subprocess.run([*SKYT1, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "math500" / "samples.jsonl").read_text().splitlines()]  # the export
    assert len(rows) == len({r["id"] for r in rows}) == 480
    assert max(Counter(r["id"] for r in _shard_rows(out / "math500")).values()) == 1  # nothing generated twice
    by_id = {r["id"]: r for r in rows}
    assert all(by_id[i]["response"] == r["response"] for i, r in kept.items())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True
    config = json.loads((out / "math500" / "config.json").read_text())
    assert config["engine"]["backend"] == "vllm" and config["engine"]["per_request_seed"] is False
    assert not mentioning(str(teacher)), describe(mentioning(str(teacher)))


def test_ctrl_c_while_the_server_loads_stops_it(vllm_python, teacher, tmp_path):
    out, env = tmp_path / "eval", skyt1_env(vllm_python)
    args = ["eval", "--backend", "vllm", "--model", str(teacher), "--dtype", "float32", "-b", "demo_math",
            "--limit", "2", "-o", str(out), "--quiet"]
    first = _start(args, env, tmp_path / "first.log")

    def loading() -> bool:
        return any("vllm_launch.py serve" in command(p) for p in family(first.pid)[1:])

    t0 = time.monotonic()
    tree = _interrupt_when(first, loading, signal.SIGINT, tmp_path / "first.log", timeout_s=120)
    log = (tmp_path / "first.log").read_text()
    assert first.returncode == 1 and "Aborted!" in log and "Traceback" not in log, log[-2000:]
    assert time.monotonic() - t0 < 60  # stopped while loading, not after a whole run
    assert not wait_gone(tree, 30), describe(wait_gone(tree, 0))
    assert not mentioning(str(teacher)), describe(mentioning(str(teacher)))
