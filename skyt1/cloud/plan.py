"""`skyt1 launch PHASE --dryrun` and `skyt1 reproduce --dryrun`: everything SkyPilot checks before it
provisions, run here, and the plan it would carry out.

For each phase: the task loaded by SkyPilot's loader with the overrides the real launch passes (envs,
`--secret` values), SkyPilot's own secret resolution, SkyPilot's bucket-name rules for the mount, the
accelerator offerings in SkyPilot's catalog and its optimizer's choice, skyt1's task invariants, the vLLM
layout of the recipe's engine against the node's GPU memory, and skyt1's cost estimate (with the jobs a
phase is split over). Nothing is provisioned and nothing is written to the bucket.

The catalog: `--catalog DIR` (or $SKYT1_SKY_CATALOG) runs every look-up offline on that v8 catalog tree;
otherwise SkyPilot's own catalog and the clouds of the last `sky check` are used, and without those the
plan says the offerings were not checked.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from skyt1 import phases as phase_table
from skyt1.cloud import secrets as secret_rules
from skyt1.cloud.sky import SkyError, first_line, task_path
from skyt1.recipe import Recipe

CATALOG_ENV = "SKYT1_SKY_CATALOG"
SHARDABLE = tuple(p.name for p in phase_table.PHASES if p.shardable)


@dataclass
class PhasePlan:
    phase: str
    task: str
    resources: str = ""
    candidates: list[str] = field(default_factory=list)
    best: dict | None = None  # SkyPilot optimizer's choice for one job: cloud, instance_type, spot, usd
    jobs: int = 1
    usd: float = 0.0
    layout: str = ""
    secrets: list[tuple[str, bool, bool, str]] = field(default_factory=list)  # name, required, set, why
    problems: list[str] = field(default_factory=list)
    missing_secrets: list[str] = field(default_factory=list)


@dataclass
class Plan:
    recipe: Recipe
    bucket: str
    run_name: str
    phases: list[PhasePlan]
    catalog: str  # where offerings came from
    notes: list[str] = field(default_factory=list)
    workdir_problems: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return list(dict.fromkeys([*self.workdir_problems, *(p for ph in self.phases for p in ph.problems)]))

    @property
    def missing_secrets(self) -> list[str]:
        return list(dict.fromkeys(n for ph in self.phases for n in ph.missing_secrets))

    def reason(self) -> str | None:
        """One line naming what is missing; None when the launch would go ahead."""
        parts = []
        if self.missing_secrets:
            phases = [ph.phase for ph in self.phases if ph.missing_secrets]
            parts.append(secret_rules.missing_message(self.recipe, phases, self.missing_secrets))
        others = self.problems
        if others:
            parts.append("; ".join(others[:3]) + (f" (and {len(others) - 3} more above)" if len(others) > 3 else ""))
        return "; ".join(parts) or None


# ------------------------------------------------------------------------------------------ catalog


def setup_catalog(catalog: str | None) -> tuple[list[str] | None, str]:
    """Prepare SkyPilot's catalog before `import sky`: (clouds to consider or None if unchecked, source)."""
    catalog = catalog or os.environ.get(CATALOG_ENV)
    from skyt1.cloud import sky as skyglue

    if catalog:
        runtime = tempfile.mkdtemp(prefix="skyt1-dryrun-")
        atexit.register(shutil.rmtree, runtime, True)
        skyglue.use_offline_catalog(catalog, runtime)
        clouds = skyglue.catalog_clouds(catalog)
        skyglue.enable_clouds_offline(clouds)
        return clouds, f"catalog {catalog} (offline; clouds: {', '.join(clouds)})"
    clouds = skyglue.checked_clouds()
    if not clouds:
        return None, "none: no `sky check` result here and no --catalog/$" + CATALOG_ENV
    skyglue.enable_clouds_offline(clouds)
    return clouds, f"SkyPilot's catalog, clouds enabled by the last `sky check`: {', '.join(clouds)}"


# ------------------------------------------------------------------------------------------ one phase


def _resources(task) -> str:
    from skyt1.cloud.sky import accelerator, candidates, gpus_per_node

    r = candidates(task)[0]
    if gpus_per_node(task):
        what = f"{accelerator(task)}:{gpus_per_node(task)}"
    else:
        what = f"cpus {r.cpus or '-'}" + (f", memory {r.memory}" if r.memory else "")
    return what + f", disk {r.disk_size} GB" + (f", {task.num_nodes} nodes" if task.num_nodes > 1 else "")


def _candidate_names(task, clouds: list[str] | None) -> list[str]:
    from skyt1.cloud.sky import candidates

    out = []
    for r in candidates(task):
        cloud = str(r.cloud).lower() if r.cloud else "any cloud"
        unchecked = r.cloud is not None and clouds is not None and cloud not in clouds
        out.append(cloud + (" spot" if r.use_spot else "") + (" (unchecked)" if unchecked else ""))
    return sorted(out)


def _gpu_gib(task, clouds: list[str] | None) -> tuple[float, str]:
    from skyt1.cloud.layout import GPU_GIB
    from skyt1.cloud.sky import accelerator

    name = accelerator(task)
    if clouds:
        from sky import catalog

        found = catalog.list_accelerators(gpus_only=True, name_filter=name, clouds=clouds, case_sensitive=True)
        mems = [i.device_memory for i in found.get(name, []) if i.device_memory]
        if mems:
            return float(min(mems)), "catalog"
    if name not in GPU_GIB:
        raise SkyError(f"unknown memory of GPU {name}; pass --catalog DIR")
    return GPU_GIB[name], "skyt1 table"


def _layout(recipe: Recipe, phase: str, task, clouds: list[str] | None) -> tuple[str, list[str]]:
    from skyt1.cloud import layout
    from skyt1.cloud.sky import gpus_per_node

    engine = recipe.distill.engine if phase == "distill" else recipe.eval.engine if phase == "eval" else None
    if engine is None or engine.backend != "vllm":
        return "", []
    model = engine.model
    params = None
    if model == "trained":
        model, params = recipe.train.base_model, recipe.cost.train_params
    elif model.startswith("."):
        model = recipe.resolve_path(model)
    try:
        arch = layout.model_arch(model, params)
        gib, source = _gpu_gib(task, clouds)
        best, problems = layout.check(engine, arch, gpus_per_node(task), gib, phase)
    except (layout.LayoutError, SkyError) as e:
        return "not checked", [f"{phase}: layout not checked: {e}"]
    return (f"TP={engine.tensor_parallel_size} x DP={engine.data_parallel_size} ({gib:g} GiB GPUs, {source}; "
            f"skyt1 chooses {best.describe(engine.max_model_len or arch.max_position)})"), problems


def plan_phase(recipe: Recipe, phase: str, *, path: Path, envs: dict[str, str],
               explicit_secrets: list[tuple[str, str]], num_jobs: int, usd: float,
               clouds: list[str] | None) -> PhasePlan:
    from skyt1.cloud import sky as skyglue

    pp = PhasePlan(phase, str(path), jobs=num_jobs, usd=usd)
    overrides = dict(secret_rules.for_launch(recipe, phase, path, explicit_secrets))
    for need in secret_rules.needs(recipe, phase):
        pp.secrets.append((need.name, need.required, bool(overrides.get(need.name)), need.why))
    try:
        tasks = skyglue.load_tasks(path, envs, list(overrides.items()))
    except SkyError as e:
        pp.problems.append(str(e))
        return pp
    task = tasks[0]
    pp.missing_secrets = skyglue.unresolved_secrets(tasks)
    pp.problems += skyglue.storage_problems(task)
    pp.resources = _resources(task)
    pp.candidates = _candidate_names(task, clouds)
    if num_jobs > 1 and not phase_table.get(phase).shardable:
        pp.problems.append(f"{phase}: cannot be split over {num_jobs} jobs (only {', '.join(SHARDABLE)} can)")
    if clouds is not None:
        try:
            pp.problems += skyglue.check_task(task, phase)
            best, job_usd = skyglue.optimize_offline(task, skyglue.time_estimator(recipe, phase))
            pp.best = {"cloud": str(best.cloud).lower(), "instance_type": best.instance_type,
                       "spot": bool(best.use_spot), "usd": job_usd}
        except Exception as e:  # the optimizer raises ResourcesUnavailableError etc.: one line per phase
            pp.problems.append(f"{phase}: SkyPilot finds no machine: {first_line(e)}")
    pp.layout, layout_problems = _layout(recipe, phase, task, clouds)
    pp.problems += layout_problems
    return pp


def make_plan(recipe: Recipe, recipe_path: str, phases: list[str], *, bucket: str, run_name: str,
              extra_envs: dict[str, str] | None = None, explicit_secrets: list[tuple[str, str]] | None = None,
              num_jobs: dict[str, int] | None = None, task_files: dict[str, Path] | None = None,
              catalog: str | None = None) -> Plan:
    from skyt1.cloud.cost import estimate, jobs
    from skyt1.cloud.sky import phase_envs

    clouds, source = setup_catalog(catalog)
    counts = {p: (num_jobs or {}).get(p) or jobs(recipe, p) for p in phases}
    priced = recipe_with_jobs(recipe, counts)
    usd = {p["name"]: p["usd"] for p in estimate(priced, phases=phases)["phases"]}
    envs = phase_envs(recipe_path, bucket, run_name, extra_envs)
    out = []
    for phase in phases:
        path = (task_files or {}).get(phase) or task_path(phase)
        out.append(plan_phase(priced, phase, path=Path(path), envs=envs, explicit_secrets=explicit_secrets or [],
                              num_jobs=counts[phase], usd=usd.get(phase, 0.0), clouds=clouds))
    plan = Plan(recipe, bucket, run_name, out, source, workdir_problems=synced_problems(recipe_path))
    if clouds is None:
        plan.notes.append("offerings, prices and the optimizer were not checked: run `sky check`, or pass --catalog "
                          f"DIR (${CATALOG_ENV}) with a SkyPilot v8 catalog")
    return plan


def synced_problems(recipe_path: str, workdir: str = ".") -> list[str]:
    """The recipe must reach the nodes: a file in the workdir that SkyPilot syncs (not excluded by
    .skyignore/.gitignore)."""
    from sky.data import storage_utils

    path = Path(recipe_path)
    if path.is_absolute() or not (Path(workdir) / path).is_file():
        return [f"recipe {recipe_path} is not a file inside the workdir SkyPilot syncs ({Path(workdir).resolve()})"]
    excluded = [Path(e) for e in storage_utils.get_excluded_files(workdir)]
    hit = next((e for e in excluded if path == e or e in path.parents), None)
    if hit is not None:
        return [f"recipe {recipe_path} is excluded from the workdir SkyPilot syncs ({hit} is ignored by "
                ".skyignore/.gitignore); move it, e.g. under recipes/"]
    return []


def recipe_with_jobs(recipe: Recipe, counts: dict[str, int]) -> Recipe:
    """The recipe with `cloud.resources.<phase>.num_jobs` set to `counts` (what a --num-jobs flag asks)."""
    from skyt1.recipe import PhaseResources

    resources = dict(recipe.cloud.resources)
    for phase, n in counts.items():
        if n != (resources[phase].num_jobs if phase in resources else 1):
            base = resources.get(phase) or PhaseResources()
            resources[phase] = base.model_copy(update={"num_jobs": n})
    return recipe.model_copy(update={"cloud": recipe.cloud.model_copy(update={"resources": resources})})


# ------------------------------------------------------------------------------------------ printing


def render(plan: Plan) -> str:
    lines = [f"skyt1 dry run: recipe {plan.recipe.name}, bucket {plan.bucket} (s3://{plan.bucket}/{plan.run_name}), "
             "nothing provisioned", f"catalog: {plan.catalog}", ""]
    head = f"{'phase':<9} {'jobs':>4}  {'resources':<34} {'candidates':<26} {'cheapest (SkyPilot)':<34} {'est. $':>8}"
    lines += [head, "-" * len(head)]
    for ph in plan.phases:
        b = ph.best
        best = (f"{b['cloud']} {b['instance_type']}{' spot' if b['spot'] else ''} ${b['usd'] * ph.jobs:,.0f}"
                if b else "not checked")
        lines.append(f"{ph.phase:<9} {ph.jobs:>4}  {ph.resources:<34} {', '.join(ph.candidates):<26} "
                     f"{best:<34} {ph.usd:>8,.0f}")
    total = sum(ph.usd for ph in plan.phases)
    budget = plan.recipe.budget_usd
    lines.append(f"{'total':<9} {'':>4}  {'':<34} {'':<26} {'':<34} {total:>8,.0f}"
                 + (f"  (budget ${budget:,.0f})" if budget is not None else ""))
    layouts = [(ph.phase, ph.layout) for ph in plan.phases if ph.layout]
    if layouts:
        lines += ["", "vLLM layout:"] + [f"  {p}: {text}" for p, text in layouts]
    lines += ["", "secrets (read from this environment, passed to SkyPilot as --secret; never written anywhere):"]
    rows: dict[str, dict] = {}
    for ph in plan.phases:
        for name, required, is_set, why in ph.secrets:
            row = rows.setdefault(name, {"set": is_set, "required": [], "optional": []})
            row["required" if required else "optional"].append(why if required else ph.phase)
    for name, row in rows.items():
        state = "set" if row["set"] else ("NOT SET" if row["required"] else "not set")
        what = "; ".join(row["required"])
        if row["optional"]:
            what += ("; " if what else "") + f"optional in {', '.join(row['optional'])}"
        lines.append(f"  {name:<16} {'required' if row['required'] else 'optional':<9} {state:<8} {what}")
    if not rows:
        lines.append("  none")
    problems = plan.problems + [f"missing secret {n}" for n in plan.missing_secrets]
    lines += [""] + [f"note: {n}" for n in plan.notes]
    lines += [f"problem: {p}" for p in problems] or ["ok: SkyPilot's launch-side checks pass"]
    return "\n".join(lines)
