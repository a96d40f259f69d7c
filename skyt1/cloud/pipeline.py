"""Run the phases in order: here (`run_local`) or as SkyPilot managed jobs (`reproduce_cloud`), skipping phases
whose manifest matches, inside a hard budget."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

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
    def launch(self, phase: str, envs: dict[str, str], name: str) -> int: ...
    def wait(self, job_id: int, progress: Callable[[str], None] | None = None) -> str: ...


def reproduce_cloud(recipe: Recipe, *, root: str, run_name: str, phases: list[str], launcher: Launcher,
                    envs: dict[str, str] | None = None, force: bool = False,
                    progress: Callable[[str], None] = print) -> list[str]:
    """Launch each phase not yet complete in `root`/`run_name` as a managed job and wait for it.

    `root` is where the tasks' bucket is seen from here (s3://BUCKET). Returns the phases launched.
    """
    run = RunDir(f"{root.rstrip('/')}/{run_name}")
    phases = [p for p in check_phases(phases) if p != "report"]
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
        job_id = launcher.launch(phase, dict(envs or {}), f"skyt1-{run_name}-{phase}")
        progress(f"[{phase}] managed job {job_id} launched")
        status = launcher.wait(job_id, progress)
        launched.append(phase)
        rerun.add(phase)
        m = run.phase(phase).manifest()
        budget.spent_usd += _spent(recipe, phase, m, cost.get(phase, 0.0))
        if status != "SUCCEEDED" or m is None:
            raise PipelineError(
                f"[{phase}] managed job {job_id} ended {status}"
                f"{'' if m else ' without a manifest'}; see `sky jobs logs {job_id}`, fix, and rerun "
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


# ------------------------------------------------------------------------------------------ task YAMLs


def task_command(path: str | Path, envs: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The `run` script of a task YAML and the environment SkyPilot would give it (YAML envs + overrides)."""
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d and "run" in d]
    if len(docs) != 1:
        raise PipelineError(f"{path}: expected one task with a `run` section, found {len(docs)}")
    task_envs = {k: "" if v is None else str(v) for k, v in (docs[0].get("envs") or {}).items()}
    task_envs.update(envs)
    missing = [k for k, v in task_envs.items() if v == "" and (docs[0]["envs"] or {}).get(k) is None]
    if missing:
        raise PipelineError(f"{path}: required env(s) {missing} not set; pass --env {missing[0]}=...")
    return docs[0]["run"], task_envs


def start_task_locally(path: str | Path, envs: dict[str, str], cwd: str | Path, log_file=None) -> subprocess.Popen:
    """Start a task's `run` under bash here, as a node would (a local directory stands in for the mount)."""
    script, task_envs = task_command(path, envs)
    env = {**os.environ, **task_envs}
    return subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill_task(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group, like a preempted node: no cleanup runs."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
