"""The trained model is copied from the bucket mount to the node's disk once: ranks starting together wait
for one copy, a killed copy is never served, and without $SKYT1_MODEL_CACHE the mount path is used as is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from skyt1.cloud.staging import MARKER, stage, staged_model

from .conftest import REPO

COPY = "import sys; from skyt1.cloud.staging import stage; print(stage(sys.argv[1], sys.argv[2], 'm'))"


def model(path, files=3, size=1 << 20):
    path.mkdir(parents=True)
    for i in range(files):
        (path / f"model-{i}.safetensors").write_bytes(os.urandom(size))
    (path / "config.json").write_text("{}")
    return path


def test_ranks_starting_together_make_one_copy(tmp_path):
    src = model(tmp_path / "mount" / "train" / "final")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", COPY, str(src), str(tmp_path / "cache")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert {o.strip() for o, _ in outs} == {str(tmp_path / "cache" / "m")}
    assert sum("copying" in e for _, e in outs) == 1  # one rank copied, the others waited for it
    dst = tmp_path / "cache" / "m"
    assert sorted(p.name for p in dst.iterdir()) == sorted([*(p.name for p in src.iterdir()), MARKER])
    assert all((dst / p.name).read_bytes() == p.read_bytes() for p in src.iterdir())


def test_a_killed_copy_is_never_served(tmp_path):
    src = model(tmp_path / "final", files=40, size=4 << 20)
    proc = subprocess.Popen([sys.executable, "-c", COPY, str(src), str(tmp_path / "cache")],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "cache" / ".m.partial"
    deadline = time.time() + 60
    while not (partial.exists() and any(partial.iterdir())) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the copy finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cache" / "m").exists()
    dst = stage(src, tmp_path / "cache", "m")  # the next attempt (a recovery) copies again, completely
    assert (dst / MARKER).is_file() and len(list(dst.glob("*.safetensors"))) == 40
    assert not partial.exists()


def test_without_a_cache_the_mount_path_is_served(tmp_path, monkeypatch):
    src = model(tmp_path / "final", files=1, size=10)
    monkeypatch.delenv("SKYT1_MODEL_CACHE", raising=False)
    assert staged_model(src, "k") == str(src)
    monkeypatch.setenv("SKYT1_MODEL_CACHE", str(tmp_path / "cache"))
    assert staged_model(src, "k") == str(tmp_path / "cache" / "k")
