"""The task YAMLs load with SkyPilot's own loader offline, keep skyt1's invariants, and SkyPilot's optimizer
finds a machine for each on the pinned catalog, at the price skyt1's cost model gives."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from skyt1.cloud.cost import estimate
from skyt1.cloud.validate import render_pipeline
from skyt1.phases import GPU_PHASES as GPU_TASKS
from skyt1.phases import TASK_PHASES as PHASE_ORDER
from skyt1.recipe import load_recipe

from .conftest import PUBLISHED, REPO, run_validate

TASKS = REPO / "sky_tasks"


def test_every_task_loads_checks_and_is_feasible(sky_report):
    rc, report, log = sky_report
    assert rc == 0, log[-3000:]
    assert set(report["tasks"]) == set(PHASE_ORDER)
    for phase, entry in report["tasks"].items():
        assert entry["problems"] == [], (phase, entry["problems"])
        assert entry["best"]["instance_type"], phase
        assert entry["envs"]["BUCKET"] == "skyt1-validate"
    assert report["pipeline"] == {"tasks": [f"skyt1-{p}" for p in PHASE_ORDER], "problems": []}


def test_gpu_tasks_ask_h100x8_everywhere_and_never_spot_on_lambda():
    for phase in GPU_TASKS:
        res = yaml.safe_load((TASKS / f"{phase}.yaml").read_text())["resources"]
        assert res["accelerators"] == "H100:8"
        assert all("accelerators" not in c for c in res["any_of"])  # no candidate overrides the count
        assert {"infra": "lambda"} in res["any_of"]
        assert all(c.get("use_spot") for c in res["any_of"] if c["infra"] != "lambda")
        assert res["job_recovery"]["max_restarts_on_errors"] >= 1


def test_secrets_are_references_and_knobs_have_defaults():
    for phase in PHASE_ORDER:
        doc = yaml.safe_load((TASKS / f"{phase}.yaml").read_text())
        assert all(v is None for v in doc["secrets"].values()), phase
        assert doc["envs"]["BUCKET"] is None  # required at launch
        assert doc["envs"]["RECIPE"] == "recipes/sky-t1-32b-preview.yaml"
        assert doc["file_mounts"]["$RUN_ROOT"]["mode"] == "MOUNT_CACHED"
        assert f'skyt1 {phase} --recipe "$RECIPE" --run-dir "$RUN_ROOT/$RUN_NAME"' in doc["run"]
    assert "OPENAI_API_KEY" in yaml.safe_load((TASKS / "reformat.yaml").read_text())["secrets"]
    assert "--shard \"$SHARD/$NUM_SHARDS\"" in (TASKS / "distill.yaml").read_text()


def test_pipeline_is_generated_from_the_phase_tasks():
    assert (TASKS / "pipeline.yaml").read_text() == render_pipeline()


def test_optimizer_price_agrees_with_skyt1_cost(sky_report):
    _, report, _ = sky_report
    cost = estimate(load_recipe(PUBLISHED))
    for p in cost["phases"]:
        if p["name"] not in GPU_TASKS:
            continue
        best = report["tasks"][p["name"]]["best"]
        ours = p["by_cloud"][best["cloud"]]["spot_usd" if best["spot"] else "on_demand_usd"]
        assert best["usd"] == pytest.approx(ours, rel=0.01), p["name"]
    # the optimizer picks AWS spot: our spot price includes the preemption overhead and it is still cheapest
    assert report["tasks"]["train"]["best"] == pytest.approx(
        {"cloud": "aws", "instance_type": "p5.48xlarge", "spot": True, "usd": report["tasks"]["train"]["best"]["usd"]})


BAD = {
    "bad_strategy": ("strategy: EAGER_NEXT_REGION", "strategy: EAGER_NEXT_ZONE", "is not one of"),
    "typo_gpu": ("accelerators: H100:8", "accelerators: H1OO:8", "no offering of H1OO:8"),
    "impossible_gpu": ("accelerators: H100:8", "accelerators: H100:7", "no offering of H100:7"),
    "lambda_spot": ("    - infra: lambda       # on demand: Lambda sells no spot",
                    "    - infra: lambda\n      use_spot: true", "spot on Lambda"),
    "no_restarts": ("    max_restarts_on_errors: 3", "    max_restarts_on_errors: 0", "max_restarts_on_errors >= 1"),
    "mixed_counts": ("    - infra: aws\n      use_spot: true",
                     "    - infra: aws\n      use_spot: true\n      accelerators: H100:4", "GPU counts differ"),
    "copy_mount": ("mode: MOUNT_CACHED", "mode: COPY", "MOUNT_CACHED"),
}


def test_checks_catch_what_the_skypilot_parser_misses(tmp_path):
    train = (TASKS / "train.yaml").read_text()
    args = []
    for name, (old, new, _) in BAD.items():
        assert old in train, name
        path = tmp_path / f"{name}.yaml"
        path.write_text(train.replace(old, new))
        args += ["--task", f"train:{name}={path}"]
    unknown_key = tmp_path / "unknown_key.yaml"
    unknown_key.write_text(train.replace("job_recovery:", "spot_recovery:"))
    args += ["--task", f"train:unknown_key={unknown_key}"]
    rc, report, log = run_validate(tmp_path, *args)
    assert rc == 1
    for name, (_, _, expected) in BAD.items():
        problems = report["tasks"][f"train:{name}"]["problems"]
        assert any(expected in p for p in problems), (name, problems)
    assert report["tasks"]["train:unknown_key"]["problems"], "SkyPilot's loader rejects the legacy key"


def test_readme_launch_command_parses(tmp_path):
    """`sky launch sky_tasks/train.yaml --env BUCKET=... --env RUN_NAME=...`: the overrides reach the task."""
    snippet = textwrap.dedent("""
        import sys
        from skyt1.cloud.sky import load_tasks
        t = load_tasks(sys.argv[1], {"BUCKET": "my-bucket", "RUN_NAME": "sky-t1-a"})[0]
        mount = t.storage_mounts["/skyt1"]
        print(t.envs["RUN_NAME"], mount.name, mount.mode.value)
    """)
    import os
    import subprocess
    import sys

    env = {**os.environ, "HOME": str(tmp_path), "SKY_RUNTIME_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", snippet, str(TASKS / "train.yaml")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["sky-t1-a", "my-bucket", "MOUNT_CACHED"], out.stderr[-2000:]
