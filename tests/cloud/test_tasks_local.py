"""Every task file in sky_tasks/ run here as a SkyPilot node would run it (`skyt1 launch --local`): SkyPilot's
loader, the task's envs and secrets, the SKYPILOT_* variables, setup then run under bash in a copy of the
workdir, one local directory playing the bucket for all phases. The tiny recipe end to end must give the same
evaluation as `skyt1 reproduce --local`, and distill and eval split over three jobs (run in any order, one
killed and re-run) must give the records and summary of one job.

Setup runs as written, with one substitution where it must: `make env-<role> VENV="$VENV"` installs the
role's locked environment (on a node the CUDA locks: vLLM, torch, DeepSpeed wheels CI cannot install; here,
with no GPU, the CPU locks). Each role's tasks get the environment `make install` built from that role's
CPU lock (.venv for training, .venv-vllm for generation), so the line runs and finds it up to date, as on a
recovered node; the control environment is installed from locks/control.txt by the first control task's own
setup. Where an environment was not built from its lock (a development checkout whose .venv is shared), the
make target would rewrite it: the line is replaced by a check that the tests' environment imports skyt1, and
the replaced line says so. The copied workdir is first on PYTHONPATH, as the editable install puts it on a
node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from skyt1.phases import TASK_PHASES
from tests.s3server import free_port

from .conftest import REPO

TASKS = REPO / "sky_tasks"
ENV_INSTALL = re.compile(r'^  make env-(generation|training|control) VENV="\$VENV".*$', re.MULTILINE)
KEY = "sk-skyt1-test-key"


def role_environment(role: str) -> tuple[Path, str | None]:
    """(the VENV a role's tasks get, why their `make env-<role>` line is replaced, or None if it runs)."""
    if role == "control":
        return REPO / ".venv-control", None  # installed by the first control task's setup, then up to date
    venv = Path(sys.prefix) if role == "training" else REPO / ".venv-vllm"
    lock = REPO / "locks" / f"{role}-cpu.txt"
    stamp = venv / f".skyt1-{role}.lock"
    if stamp.is_file() and stamp.read_bytes() == lock.read_bytes():
        return venv, None
    return Path(sys.prefix), f"{venv} was not built from {lock.name}, and make env-{role} would rewrite it"


def ci_task(src: Path, dst_dir: Path) -> tuple[Path, Path]:
    """The task file as it runs here, and the VENV its tasks get (see the module docstring)."""
    text = src.read_text()
    found = ENV_INSTALL.findall(text)
    assert len(found) == 1, f"{src.name}: expected one `make env-<role>` line in setup, found {found}"
    venv, why = role_environment(found[0])
    if why:
        text = ENV_INSTALL.sub(f'  "$VENV/bin/python" -c "import skyt1"  # CI replaced make env-{found[0]}: {why}',
                               text)
    dst = dst_dir / src.name
    dst.write_text(text)
    return dst, venv


def skyt1(*args: str, env: dict | None = None, timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from skyt1.cli import main; main()", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny models built offline, the loopback API stand-in (requiring a key), the resolved tiny recipe."""
    from skyt1.demo import build_models, demo_recipe

    root = tmp_path_factory.mktemp("tiny")
    port = free_port()
    models = build_models(root / "models")
    recipe = demo_recipe(REPO / "recipes" / "tiny.yaml", root, models, port)
    # Batches of one: the hf stand-in's samples then never depend on which other requests share a batch
    # (padding changes float32 sums, which can flip a sampled token of a random model), so a job split
    # differently, or resumed after a kill, must reproduce every record exactly.
    data = yaml.safe_load(recipe.read_text())
    data["distill"]["engine"]["batch_size"] = data["eval"]["engine"]["batch_size"] = 1
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKYT1_DEMO_KEY": KEY, "HF_HUB_OFFLINE": "1",
           "HOME": str(root / "home"), "SKY_RUNTIME_DIR": str(root / "home")}
    server = subprocess.Popen(
        [sys.executable, "-c", "from skyt1.cli import main; main()", "serve", "--model", str(models["teacher"]),
         "--port", str(port), "--api-key-env", "SKYT1_DEMO_KEY", "--served-model-name", "tiny-teacher"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_port(port, server)
        tasks = root / "tasks"
        tasks.mkdir()
        yield {"root": root, "recipe": recipe, "env": env, "tasks": {p: ci_task(TASKS / f"{p}.yaml", tasks)
                                                                    for p in TASK_PHASES}}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API stand-in exited: {proc.stderr.read()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError("the API stand-in did not start")


def launch_args(tiny: dict, phase: str, bucket: Path, node: Path, *extra: str) -> list[str]:
    task, venv = tiny["tasks"][phase]
    uv_cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")  # the node's HOME is empty
    return ["launch", "--local", str(task), "--recipe", str(tiny["recipe"]), "--bucket", "skyt1-ci",
            "--run-name", "tiny", "--bucket-dir", str(bucket), "--node-dir", str(node),
            "--env", f"VENV={venv}", "--env", f"PYTHONPATH={node / 'sky_workdir'}", "--env", f"UV_CACHE_DIR={uv_cache}",
            "--env", "HF_HUB_OFFLINE=1", "--env", f"SKYT1_MODEL_CACHE={tiny['root'] / 'model-cache'}", *extra]


def launch_local(tiny: dict, phase: str, bucket: Path, *extra: str, rank: int | None = None) -> None:
    node = tiny["root"] / "nodes" / f"{bucket.name}-{phase}-{rank or 0}"
    res = skyt1(*launch_args(tiny, phase, bucket, node, *extra), env=tiny["env"])
    assert res.returncode == 0, f"{phase}: {res.stdout[-3000:]}\n{res.stderr[-3000:]}"


@pytest.fixture(scope="module")
def task_run(tiny):
    """Every task file in pipeline order against one local bucket directory."""
    bucket = tiny["root"] / "bucket"
    for phase in TASK_PHASES:
        launch_local(tiny, phase, bucket)
    return bucket / "tiny"


def _records(run: Path, phase: str) -> list[dict]:
    rows = [json.loads(line) for f in sorted((run / phase).rglob("*.jsonl")) for line in f.read_text().splitlines()
            if line.strip()]
    return sorted(rows, key=lambda r: r.get("id", ""))


def _summary(run: Path) -> dict:
    s = json.loads((run / "eval" / "summary.json").read_text())
    return {"benchmarks": s["benchmarks"], "skipped": sorted(s["skipped"]), "complete": s["complete"]}


def test_every_task_runs_on_a_local_node_and_matches_reproduce(tiny, task_run):
    for phase in TASK_PHASES:
        assert (task_run / phase / "_DONE.json").is_file(), phase
    staged = list((tiny["root"] / "model-cache").glob("*/.skyt1-staged.json"))
    assert len(staged) == 1, "eval served the trained model from one local-disk copy"
    local = tiny["root"] / "reproduce"
    res = skyt1("reproduce", "--recipe", str(tiny["recipe"]), "--local", "--run-dir", str(local), "--yes",
                env=tiny["env"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert _summary(task_run) == _summary(local)
    assert _summary(task_run)["benchmarks"]["demo_math"]["scores"]["samples"] > 0
    for phase in ("distill", "filter"):
        assert _records(task_run, phase) == _records(local, phase), phase


def _sharded(tiny: dict, task_run: Path, phase: str, name: str) -> Path:
    """`phase` over 3 jobs in a fresh bucket holding task_run's upstream phases: ranks run 2, 0, 1, rank 0
    SIGKILLed (its whole process group, like a preempted node) once it has written output, then re-run."""
    bucket = tiny["root"] / name
    upstream = TASK_PHASES[: TASK_PHASES.index(phase)]
    for up in upstream:
        shutil.copytree(task_run / up, bucket / "tiny" / up)
    launch_local(tiny, phase, bucket, "--num-jobs", "3", "--job-rank", "2", rank=2)
    node = tiny["root"] / "nodes" / f"{name}-killed"
    proc = subprocess.Popen([sys.executable, "-c", "from skyt1.cli import main; main()",
                             *launch_args(tiny, phase, bucket, node, "--num-jobs", "3", "--job-rank", "0")],
                            cwd=REPO, env=tiny["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    out = bucket / "tiny" / phase
    before = set(out.rglob("*")) if out.exists() else set()
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (set(out.rglob("*")) - before if out.exists() else 0):
        time.sleep(0.05)
    assert proc.poll() is None, "job 0 finished before it could be killed mid-run"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "_DONE.json").exists()
    launch_local(tiny, phase, bucket, "--num-jobs", "3", "--job-rank", "0", rank=0)
    assert not (out / "_DONE.json").exists(), "two of three jobs finished: no manifest yet"
    launch_local(tiny, phase, bucket, "--num-jobs", "3", "--job-rank", "1", rank=1)
    assert (out / "_DONE.json").is_file(), "the last job to finish writes the manifest"
    return bucket / "tiny"


@pytest.mark.slow  # four more launches of distill; the every-task run above keeps the cloud path in `make test`
def test_distill_over_three_jobs_gives_the_records_of_one(tiny, task_run):
    run = _sharded(tiny, task_run, "distill", "bucket-distill-3")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("usage", "shard")} for r in rows]  # noqa: E731
    assert strip(_records(run, "distill")) == strip(_records(task_run, "distill"))
    one, three = (json.loads((r / "distill" / "_DONE.json").read_text()) for r in (task_run, run))
    assert one["outputs"] == three["outputs"]


@pytest.mark.slow
def test_eval_over_three_jobs_gives_the_summary_of_one(tiny, task_run):
    run = _sharded(tiny, task_run, "eval", "bucket-eval-3")
    assert _summary(run) == _summary(task_run)
