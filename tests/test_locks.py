"""One writer per phase directory: a second concurrent writer refuses with a clear message while the first
completes correctly; a writer killed with SIGKILL does not hold the directory (same host: at once; another
host: once its lease expires)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from skyt1.store import PhaseLock, RunDir, StoreError, output_dir

from .curation.conftest import ScriptedEngine, base_recipe
from .curation.test_phases import teacher_reply

SKYT1 = str(Path(sys.executable).parent / "skyt1")
HOLD = """
import sys, time
from skyt1.store import RunDir
lock = RunDir(sys.argv[1]).phase(sys.argv[3]).lock(tag=sys.argv[2], command="holder").acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(uri: str, tag: str = "", phase: str = "distill") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, uri, tag, phase], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_lock_refuses_a_dead_one_is_taken_over(tmp_path):
    run = RunDir(tmp_path / "run")
    holder = _holder(run.uri)
    try:
        with pytest.raises(StoreError, match=r"run/distill is being written by another process \(host .* pid "
                                             rf"{holder.pid} \(holder\)"):
            run.phase("distill").lock().acquire()
        with pytest.raises(StoreError, match="being written"):  # a shard conflicts with a whole-phase writer
            run.phase("distill").lock(tag="s1of2").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run.phase("distill").lock():  # the holder was killed: its lock is dead at once
        pass
    assert run.phase("distill").files() == []  # released


def test_shards_lock_side_by_side_and_a_silent_host_expires(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    holder = _holder(run.uri, tag="s0of2")
    try:
        with run.phase("distill").lock(tag="s1of2"):  # another shard of the same phase
            pass
        with pytest.raises(StoreError, match="being written"):
            run.phase("distill").lock().acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A writer on another machine of a shared bucket: alive while it refreshes its lease, dead after ttl.
    ph = run.phase("train")
    ph.write_json("_LOCK.json", {"owner": "x", "host": "another-node", "pid": 1, "heartbeat_at": time.time(),
                                 "ttl_s": 60})
    with pytest.raises(StoreError, match="host another-node pid 1"):
        ph.lock().acquire()
    ph.write_json("_LOCK.json", {"owner": "x", "host": "another-node", "pid": 1,
                                 "heartbeat_at": time.time() - 61, "ttl_s": 60})
    lock = ph.lock().acquire()
    assert ph.read_json("_LOCK.json")["owner"] == lock.token
    lock.release()


def test_the_lease_is_refreshed_and_a_stolen_lock_is_noticed(tmp_path):
    ph = RunDir(tmp_path / "run").phase("eval")
    lock = PhaseLock(ph, ttl_s=0.4).acquire()
    first = ph.read_json("_LOCK.json")["heartbeat_at"]
    time.sleep(0.5)
    assert ph.read_json("_LOCK.json")["heartbeat_at"] > first
    ph.write_json("_LOCK.json", {"owner": "thief", "host": "other", "pid": 2, "heartbeat_at": time.time()})
    time.sleep(0.5)
    assert lock.lost
    lock.release()
    assert ph.read_json("_LOCK.json")["owner"] == "thief"  # not ours to delete


def test_a_second_demo_on_one_run_directory_refuses_before_building_anything(tmp_path):
    run = tmp_path / "demo-run"
    holder = _holder(str(run), phase="demo")  # a demo already running there
    try:
        proc = subprocess.run([sys.executable, "-m", "skyt1.demo", "--run-dir", str(run), "--port", "0"],
                              capture_output=True, text=True, timeout=120)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "demo-run/demo is being written by another process" in proc.stderr
    assert not (run / "models").exists()


@pytest.fixture
def slow_teacher():
    from skyt1.engines.server import FaultPlan, start_server

    with start_server(ScriptedEngine(teacher_reply), faults=FaultPlan(slow_rate=1.0, delay_s=0.1)) as server:
        yield server


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([SKYT1, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _wait_started(proc: subprocess.Popen, lock_file: Path) -> None:
    deadline = time.time() + 60
    while not lock_file.exists():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.02)


def test_two_distills_on_one_run_the_second_refuses_the_first_completes(tmp_path, slow_teacher):
    d = base_recipe()
    d["distill"]["engine"] = {"backend": "openai", "model": "scripted", "base_url": slow_teacher.url, "concurrency": 1}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(d))
    run = tmp_path / "run"
    first = _start("distill", "--recipe", str(recipe), "--run-dir", str(run))
    _wait_started(first, run / "distill" / "_LOCK.json")
    second = subprocess.run([SKYT1, "distill", "--recipe", str(recipe), "--run-dir", str(run), "--set",
                             "distill.sampling.temperature=1.0"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"{run}/distill is being written by another process" in second.stderr.splitlines()[-1]
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    ph = RunDir(run).phase("distill")
    assert ph.manifest()["counts"]["out"] == 32 and len(list(ph.records())) == 32
    assert {r["id"] for r in ph.records()} == ph.ids() and not ph.exists("_LOCK.json")


def test_a_second_eval_or_a_rescore_during_generation_refuses(tmp_path, slow_teacher):
    data = str(Path(__file__).resolve().parents[2] / "shared" / "data")
    out = tmp_path / "out"
    args = ["eval", "--benchmarks", "math500", "--model", "scripted", "--backend", "openai", "--base-url",
            slow_teacher.url, "--concurrency", "1", "--limit", "12", "--data-dir", data, "--output-dir", str(out), "-q"]
    first = _start(*args)
    _wait_started(first, out / "_LOCK.json")
    for extra in (["--temperature", "0.9"], ["--rescore"]):
        other = subprocess.run([SKYT1, *args, *extra], capture_output=True, text=True, timeout=120)
        assert other.returncode == 1 and "is being written by another process" in other.stderr, other.stderr[-2000:]
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert len(list(output_dir(out).records("math500"))) == 12
