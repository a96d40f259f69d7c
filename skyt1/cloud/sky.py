"""SkyPilot glue: load the task YAMLs in sky_tasks/, check what SkyPilot's parser does not, price them with
SkyPilot's optimizer, and launch phases as managed jobs.

`import sky` reads $SKY_RUNTIME_DIR/$HOME when imported, so `use_offline_catalog` must run before the first
import of sky in a process (tests do it in a subprocess, see skyt1.cloud.validate).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from skyt1.phases import GPU_PHASES

log = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parents[2] / "sky_tasks"
TERMINAL_OK = "SUCCEEDED"
MOUNT_ROOT_ENV = "RUN_ROOT"  # where the bucket is mounted on the nodes


class SkyError(Exception):
    """A task that cannot be loaded, checked or launched; the message says what to do."""


def task_path(phase: str) -> Path:
    path = TASKS_DIR / f"{phase}.yaml"
    if not path.is_file():
        raise SkyError(f"no SkyPilot task for phase {phase!r} ({path}); tasks: {sorted(p.stem for p in TASKS_DIR.glob('*.yaml'))}")
    return path


def use_offline_catalog(catalog: str | Path, runtime_dir: str | Path) -> None:
    """Point SkyPilot at a private runtime dir holding `catalog` (a v8 catalog tree); call before `import sky`.

    Files without a `.meta/*.md5` are treated by SkyPilot as user-provided and never refreshed, so every
    catalog look-up and the optimizer run offline on exactly these rows.
    """
    if "sky" in sys.modules:
        raise SkyError("use_offline_catalog must run before `import sky` in this process")
    runtime_dir = Path(runtime_dir)
    dst = runtime_dir / ".sky" / "catalogs" / "v8"
    shutil.copytree(catalog, dst, dirs_exist_ok=True)
    os.environ["SKY_RUNTIME_DIR"] = str(runtime_dir)
    os.environ["HOME"] = str(runtime_dir)


def enable_clouds_offline(clouds: list[str]) -> None:
    """Make SkyPilot's optimizer consider `clouds` without credentials (`sky check` needs the network)."""
    from sky import check as sky_check
    from sky.utils import registry

    enabled = [registry.CLOUD_REGISTRY.from_str(c) for c in clouds]
    sky_check.get_cached_enabled_clouds_or_refresh = lambda *a, **k: list(enabled)


def enabled_clouds() -> list[str]:
    """Clouds SkyPilot may use here (after `sky check`, or as set by enable_clouds_offline)."""
    from sky import check as sky_check
    from sky.clouds import cloud as sky_cloud

    found = sky_check.get_cached_enabled_clouds_or_refresh(sky_cloud.CloudCapability.COMPUTE)
    return [str(c).lower() for c in found]


def load_tasks(path: str | Path, envs: dict[str, str] | None = None) -> list:
    """Every task of a task or pipeline YAML through SkyPilot's own loader, with env overrides."""
    from sky.utils import dag_utils

    try:
        dag = dag_utils.load_chain_dag_from_yaml(str(path), env_overrides=list((envs or {}).items()))
    except Exception as e:  # SkyPilot raises ValueError / SchemaError / KeyError for bad YAML
        raise SkyError(f"{path}: SkyPilot cannot load it: {e}") from None
    return list(dag.tasks)


# ------------------------------------------------------------------------------------- invariants


def _candidates(task) -> list:
    res = task.resources
    return list(res) if isinstance(res, set | list | tuple) else [res]


def check_task(task, phase: str) -> list[str]:
    """What SkyPilot's parser lets through but skyt1 forbids; [] when the task is sound."""
    from sky import catalog
    from sky.utils import registry

    problems = []
    usable = enabled_clouds()
    cands = _candidates(task)
    gpu_counts = set()
    for r in cands:
        where = f"{phase}: candidate {r}"
        cloud = str(r.cloud).lower() if r.cloud else None
        if r.use_spot and cloud == "lambda":
            problems.append(f"{where}: spot on Lambda (Lambda sells no spot instances)")
        for name, count in (r.accelerators or {}).items():
            gpu_counts.add(count)
            # Look up only enabled clouds: a catalog look-up of another cloud would download its catalog.
            where_to_look = [cloud] if cloud in usable else usable
            found = catalog.list_accelerators(gpus_only=True, name_filter=name, quantity_filter=int(count),
                                              clouds=where_to_look, case_sensitive=True, all_regions=True)
            if not any(int(i.accelerator_count) == int(count) for i in found.get(name, [])):
                problems.append(f"{where}: no offering of {name}:{count:g} in the catalog (misspelled or impossible)")
        recovery = r.job_recovery or {}
        strategy = (recovery.get("strategy") or "").lower()
        if strategy and strategy not in registry.JOBS_RECOVERY_STRATEGY_REGISTRY:
            known = sorted(k.upper() for k in registry.JOBS_RECOVERY_STRATEGY_REGISTRY)
            problems.append(f"{where}: job_recovery.strategy {strategy.upper()!r} is not one of {known}")
        if phase in GPU_PHASES:
            if not r.accelerators:
                problems.append(f"{where}: a GPU phase without accelerators")
            if int(recovery.get("max_restarts_on_errors") or 0) < 1:
                problems.append(f"{where}: GPU phase needs job_recovery.max_restarts_on_errors >= 1")
        elif r.accelerators:
            problems.append(f"{where}: CPU phase asks for accelerators")
    if len(gpu_counts) > 1:
        problems.append(f"{phase}: GPU counts differ between candidates {sorted(gpu_counts)}; "
                        "a ZeRO-3 checkpoint cannot resume on another world size")
    mounts = task.storage_mounts or {}
    if not any(getattr(s, "mode", None) is not None and s.mode.value == "MOUNT_CACHED" for s in mounts.values()):
        problems.append(f"{phase}: the run bucket must be mounted with mode MOUNT_CACHED")
    root = task.envs.get(MOUNT_ROOT_ENV)
    if root not in mounts:
        problems.append(f"{phase}: env {MOUNT_ROOT_ENV}={root!r} is not the bucket mount point {sorted(mounts)}")
    if f"skyt1 {phase}" not in (task.run or ""):
        problems.append(f"{phase}: run does not call `skyt1 {phase}`")
    return problems


def optimize_offline(task, hours: Callable[[object], float]) -> tuple[object, float]:
    """Run SkyPilot's optimizer on one task with `hours(resources)` as its runtime; (best resources, $)."""
    import sky
    from sky import optimizer

    task.set_time_estimator(lambda r: int(hours(r) * 3600))
    dag = sky.Dag()
    dag.add(task)
    optimizer.Optimizer.optimize(dag, quiet=True)
    best = task.best_resources
    return best, best.get_cost(task.estimate_runtime(best))


def time_estimator(recipe, phase: str) -> Callable[[object], float]:
    """Hours of `phase` on given resources, from skyt1's cost model (spot includes preemption overhead)."""
    from skyt1.cloud.cost import phase_hours

    return lambda r: phase_hours(recipe, phase, spot=bool(getattr(r, "use_spot", False)))


# ------------------------------------------------------------------------------------- managed jobs


def phase_envs(recipe_path: str, bucket: str, run_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    envs = {"RECIPE": recipe_path, "BUCKET": bucket, "RUN_NAME": run_name}
    envs.update(extra or {})
    return envs


def _status_of(record) -> str:
    status = record.get("status") if isinstance(record, dict) else getattr(record, "status", None)
    return getattr(status, "value", str(status))


class ManagedJobs:
    """Launch phases as SkyPilot managed jobs (`sky jobs launch`) and wait for them."""

    def __init__(self, poll_s: float = 30.0):
        self.poll_s = poll_s

    def launch(self, phase: str, envs: dict[str, str], name: str) -> int:
        import sky

        tasks = load_tasks(task_path(phase), envs)
        try:
            job_ids, _ = sky.stream_and_get(sky.jobs.launch(tasks[0], name=name))
        except Exception as e:
            raise SkyError(f"launching {phase} failed: {e}; check `sky check` and `sky api info`") from None
        job_id = job_ids[0] if isinstance(job_ids, list) else job_ids
        log.info("launched %s as managed job %s", phase, job_id)
        return int(job_id)

    def wait(self, job_id: int, progress: Callable[[str], None] | None = None) -> str:
        """Poll until the job ends; return its final status (e.g. SUCCEEDED, FAILED, CANCELLED)."""
        import sky

        last = None
        while True:
            records = sky.get(sky.jobs.queue_v2(refresh=False, job_ids=[job_id]))[0]
            if not records:
                raise SkyError(f"managed job {job_id} is not in `sky jobs queue`")
            status = _status_of(records[0])
            if status != last and progress:
                progress(f"job {job_id}: {status}")
            last = status
            from sky.jobs.state import ManagedJobStatus

            if ManagedJobStatus(status).is_terminal():
                return status
            time.sleep(self.poll_s)
