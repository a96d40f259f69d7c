"""Run a SkyPilot task here as a node would (`skyt1 launch --local`).

The task is loaded with SkyPilot's own loader (its `envs` with the `--env` overrides, its secrets with the
`--secret` values) and its secrets are resolved by SkyPilot's own launch-time step. The node is a directory:
it plays the node's HOME, the task's workdir is copied to NODE/sky_workdir (what SkyPilot syncs: its own
exclusion rules, .skyignore or .gitignore), and the bucket the task mounts at $RUN_ROOT is a local directory.
`setup` and then `run` are written as SkyPilot writes them (sky.skylet.log_lib.make_task_bash_script) and run
under bash with only the variables a node has: the task's envs and secrets and SkyPilot's SKYPILOT_*
variables (one node at 127.0.0.1, the job's rank of `--num-jobs`, a task id), never this shell's others.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from skyt1.cloud.sky import MOUNT_ROOT_ENV, SkyError, gpus_per_node, load_tasks, unresolved_secrets

# What a node's shell has besides the task's variables, which on a node its machine image provides: where
# programs are, the locale, and how this machine reaches the network (TLS roots, proxies).
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TERM", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                  "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
NODE_IP = "127.0.0.1"


class MissingSecrets(SkyError):
    def __init__(self, path, names: list[str]):
        super().__init__(f"{path}: no value for secret(s) {', '.join(names)}")
        self.names = names


@dataclass
class LocalNode:
    """Where a task runs here: `node_dir` plays the node's HOME, `bucket_dir` the mounted bucket."""

    node_dir: Path
    bucket_dir: Path
    log: object = None  # a file for the task's output; None: this process's stdout
    procs: list = field(default_factory=list)


def local_gpus() -> int:
    """GPUs on this machine (nvidia-smi), 0 without."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def copy_workdir(src: str | Path, dst: Path) -> None:
    """The task's workdir as SkyPilot syncs it: everything but what .skyignore (else .gitignore) excludes."""
    from sky.data import storage_utils

    src = Path(src).expanduser().resolve()
    if not src.is_dir():
        raise SkyError(f"workdir {src} is not a directory")
    excluded = {os.path.normpath(p) for p in storage_utils.get_excluded_files(str(src))}
    if dst.resolve().is_relative_to(src):  # never copy the node into itself
        excluded.add(os.path.normpath(dst.resolve().relative_to(src).parts[0]))
    if dst.exists():
        shutil.rmtree(dst)

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = os.path.relpath(folder, src)
        return {n for n in names if os.path.normpath(os.path.join(rel, n)) in excluded}

    shutil.copytree(src, dst, ignore=ignore, symlinks=True)


def _script(body: str) -> str:
    """A task section as SkyPilot writes it for a node (~/.bashrc, cd ~/sky_workdir, the body). The variables
    travel in the process environment rather than as exports in the file, so no secret is written to disk."""
    from sky.skylet import log_lib

    return log_lib.make_task_bash_script(body)


def _node_env(node: LocalNode) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env.update(HOME=str(node.node_dir), USER=os.environ.get("USER", "skyt1"), PYTHONUNBUFFERED="1")
    if os.environ.get("TMPDIR"):
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def task_variables(task, *, job_rank: int, num_jobs: int, task_id: str, gpus: int) -> tuple[dict, dict]:
    """(setup variables, run variables) as SkyPilot gives them to a single-node managed job."""
    from sky import task as task_lib

    base = task_lib.get_plaintext_envs_and_secrets(task.envs_and_secrets)
    base["SKYPILOT_CLUSTER_INFO"] = json.dumps({"cluster_name": "local", "cloud": "local", "region": None,
                                                "zone": None})
    base["SKYPILOT_USER"] = os.environ.get("USER", "skyt1")
    setup = {**base, "SKYPILOT_SETUP_NODE_IPS": NODE_IP, "SKYPILOT_SETUP_NODE_RANK": "0",
             "SKYPILOT_SETUP_NUM_GPUS_PER_NODE": str(gpus)}
    run = {**base, "SKYPILOT_TASK_ID": task_id, "SKYPILOT_TASK_IDS": task_id,
           "SKYPILOT_NODE_IPS": NODE_IP, "SKYPILOT_NUM_NODES": "1", "SKYPILOT_NODE_RANK": "0",
           "SKYPILOT_NUM_GPUS_PER_NODE": str(gpus),
           "SKYPILOT_JOB_RANK": str(job_rank), "SKYPILOT_NUM_JOBS": str(num_jobs)}
    return setup, run


def prepare(path: str | Path, envs: dict[str, str], secrets: list[tuple[str, str | None]], node: LocalNode):
    """Load the task with the bucket mount mapped to `node.bucket_dir`; check what a launch checks."""
    bucket = node.bucket_dir.resolve()
    tasks = load_tasks(path, {**envs, MOUNT_ROOT_ENV: str(bucket)}, secrets)
    if len(tasks) != 1:
        raise SkyError(f"{path}: holds {len(tasks)} tasks; launch --local runs one task file at a time")
    task = tasks[0]
    missing = unresolved_secrets(tasks)
    if missing:
        raise MissingSecrets(path, missing)
    if task.num_nodes != 1:
        raise SkyError(f"{path}: asks for {task.num_nodes} nodes; launch --local runs one node")
    for mount in task.storage_mounts or {}:
        if Path(mount) != bucket:
            raise SkyError(f"{path}: mounts a bucket at {mount}; launch --local maps only the mount at "
                           f"${MOUNT_ROOT_ENV}")
    if task.file_mounts:
        raise SkyError(f"{path}: file_mounts {sorted(task.file_mounts)} cannot be reproduced here")
    if task.workdir is not None and not isinstance(task.workdir, str):
        raise SkyError(f"{path}: a git workdir cannot be reproduced here; use a local directory")
    return task


def run_task(path: str | Path, envs: dict[str, str], secrets: list[tuple[str, str | None]], node: LocalNode, *,
             job_rank: int = 0, num_jobs: int = 1, say=print) -> int:
    """Set up and run one job of the task on the local node; the exit status of the first section that fails."""
    node.node_dir, node.bucket_dir = node.node_dir.resolve(), node.bucket_dir.resolve()
    task = prepare(path, envs, secrets, node)
    node.node_dir.mkdir(parents=True, exist_ok=True)
    node.bucket_dir.mkdir(parents=True, exist_ok=True)
    if task.workdir is not None:
        copy_workdir(task.workdir, node.node_dir / "sky_workdir")
    else:
        (node.node_dir / "sky_workdir").mkdir(exist_ok=True)
    asked = gpus_per_node(task)
    gpus = min(asked, local_gpus())
    if asked and gpus < asked:
        say(f"[{task.name}] the task asks {asked} GPUs per node, this machine has {gpus}: "
            f"SKYPILOT_NUM_GPUS_PER_NODE={gpus}")
    task_id = f"sky-local-{time.strftime('%Y-%m-%d-%H-%M-%S')}_{task.name}_{job_rank}"
    setup_env, run_env = task_variables(task, job_rank=job_rank, num_jobs=num_jobs, task_id=task_id, gpus=gpus)
    for section, body, env in (("setup", task.setup, setup_env), ("run", task.run, run_env)):
        if not body:
            continue
        say(f"[{task.name}] {section} (job {job_rank} of {num_jobs}) on node {node.node_dir}")
        script = node.node_dir / f"sky_{section}_{job_rank}.sh"
        script.write_text(_script(body))
        rc = _bash(script, env, node)
        if rc != 0:
            say(f"[{task.name}] {section} failed with exit status {rc}")
            return rc
    return 0


def _bash(script: Path, env: dict[str, str], node: LocalNode) -> int:
    # In this process's group: a kill of the launch (Ctrl-C, or kill -9 of its group, as a preempted node
    # dies) takes the task down with it, never leaving it running alone.
    proc = subprocess.Popen(["bash", str(script)], cwd=node.node_dir, env={**_node_env(node), **env},
                            stdout=node.log, stderr=subprocess.STDOUT if node.log else None)
    node.procs.append(proc)
    try:
        return proc.wait()
    finally:
        node.procs.remove(proc)
        if node.log is None:
            sys.stdout.flush()
