"""Run the phases in order: here (`run_local`) or as SkyPilot managed jobs (`reproduce_cloud`), skipping phases
whose manifest matches, inside a hard budget.

This is the one orchestration of the pipeline. On the cloud it launches each phase's own task file in
sky_tasks/ (what `sky jobs launch sky_tasks/PHASE.yaml` runs), with the phase's secrets and its number of
jobs; there is no managed-pipeline YAML beside it, because a SkyPilot pipeline cannot split one of its tasks
over `--num-jobs`, cannot stop between phases on the budget, and would ask every phase's secrets up front.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from skyt1 import phases as phase_table
from skyt1.cloud.cost import estimate
from skyt1.recipe import Recipe
from skyt1.store import RunDir

ALL_PHASES = phase_table.NAMES


class PipelineError(Exception):
    """The pipeline stopped; the message says why and what to do."""


class BudgetError(PipelineError):
    pass


def check_phases(phases: list[str]) -> list[str]:
    try:
        return phase_table.in_order(phases)
    except phase_table.UnknownPhase as e:
        raise PipelineError(str(e)) from None


def phase_runner(phase: str) -> Callable[..., dict]:
    module = phase_table.get(phase).module
    try:
        return importlib.import_module(module).run
    except ModuleNotFoundError as e:
        if e.name and (e.name == module or module.startswith(e.name + ".")):
            raise PipelineError(f"phase {phase!r} is not available in this install ({module} is missing)") from None
        raise


def run_local(recipe: Recipe, run: RunDir, phases: list[str], force: bool = False,
              progress: Callable[[str], None] = print) -> list[dict]:
    """Run `phases` in order in this process; each phase skips itself when its manifest matches."""
    manifests = []
    for phase in check_phases(phases):
        progress(f"[{phase}] running in {run.uri}")
        manifests.append(phase_runner(phase)(recipe, run, force=force))
        progress(f"[{phase}] done")
    return manifests


# ------------------------------------------------------------------------------------------ skipping


def matches(run: RunDir, phase: str, recipe: Recipe, rerun: set[str] = frozenset()) -> bool:
    """A phase's manifest exists, was computed from this recipe's settings for the phase, and from what
    its upstream phases hold now (each input digest is one of the upstream manifest's output digests)."""
    m = run.phase(phase).manifest()
    if m is None or m.get("recipe_digest") != phase_table.get(phase).config_digest(recipe):
        return False
    for upstream, digest in (m.get("inputs") or {}).items():
        if upstream in rerun:
            return False
        up = run.phase(upstream).manifest() if upstream in phase_table.BY_NAME else None
        if up is not None and digest not in (up.get("outputs") or {}).values():
            return False
    return True


# ------------------------------------------------------------------------------------------ budget


@dataclass
class Budget:
    """A hard stop: never start work whose estimate would take total spending past `limit_usd`."""

    limit_usd: float | None
    spent_usd: float = 0.0

    def check(self, remaining_usd: float, what: str) -> None:
        if self.limit_usd is None:
            return
        if self.spent_usd + remaining_usd > self.limit_usd:
            raise BudgetError(
                f"budget: refusing to {what}: spent ${self.spent_usd:,.2f} + estimated ${remaining_usd:,.2f} "
                f"= ${self.spent_usd + remaining_usd:,.2f} exceeds budget_usd ${self.limit_usd:,.2f}; raise "
                "budget_usd in the recipe (or --set budget_usd=N), or run fewer phases (--phases)"
            )


def phase_usd(cost: dict) -> dict[str, float]:
    return {p["name"]: p["usd"] for p in cost["phases"]}


# ------------------------------------------------------------------------------------------ cloud


class Launcher(Protocol):
    def launch(self, phase: str, envs: dict[str, str], name: str, *,
               secrets: list[tuple[str, str | None]] | None = None, num_jobs: int = 1) -> list[int]: ...
    def wait(self, job_id: int, progress: Callable[[str], None] | None = None) -> str: ...


def reproduce_cloud(recipe: Recipe, *, root: str, run_name: str, phases: list[str], launcher: Launcher,
                    envs: dict[str, str] | None = None, secrets: list[tuple[str, str]] | None = None,
                    force: bool = False, progress: Callable[[str], None] = print) -> list[str]:
    """Launch each phase not yet complete in `root`/`run_name` as managed job(s) and wait for them.

    `root` is where the tasks' bucket is seen from here (s3://BUCKET). A phase split over N jobs
    (`cloud.resources.<phase>.num_jobs`) is one `sky jobs launch --num-jobs N`. Returns the phases launched.
    """
    from skyt1.cloud.cost import jobs
    from skyt1.cloud.secrets import for_launch
    from skyt1.cloud.sky import task_path

    run = RunDir(f"{root.rstrip('/')}/{run_name}")
    phases = [p for p in check_phases(phases) if phase_table.get(p).has_task]
    rerun: set[str] = set()
    todo = [p for p in phases if force or not matches(run, p, recipe)]
    cost = phase_usd(estimate(recipe, phases=todo))
    budget = Budget(recipe.budget_usd)
    budget.check(sum(cost.values()), f"launch {', '.join(todo) or 'nothing'}")
    launched = []
    for i, phase in enumerate(phases):
        if not force and phase not in rerun and matches(run, phase, recipe, rerun):
            progress(f"[{phase}] complete in {run.uri}: skipped")
            continue
        budget.check(sum(cost.get(p, 0.0) for p in phases[i:]), f"start {phase}")
        n = jobs(recipe, phase)
        job_ids = launcher.launch(phase, dict(envs or {}), f"skyt1-{run_name}-{phase}",
                                  secrets=for_launch(recipe, phase, task_path(phase), secrets),
                                  num_jobs=n)
        progress(f"[{phase}] managed job(s) {', '.join(map(str, job_ids))} launched")
        statuses = {j: launcher.wait(j, progress) for j in job_ids}
        launched.append(phase)
        rerun.add(phase)
        m = run.phase(phase).manifest()
        budget.spent_usd += _spent(recipe, phase, m, cost.get(phase, 0.0))
        failed = {j: s for j, s in statuses.items() if s != "SUCCEEDED"}
        if failed or m is None:
            first = next(iter(failed or statuses))
            raise PipelineError(
                f"[{phase}] managed job(s) ended {failed or statuses}"
                f"{'' if m else ' without a manifest'}; see `sky jobs logs {first}`, fix, and rerun "
                "(finished phases are skipped)"
            )
        progress(f"[{phase}] done (spent so far ~${budget.spent_usd:,.2f})")
    return launched


def _spent(recipe: Recipe, phase: str, manifest: dict | None, estimated: float) -> float:
    """What a finished phase cost: its wall time at the estimate's hourly rate, plus its API cost."""
    if not manifest or not manifest.get("wall_time_s"):
        return estimated
    est = next(p for p in estimate(recipe, phases=[phase])["phases"])
    hourly = (est["usd"] - est["api_usd"]) / est["hours"] if est["hours"] else 0.0
    return manifest["wall_time_s"] / 3600 * hourly + float(manifest.get("cost_usd") or est["api_usd"])


