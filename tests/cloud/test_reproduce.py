"""`skyt1 reproduce` refuses over budget or without confirmation; a task's `run` survives SIGKILL."""

from __future__ import annotations

import time

import pytest
import yaml
from click.testing import CliRunner

from skyt1.cli import cli
from skyt1.cloud.pipeline import kill_task, start_task_locally
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
