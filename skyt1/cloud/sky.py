"""SkyPilot glue: load the task YAMLs in sky_tasks/ with SkyPilot's own loader, run SkyPilot's launch-side
checks (secret resolution, bucket names, catalog offerings, the optimizer) without provisioning, check what
SkyPilot's parser does not, and launch phases as managed jobs.

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
from skyt1.phases import get as get_phase

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # SkyPilot's state database logs each migration at INFO

TASKS_DIR = Path(__file__).resolve().parents[2] / "sky_tasks"
TERMINAL_OK = "SUCCEEDED"
MOUNT_ROOT_ENV = "RUN_ROOT"  # where the bucket is mounted on the nodes
SHARD_ARG = '--shard "${SKYPILOT_JOB_RANK:-0}/${SKYPILOT_NUM_JOBS:-1}"'  # `sky jobs launch --num-jobs N` sets both


class SkyError(Exception):
    """A task that cannot be loaded, checked or launched; the message says what to do."""


def task_path(phase: str) -> Path:
    path = TASKS_DIR / f"{phase}.yaml"
    if not path.is_file():
        tasks = sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))
        raise SkyError(f"no SkyPilot task for phase {phase!r} ({path}); tasks: {tasks}")
    return path


def use_offline_catalog(catalog: str | Path, runtime_dir: str | Path) -> None:
    """Point SkyPilot at a private runtime dir holding `catalog` (a v8 catalog tree); call before `import sky`.

    Files without a `.meta/*.md5` are treated by SkyPilot as user-provided and never refreshed, so every
    catalog look-up and the optimizer run offline on exactly these rows.
    """
    if "sky" in sys.modules:
        raise SkyError("use_offline_catalog must run before `import sky` in this process")
    if not (Path(catalog) / "common").is_dir() and not any(Path(catalog).glob("*/vms.csv")):
        raise SkyError(f"{catalog} is not a SkyPilot v8 catalog (expected <cloud>/vms.csv files)")
    runtime_dir = Path(runtime_dir)
    dst = runtime_dir / ".sky" / "catalogs" / "v8"
    shutil.copytree(catalog, dst, dirs_exist_ok=True)
    os.environ["SKY_RUNTIME_DIR"] = str(runtime_dir)
    os.environ["HOME"] = str(runtime_dir)


def catalog_clouds(catalog: str | Path) -> list[str]:
    """The clouds a v8 catalog tree has rows for."""
    return sorted(p.parent.name for p in Path(catalog).glob("*/vms.csv"))


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


def checked_clouds() -> list[str]:
    """Clouds the last `sky check` enabled, from SkyPilot's cache only (never runs a check)."""
    from sky import global_user_state, skypilot_config
    from sky.clouds import cloud as sky_cloud

    found = global_user_state.get_cached_enabled_clouds(sky_cloud.CloudCapability.COMPUTE,
                                                        skypilot_config.get_active_workspace())
    return [str(c).lower() for c in found]


# ------------------------------------------------------------------------------------- loading


def load_tasks(path: str | Path, envs: dict[str, str] | None = None,
               secrets: list[tuple[str, str | None]] | None = None) -> list:
    """Every task of a task YAML through SkyPilot's own loader, with the `--env` and `--secret` overrides a
    launch passes (a secret override of None is a reference that must be resolved at launch)."""
    from sky.utils import dag_utils

    try:
        dag = dag_utils.load_chain_dag_from_yaml(str(path), env_overrides=list((envs or {}).items()),
                                                 secret_overrides=list(secrets or []) or None)
    except Exception as e:  # SkyPilot raises ValueError / SchemaError / KeyError for bad YAML
        raise SkyError(f"{path}: SkyPilot cannot load it: {first_line(e)}") from None
    return list(dag.tasks)


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def unresolved_secrets(tasks: list) -> list[str]:
    """Run SkyPilot's own launch-time secret resolution (sky.execution._resolve_managed_secrets, the step
    that raises "No value available for secret(s)") on `tasks`; the names it could not resolve."""
    import sky
    from sky import execution

    dag = sky.Dag()
    for t in tasks:
        dag.add(t)
    try:
        execution._resolve_managed_secrets(dag)
    except RuntimeError as e:
        if "No value available for secret" not in str(e):
            raise
        return sorted({ref.name for t in tasks for ref in t.managed_secret_refs})
    return []


def storage_problems(task) -> list[str]:
    """SkyPilot's own checks of each bucket mount that need no cloud access: the store's bucket-name rules."""
    from sky.data import storage as sky_storage

    stores = {"S3": sky_storage.S3Store, "GCS": sky_storage.GcsStore, "R2": sky_storage.R2Store}
    problems = []
    for path, st in (task.storage_mounts or {}).items():
        if not st.name:
            problems.append(f"the bucket mounted at {path} has no name (set BUCKET)")
            continue
        for store_type in st.stores:
            cls = stores.get(store_type.value)
            try:
                if cls is not None:
                    cls.validate_name(st.name)
            except Exception as e:  # StorageNameError: one line saying which rule the name breaks
                problems.append(f"bucket {st.name!r} ({store_type.value}): {first_line(e).rstrip('.')}")
    return problems


def candidates(task) -> list:
    res = task.resources
    return list(res) if isinstance(res, set | list | tuple) else [res]


def gpus_per_node(task) -> int:
    """The accelerator count a node of `task` gets (the same on every candidate, see check_task)."""
    return max((int(n) for r in candidates(task) for n in (r.accelerators or {}).values()), default=0)


def accelerator(task) -> str | None:
    return next((name for r in candidates(task) for name in (r.accelerators or {})), None)


# ------------------------------------------------------------------------------------- invariants


def check_task(task, phase: str) -> list[str]:
    """What SkyPilot's parser lets through but skyt1 forbids; [] when the task is sound."""
    from sky import catalog
    from sky.utils import registry

    problems = []
    usable = enabled_clouds()
    cands = candidates(task)
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
    run = " ".join((task.run or "").replace("\\\n", " ").split())
    if f"skyt1 {phase}" not in run:
        problems.append(f"{phase}: run does not call `skyt1 {phase}`")
    if get_phase(phase).shardable and SHARD_ARG not in run:
        problems.append(f"{phase}: run does not pass {SHARD_ARG} (`sky jobs launch --num-jobs N` would run N "
                        "copies of the whole phase)")
    return problems


def optimize_offline(task, hours: Callable[[object], float]) -> tuple[object, float]:
    """Run SkyPilot's optimizer on one task with `hours(resources)` as its runtime; (best resources, $)."""
    import sky
    from sky import optimizer, sky_logging

    task.set_time_estimator(lambda r: int(hours(r) * 3600))
    dag = sky.Dag()
    dag.add(task)
    with sky_logging.silent():  # no progress payloads or "cloud not enabled" lines on our stdout
        optimizer.Optimizer.optimize(dag, quiet=True)
    best = task.best_resources
    return best, best.get_cost(task.estimate_runtime(best))


def time_estimator(recipe, phase: str) -> Callable[[object], float]:
    """Hours of one job of `phase` on given resources, from skyt1's cost model (spot includes preemption
    overhead; a phase split over several jobs gives each its share)."""
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
    """Launch phases as SkyPilot managed jobs (`sky jobs launch [--num-jobs N]`) and wait for them."""

    def __init__(self, poll_s: float = 30.0):
        self.poll_s = poll_s

    def launch(self, phase: str, envs: dict[str, str], name: str, *,
               secrets: list[tuple[str, str | None]] | None = None, num_jobs: int = 1,
               task_file: str | Path | None = None) -> list[int]:
        import sky

        tasks = load_tasks(task_file or task_path(phase), envs, secrets)
        missing = unresolved_secrets(tasks)
        if missing:
            raise SkyError(f"{phase}: no value for secret(s) {', '.join(missing)}; export them and launch again")
        try:
            job_ids, _ = sky.stream_and_get(sky.jobs.launch(tasks[0], name=name, num_jobs=num_jobs))
        except Exception as e:
            raise SkyError(f"launching {phase} failed: {first_line(e)}; check `sky check` and `sky api info`") from None
        ids = [int(j) for j in (job_ids if isinstance(job_ids, list) else [job_ids])]
        log.info("launched %s as managed job(s) %s", phase, ids)
        return ids

    def wait(self, job_id: int, progress: Callable[[str], None] | None = None) -> str:
        """Poll until the job ends; return its final status (e.g. SUCCEEDED, FAILED, CANCELLED)."""
        import sky
        from sky.jobs.state import ManagedJobStatus

        last = None
        while True:
            records = sky.get(sky.jobs.queue_v2(refresh=False, job_ids=[job_id]))[0]
            if not records:
                raise SkyError(f"managed job {job_id} is not in `sky jobs queue`")
            status = _status_of(records[0])
            if status != last and progress:
                progress(f"job {job_id}: {status}")
            last = status
            if ManagedJobStatus(status).is_terminal():
                return status
            time.sleep(self.poll_s)
