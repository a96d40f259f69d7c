"""`skyt1 reproduce` refuses over budget or without confirmation, skips exactly the phases whose manifest
matches the recipe and the upstream outputs, and launches each phase with its secrets and its jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from skyt1.cli import cli
from skyt1.cloud.pipeline import matches, phase_runner, reproduce_cloud
from skyt1.cloud.secrets import for_launch
from skyt1.cloud.sky import task_path
from skyt1.protocol import PhaseError, plan
from skyt1.recipe import load_recipe
from skyt1.store import RunDir

from .conftest import PUBLISHED, REPO


def test_estimate_over_budget_refuses_before_launching():
    res = CliRunner().invoke(cli, ["reproduce", "--recipe", str(PUBLISHED), "--set", "budget_usd=100", "--yes",
                                   "--bucket", "never-used"])
    assert res.exit_code != 0
    assert "exceeds budget_usd $100.00" in res.output and "refusing to start" in res.output


def test_no_terminal_and_no_yes_refuses(tmp_path):
    """After the launch-side checks pass, a cloud run still waits for a yes it cannot get without a terminal."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path), "SKY_RUNTIME_DIR": str(tmp_path),
           "OPENAI_API_KEY": "sk-test", "HF_TOKEN": "hf-test"}
    res = subprocess.run([sys.executable, "-c", "from skyt1.cli import main; main()", "reproduce", "--recipe",
                          str(PUBLISHED), "--bucket", "my-skyt1-bucket"], cwd=REPO, env=env, input="",
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "--yes" in res.stderr, res.stderr[-2000:]
    assert "ok: SkyPilot's launch-side checks pass" in res.stdout


def test_cloud_overrides_that_would_not_reach_the_nodes_are_refused():
    res = CliRunner().invoke(cli, ["reproduce", "--recipe", str(PUBLISHED), "--bucket", "my-skyt1-bucket",
                                   "--set", "distill.sampling.temperature=1.0", "--yes"])
    assert res.exit_code != 0 and "distill.sampling.temperature would not reach the nodes" in res.output


def test_unknown_phase_is_an_error():
    res = CliRunner().invoke(cli, ["reproduce", "--recipe", str(PUBLISHED), "--phases", "label,bake", "--yes"])
    assert res.exit_code != 0 and "bake" in res.output


def _filtered_run(path) -> RunDir:
    """A run whose filter phase is complete: three verified math traces, assemble's input."""
    run = RunDir(path)
    trace = ("<|begin_of_thought|>\n\nwork\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n$\\boxed{1}$\n\n"
             "<|end_of_solution|>")
    with run.phase("filter").writer() as w:
        for i, q in enumerate(("Add one and zero together.", "What is two minus one?", "Name the first positive integer.")):
            w.write({"id": f"demo_math/{i}#0", "problem_id": f"demo_math/{i}", "domain": "math", "question": q,
                     "reference": "1", "tests": None, "starter_code": None, "reformat_method": "llm", "trace": trace})
    run.phase("filter").write_manifest(recipe_digest="x", inputs={}, counts={}, started_at=time.time())
    return run


class InProcessLauncher:
    """Stands in for SkyPilot managed jobs (no cloud here): runs the phase in this process."""

    def __init__(self, recipe, run):
        self.recipe, self.run, self.launched, self.calls, self.force = recipe, run, [], [], False

    def launch(self, phase, envs, name, *, secrets=None, num_jobs=1):
        self.launched.append(phase)
        self.calls.append({"phase": phase, "secrets": dict(secrets or []), "num_jobs": num_jobs})
        phase_runner(phase)(self.recipe, self.run, force=self.force)
        return [len(self.launched)]

    def wait(self, job_id, progress=None):
        return "SUCCEEDED"


def test_reproduce_skips_matching_phases_and_reruns_changed_ones(tmp_path):
    recipe = load_recipe(REPO / "recipes" / "tiny.yaml", {"assemble.mixture": {"math": 3, "code": 0, "science": 0},
                                                          "budget_usd": 5})
    run = _filtered_run(tmp_path / "runs" / "r1")
    launcher = InProcessLauncher(recipe, run)
    reproduce = lambda: reproduce_cloud(recipe, root=str(tmp_path / "runs"), run_name="r1",  # noqa: E731
                                        phases=["assemble"], launcher=launcher, progress=lambda _: None)
    assert reproduce() == ["assemble"] and matches(run, "assemble", recipe)
    assert reproduce() == []  # complete for this recipe and these inputs: skipped
    recipe.eval.n = {"demo_math": 9}  # another phase's knob: assemble still matches
    assert matches(run, "assemble", recipe)
    recipe.assemble.decontam_ngram = 6  # assemble's own knob changed: relaunched, and the phase refuses to
    assert not matches(run, "assemble", recipe)  # mix its old output with the new setting
    assert [(p["phase"], p["action"]) for p in plan(recipe, run, ["assemble", "train"])] == [
        ("assemble", "refuse"), ("train", "run")]
    with pytest.raises(PhaseError, match=r"assemble.decontam_ngram: 8 -> 6\n.*Pass --force"):
        reproduce()
    launcher.force = True  # what `--force` passes on
    assert reproduce() == ["assemble"] and launcher.launched == ["assemble", "assemble", "assemble"]
    manifest = run.phase("filter").manifest()  # upstream output changed: not a match any more
    run.phase("filter").write_manifest(recipe_digest="x", inputs={}, counts={}, started_at=time.time(),
                                       outputs={"records": "0000"})
    assert manifest["outputs"] != {"records": "0000"} and not matches(run, "assemble", recipe)


def test_each_phase_is_launched_with_its_secrets_and_jobs(tmp_path, monkeypatch):
    """What the recipe needs from this environment is passed (a missing required one as a reference that
    SkyPilot refuses), and a phase split over N jobs is one launch with num_jobs=N."""
    recipe = load_recipe(REPO / "recipes" / "tiny.yaml", {"assemble.mixture": {"math": 3, "code": 0, "science": 0},
                                                          "budget_usd": 5, "cloud.resources": {"assemble": {}}})
    recipe.assemble.decontam_benchmarks = ["gpqa_diamond"]  # gated, not in data_dir: HF_TOKEN is required
    recipe.cloud.resources["assemble"].num_jobs = 2
    run = _filtered_run(tmp_path / "runs" / "r1")
    launcher = InProcessLauncher(recipe, run)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    reproduce_cloud(recipe, root=str(tmp_path / "runs"), run_name="r1", phases=["assemble"], launcher=launcher,
                    progress=lambda _: None)
    assert launcher.calls == [{"phase": "assemble", "secrets": {"HF_TOKEN": None}, "num_jobs": 2}]
    monkeypatch.setenv("HF_TOKEN", "hf-test")
    assert dict(for_launch(recipe, "assemble", task_path("assemble"))) == {"HF_TOKEN": "hf-test"}
