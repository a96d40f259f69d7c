"""`skyt1 launch --local`: a task sees exactly what a SkyPilot node gives it (the task's envs with --env
overrides, its secrets, the SKYPILOT_* variables, the workdir as SkyPilot syncs it, the bucket at $RUN_ROOT)
and nothing else from this shell; setup runs before run, and a failure stops the job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

TASK = """\
name: skyt1-distill
resources:
  cpus: 1+
envs:
  BUCKET: null
  RUN_NAME: r
  RECIPE: recipes/tiny.yaml
  RUN_ROOT: /skyt1
  GREETING: hello
secrets:
  OPTIONAL_TOKEN: ""
{extra_secrets}
workdir: .
file_mounts:
  $RUN_ROOT:
    name: $BUCKET
    store: s3
    mode: MOUNT_CACHED
setup: |
  set -euo pipefail
  {setup}
  echo "setup $SKYPILOT_SETUP_NODE_RANK" > "$RUN_ROOT/setup.txt"
run: |
  set -euo pipefail
  env | sort > "$RUN_ROOT/env.txt"
  pwd > "$RUN_ROOT/pwd.txt"
  ls -a > "$RUN_ROOT/ls.txt"
"""


@pytest.fixture
def workdir(tmp_path):
    """A git checkout with a task file, a tracked file, an ignored one, and the tiny recipe."""
    work = tmp_path / "work"
    (work / "recipes").mkdir(parents=True)
    (work / "recipes" / "tiny.yaml").write_text((REPO / "recipes" / "tiny.yaml").read_text())
    (work / ".gitignore").write_text("ignored.txt\n")
    (work / "tracked.txt").write_text("synced\n")
    (work / "ignored.txt").write_text("not synced\n")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    return work


def launch(work: Path, tmp_path: Path, *args: str, setup: str = "true", extra_secrets: str = "",
           env: dict | None = None) -> subprocess.CompletedProcess:
    (work / "task.yaml").write_text(TASK.format(setup=setup, extra_secrets=extra_secrets))
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path / "home"),
                "SKY_RUNTIME_DIR": str(tmp_path / "home"), "LEAKY_VARIABLE": "from-my-shell", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from skyt1.cli import main; main()", "launch", "--local", "task.yaml",
         "--recipe", "recipes/tiny.yaml", "--bucket-dir", str(tmp_path / "bucket"),
         "--node-dir", str(tmp_path / "node"), *args],
        cwd=work, env=full_env, capture_output=True, text=True, timeout=300)


def test_the_task_sees_what_a_node_gives_it_and_nothing_else(workdir, tmp_path):
    res = launch(workdir, tmp_path, "--env", "GREETING=hi", "--secret", "EXPLICIT=s3cret", "--num-jobs", "3",
                 "--job-rank", "2", env={"OPTIONAL_TOKEN": "tok"})
    assert res.returncode == 0, res.stderr[-3000:]
    bucket = tmp_path / "bucket"
    env = dict(line.split("=", 1) for line in (bucket / "env.txt").read_text().splitlines() if "=" in line)
    assert {k: env.get(k) for k in ("SKYPILOT_NODE_RANK", "SKYPILOT_NUM_NODES", "SKYPILOT_NODE_IPS",
                                    "SKYPILOT_JOB_RANK", "SKYPILOT_NUM_JOBS", "SKYPILOT_NUM_GPUS_PER_NODE")} == {
        "SKYPILOT_NODE_RANK": "0", "SKYPILOT_NUM_NODES": "1", "SKYPILOT_NODE_IPS": "127.0.0.1",
        "SKYPILOT_JOB_RANK": "2", "SKYPILOT_NUM_JOBS": "3", "SKYPILOT_NUM_GPUS_PER_NODE": "0"}
    assert env["SKYPILOT_TASK_ID"].startswith("sky-local-") and env["SKYPILOT_TASK_ID"].endswith("_skyt1-distill_2")
    assert env["GREETING"] == "hi" and env["RUN_NAME"] == "tiny" and env["BUCKET"] == "skyt1-local"
    assert env["RUN_ROOT"] == str(bucket.resolve()) and env["RECIPE"] == "recipes/tiny.yaml"
    assert env["EXPLICIT"] == "s3cret" and env["OPTIONAL_TOKEN"] == "tok"  # --secret, and forwarded when set
    assert "LEAKY_VARIABLE" not in env and "PYTHONPATH" not in env  # nothing else of this shell
    assert env["HOME"] == str(tmp_path / "node")
    assert (bucket / "pwd.txt").read_text().strip() == str(tmp_path / "node" / "sky_workdir")
    synced = (bucket / "ls.txt").read_text().split()
    assert "tracked.txt" in synced and "task.yaml" in synced and "ignored.txt" not in synced
    assert (bucket / "setup.txt").read_text() == "setup 0\n"
    assert "s3cret" not in res.stdout + res.stderr
    assert not any("s3cret" in p.read_text(errors="ignore") for p in (tmp_path / "node").glob("sky_*.sh"))


def test_a_phase_that_cannot_be_split_is_not(workdir, tmp_path):
    (workdir / "filter.yaml").write_text(TASK.format(setup="true", extra_secrets="").replace("skyt1-distill",
                                                                                              "skyt1-filter"))
    res = launch(workdir, tmp_path, "--num-jobs", "2")
    assert res.returncode == 0  # task.yaml is distill's
    res = subprocess.run([sys.executable, "-c", "from skyt1.cli import main; main()", "launch", "--local",
                          "filter.yaml", "--recipe", "recipes/tiny.yaml", "--num-jobs", "2"], cwd=workdir,
                         env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path / "home")},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "filter cannot be split over jobs (only distill, eval can)" in res.stderr


def test_a_failing_setup_stops_the_job_before_run(workdir, tmp_path):
    res = launch(workdir, tmp_path, setup="exit 7")
    assert res.returncode != 0 and "exit status 7" in res.stderr
    assert not (tmp_path / "bucket" / "env.txt").exists()


def test_a_required_secret_that_is_not_set_is_refused_by_skypilot(workdir, tmp_path):
    res = launch(workdir, tmp_path, extra_secrets="  NEEDED_KEY: null")
    assert res.returncode != 0
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error: ")]
    assert errors == ["Error: NEEDED_KEY is not set: the task requires it (export it here; skyt1 passes it to "
                      "SkyPilot as --secret NEEDED_KEY)"], res.stderr[-2000:]
    assert not (tmp_path / "bucket" / "setup.txt").exists()
    res = launch(workdir, tmp_path, extra_secrets="  NEEDED_KEY: null", env={"NEEDED_KEY": "k"})
    assert res.returncode == 0, res.stderr[-2000:]  # a secret the task declares is forwarded from here
    env = (tmp_path / "bucket" / "env.txt").read_text().splitlines()
    assert "NEEDED_KEY=k" in env


def test_node_and_bucket_may_be_relative_and_inside_the_workdir(workdir, tmp_path):
    """The node directory is left out of the workdir copy made into it."""
    (workdir / "task.yaml").write_text(TASK.format(setup="true", extra_secrets=""))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path / "home"), "SKY_RUNTIME_DIR": str(tmp_path / "home")}
    res = subprocess.run([sys.executable, "-c", "from skyt1.cli import main; main()", "launch", "--local", "task.yaml",
                          "--recipe", "recipes/tiny.yaml", "--bucket-dir", "bucket", "--node-dir", "node"],
                         cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (workdir / "node" / "sky_workdir" / "tracked.txt").is_file()
    assert not (workdir / "node" / "sky_workdir" / "node").exists()
    assert (workdir / "bucket" / "pwd.txt").read_text().strip() == str(workdir / "node" / "sky_workdir")
