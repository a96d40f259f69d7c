"""`make demo-tiny` end to end: every phase for real on tiny models, then the report; and the same pipeline
killed with SIGKILL at random points, resumed each time, ending where an uninterrupted run ends. The
real-model demo (`make demo`) is tested in tests/test_demo_real.py."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from skyt1.phases import NAMES as PHASES
from skyt1.report import RECORD_STREAMS
from skyt1.store import RunDir

from .s3server import free_port

ROOT = Path(__file__).resolve().parents[1]


def _demo_cmd(run_dir: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "skyt1.demo", "--tiny", "--run-dir", str(run_dir), "--port", str(port)]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def run_demo(run_dir: Path, port: int, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(_demo_cmd(run_dir, port), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def outcome(run_dir: Path) -> dict:
    """What must not depend on interruptions: record ids per phase stream, training steps, eval scores."""
    run = RunDir(run_dir)
    ids = {}
    for phase in PHASES:
        for stream in set(run.phase(phase).streams()) & set(RECORD_STREAMS):
            ids[f"{phase}/{stream}"] = sorted(run.phase(phase).ids(stream))
    train = run.phase("train").manifest()
    summary = run.phase("eval").read_json("summary.json")
    scores = {name: {k: b["scores"][k] for k in ("accuracy", "stderr", "samples", "problems", "n")}
              for name, b in summary["benchmarks"].items()}
    return {"ids": ids, "train_steps": train["counts"]["steps"], "train_rows": train["counts"]["train_rows"],
            "eval": scores}


def assert_report_complete(run_dir: Path) -> None:
    md = (run_dir / "report" / "report.md").read_text()
    html = (run_dir / "report" / "report.html").read_text()
    for phase in PHASES[:-1]:
        assert f"| {phase} | complete |" in md, phase
    assert "| not run |" not in md and "| incomplete |" not in md
    assert "stood in for the OpenAI API" in md and "stood in for vLLM" in md
    assert "logged steps; loss" in md and 'class="chart line-chart"' in html
    assert "| aime24 |" in md and "| math500 |" in md and 'class="chart error-bars"' in html
    assert "teacher traces (distill, completion tokens)" in md and "training rows (assemble, tokens)" in md


def test_demo_end_to_end_and_resume(tmp_path):
    run_dir = tmp_path / "demo-run"
    port = free_port()
    t0 = time.time()
    proc = run_demo(run_dir, port)
    took = time.time() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"Report: {run_dir / 'report' / 'report.html'}" in proc.stdout
    assert_report_complete(run_dir)

    run = RunDir(run_dir)
    manifests = {p: run.phase(p).manifest() for p in PHASES}
    assert all(manifests.values())
    # Every phase did real work: verified traces reached training, training stepped, eval sampled.
    assert manifests["filter"]["counts"]["out"] > 0
    assert manifests["train"]["counts"]["steps"] > 0 and manifests["train"]["counts"]["train_rows"] > 0
    assert all(b["samples"] > 0 for b in manifests["eval"]["counts"].values())
    # The label/reformat calls went through the loopback server with the demo key, never recorded.
    assert "127.0.0.1" in manifests["reformat"]["config"]["api"]["base_url"]
    assert "skyt1-demo-" not in (run_dir / "reformat" / "_DONE.json").read_text()

    # Again: nothing is redone (every manifest unchanged) and it is much faster.
    t1 = time.time()
    again = run_demo(run_dir, port)
    assert again.returncode == 0, again.stderr[-4000:]
    assert time.time() - t1 < took
    for phase in PHASES[:-1]:
        assert run.phase(phase).manifest()["finished_at"] == manifests[phase]["finished_at"], phase


def test_demo_port_in_use_says_what_to_do(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_demo(tmp_path / "run", port, timeout=300)
    assert proc.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in proc.stderr and "--port" in proc.stderr


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the demo and everything it started (the trainer runs in a session of its own): a crash."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in [psutil.Process(proc.pid), *family] if proc.poll() is None else family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    psutil.wait_procs(family, timeout=30)


@pytest.mark.slow
def test_demo_survives_sigkill_at_random_points(tmp_path):
    port = free_port()
    reference = tmp_path / "reference"
    t0 = time.time()
    proc = run_demo(reference, port)
    assert proc.returncode == 0, proc.stderr[-4000:]
    whole = time.time() - t0
    expected = outcome(reference)

    # Kill points scale with how long a whole demo takes on this machine: each attempt is killed at a random
    # time up to a third of a whole run, so the run needs many attempts (and kills) to get through.
    chaos = tmp_path / "chaos"
    rng = random.Random(20250101)
    kills, phases_hit = 0, []
    for _ in range(80):
        delay = rng.uniform(0.5, max(2.0, whole / 3))
        p = subprocess.Popen(_demo_cmd(chaos, port), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            run = RunDir(chaos)
            phases_hit.append(next((ph for ph in PHASES if run.phase(ph).manifest() is None), "done"))
            _kill_tree(p)
            kills += 1
            continue
        assert p.returncode == 0, f"demo failed after {kills} kills"
        break
    else:
        pytest.fail("the demo never finished across 80 attempts")
    print(f"SIGKILLed {kills} times, in phases {phases_hit}")
    assert kills >= 5
    final = run_demo(chaos, port)  # a completed run stays complete
    assert final.returncode == 0, final.stderr[-4000:]
    assert_report_complete(chaos)
    assert outcome(chaos) == expected


def test_cpu_log_keeps_the_figures_of_a_step_a_resumed_run_skips(tmp_path):
    from skyt1.demo import CpuLog

    log = CpuLog(tmp_path)
    with log.step("build model"):
        sum(i * i for i in range(300_000))
    first = log.data["phases"]["build model"]
    assert first["cpu_s"] >= 0 and first["wall_s"] >= 0
    resumed = CpuLog(tmp_path)  # a second run reads what the first one wrote
    with resumed.step("build model", skipped=True):
        pass
    with resumed.step("train", skipped=True):  # skipped, but never measured before: measured now
        pass
    again = CpuLog(tmp_path).data["phases"]
    assert again["build model"] == first and "train" in again
    with CpuLog(tmp_path).step("build model"):  # done again for real: the new figures replace the old
        time.sleep(0.2)
    assert CpuLog(tmp_path).data["phases"]["build model"]["wall_s"] >= 0.2
