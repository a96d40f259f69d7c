"""`skyt1 reproduce` refuses over budget or without confirmation, skips exactly the phases whose manifest
matches the recipe and the upstream outputs, and a task's `run` survives SIGKILL."""

from __future__ import annotations

import time

import pytest
import yaml
from click.testing import CliRunner

from skyt1.cli import cli
from skyt1.cloud.pipeline import kill_task, matches, phase_runner, reproduce_cloud, start_task_locally
from skyt1.protocol import PhaseError, plan
from skyt1.recipe import load_recipe
from skyt1.store import RunDir

from .conftest import PUBLISHED, REPO


def test_estimate_over_budget_refuses_before_launching():
    res = CliRunner().invoke(cli, ["reproduce", "--recipe", str(PUBLISHED), "--set", "budget_usd=100", "--yes",
                                   "--bucket", "never-used"])
    assert res.exit_code != 0
    assert "exceeds budget_usd $100.00" in res.output and "refusing to start" in res.output


def test_no_terminal_and_no_yes_refuses():
    res = CliRunner().invoke(cli, ["reproduce", "--recipe", str(PUBLISHED), "--bucket", "b"], input="")
    assert res.exit_code != 0 and "--yes" in res.output


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
        self.recipe, self.run, self.launched, self.force = recipe, run, [], False

    def launch(self, phase, envs, name):
        self.launched.append(phase)
        phase_runner(phase)(self.recipe, self.run, force=self.force)
        return len(self.launched)

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


@pytest.mark.slow
def test_label_task_survives_sigkill(tmp_path):
    """label.yaml's `run`, SIGKILLed mid-phase and run again, ends with the records of an uninterrupted run."""
    from skyt1.engines.base import Completion, Engine
    from skyt1.engines.server import start_server

    class Slow(Engine):
        def generate(self, requests):
            for r in requests:
                time.sleep(0.2)
                yield Completion(r.id, "Rated [[4]]", "stop", prompt_tokens=5, completion_tokens=3)

        def info(self):
            return {"backend": "slow", "model": "tiny-teacher"}

    with start_server(Slow()) as server:
        recipe = yaml.safe_load((REPO / "recipes" / "tiny.yaml").read_text())
        recipe["label"]["api"]["base_url"] = server.url
        recipe["label"]["api"]["concurrency"] = 1
        (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
        envs = {"BUCKET": "unused", "RUN_ROOT": str(tmp_path / "bucket"), "RECIPE": str(tmp_path / "r.yaml"),
                "VENV": str(REPO / ".venv"), "SKYT1_DEMO_KEY": "sk-test"}
        task = REPO / "sky_tasks" / "label.yaml"

        def run(name, kill_after=None):
            proc = start_task_locally(task, {**envs, "RUN_NAME": name}, cwd=REPO)
            if kill_after is not None:
                time.sleep(kill_after)
                kill_task(proc)
                proc = start_task_locally(task, {**envs, "RUN_NAME": name}, cwd=REPO)
            assert proc.wait(timeout=300) == 0

        run("clean")
        run("killed", kill_after=6.0)
    clean, killed = (RunDir(tmp_path / "bucket" / n).phase("label") for n in ("clean", "killed"))
    assert killed.manifest() is not None
    strip = lambda recs: [{k: v for k, v in r.items() if k != "usage"} for r in recs]  # noqa: E731
    assert strip(killed.records()) == strip(clean.records())
    assert killed.manifest()["outputs"] == clean.manifest()["outputs"]
