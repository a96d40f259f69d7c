"""Distill and eval split over three jobs (`--shard I/3`, as SkyPilot job groups run them), run in any order,
one of them SIGKILLed mid-run and run again, end with the records, summary and manifest one job writes; the
manifest appears only when the last shard finishes, with no extra run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from skyt1.store import RunDir

from .curation.conftest import ScriptedEngine, base_recipe
from .curation.test_phases import teacher_reply

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _skyt1(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "skyt1"), *args], env={**os.environ},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return err


def _kill_once_written(proc: subprocess.Popen, folder: Path, pattern: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if list(folder.glob(pattern)):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.02)
    pytest.fail(f"the shard finished (or wrote nothing) before it could be killed: {proc.stderr.read()[-2000:]}")


@pytest.fixture
def servers():
    from skyt1.engines.server import FaultPlan, start_server

    handles = []

    def start(engine, delay_s: float):
        h = start_server(engine, faults=FaultPlan(slow_rate=1.0, delay_s=delay_s))
        handles.append(h)
        return h

    yield start
    for h in handles:
        h.stop()


def _recipe(tmp_path: Path, teacher_url: str, eval_url: str) -> Path:
    d = base_recipe()
    d["distill"]["engine"] = {"backend": "openai", "model": "scripted", "base_url": teacher_url, "concurrency": 1}
    d["distill"]["flush_every"] = 2
    d["eval"] = {"benchmarks": ["aime24", "math500"], "data_dir": str(DATA), "limit": 4,
                 "engine": {"backend": "openai", "model": "tiny", "base_url": eval_url, "concurrency": 1},
                 "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 12, "n": 4, "seed": 0}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_distill_and_eval_over_three_shards_equal_one_job(tmp_path, servers, tiny_model):
    from skyt1.engines import make_engine
    from skyt1.recipe import Engine

    teacher = servers(ScriptedEngine(teacher_reply), 0.05)
    student = make_engine(Engine(backend="hf", model=str(tiny_model), dtype="float32"))
    try:
        evaluator = servers(student, 0.5)  # the killed shard's ~10 samples take longer than one flush (2 s)
        recipe = _recipe(tmp_path, teacher.url, evaluator.url)
        whole, split = tmp_path / "whole", tmp_path / "split"
        for phase in ("distill", "eval"):
            _finish(_skyt1([phase, "--recipe", str(recipe), "--run-dir", str(whole)]))

        for phase, folder, pattern in (("distill", split / "distill" / "records", "part-s0of3-*.ids"),
                                       ("eval", split / "eval", "*/part-s0of3-*.ids")):
            args = [phase, "--recipe", str(recipe), "--run-dir", str(split), "--shard"]
            _finish(_skyt1([*args, "2/3"]))
            assert RunDir(split).phase(phase).manifest() is None  # two shards still missing
            _kill_once_written(_skyt1([*args, "0/3"]), folder, pattern)
            _finish(_skyt1([*args, "1/3"]))
            assert RunDir(split).phase(phase).manifest() is None  # the killed shard is not done
            _finish(_skyt1([*args, "0/3"]))  # the killed shard again: it finishes last, and writes the manifest
            manifest = RunDir(split).phase(phase).manifest()
            assert manifest is not None, phase
            assert manifest["outputs"] == RunDir(whole).phase(phase).manifest()["outputs"], phase
            assert {f.name for f in (split / phase).glob("_SHARD-*.json")} == {"_SHARD-s1of3.json", "_SHARD-s2of3.json"}
    finally:
        student.close()

    a, b = RunDir(whole), RunDir(split)
    assert list(a.phase("distill").records()) == list(b.phase("distill").records())
    assert len(list(b.phase("distill").records())) == 32
    ids = [x for f in (split / "distill" / "records").glob("*.ids") for x in f.read_text().split("\n")
           if x and not x.startswith("#")]
    assert len(ids) == len(set(ids)) == 32  # the killed shard wrote nothing twice
    for bench in ("aime24", "math500"):
        assert list(a.phase("eval").records(bench)) == list(b.phase("eval").records(bench))
        assert len(list(b.phase("eval").records(bench))) == 16
    strip = lambda s: {k: s["benchmarks"][k]["scores"] for k in s["benchmarks"]}  # noqa: E731
    assert strip(json.loads((split / "eval" / "summary.json").read_text())) == strip(
        json.loads((whole / "eval" / "summary.json").read_text()))
