"""The task YAMLs load with SkyPilot's own loader offline, keep skyt1's invariants, and SkyPilot's optimizer
finds a machine for each on the pinned catalog, at the price skyt1's cost model gives. Their setup installs
the phase's locked environment, their secrets match what the published recipe needs, and every `skyt1`
command line in them parses against the CLI."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap

import click
import pytest
import yaml

from skyt1 import phases
from skyt1.cli import cli
from skyt1.cloud import secrets
from skyt1.cloud.cost import estimate
from skyt1.phases import GPU_PHASES as GPU_TASKS
from skyt1.phases import TASK_PHASES as PHASE_ORDER
from skyt1.recipe import load_recipe

from .conftest import PUBLISHED, REPO, run_validate

TASKS = REPO / "sky_tasks"
SHARDED = tuple(p.name for p in phases.PHASES if p.shardable)  # the phases that take --shard I/N


def task(phase: str) -> dict:
    return yaml.safe_load((TASKS / f"{phase}.yaml").read_text())


def test_every_task_loads_checks_and_is_feasible(sky_report):
    rc, report, log = sky_report
    assert rc == 0, log[-3000:]
    assert set(report["tasks"]) == set(PHASE_ORDER)
    for phase, entry in report["tasks"].items():
        assert entry["problems"] == [], (phase, entry["problems"])
        assert entry["best"]["instance_type"], phase
    # unset here, so SkyPilot's own resolution reports exactly what the published recipe requires
    assert {p: e["missing_secrets"] for p, e in report["tasks"].items() if e["missing_secrets"]} == {
        "reformat": ["OPENAI_API_KEY"], "assemble": ["HF_TOKEN"], "eval": ["HF_TOKEN"]}
    assert "TP=2 x DP=4" in report["tasks"]["eval"]["layout"]


def test_no_pipeline_yaml_beside_reproduce():
    """`skyt1 reproduce` launches the phase tasks; a managed-pipeline YAML would be a second orchestration."""
    assert sorted(p.stem for p in TASKS.glob("*.yaml")) == sorted(PHASE_ORDER)


def test_gpu_tasks_ask_h100x8_everywhere_and_never_spot_on_lambda():
    for phase in GPU_TASKS:
        res = task(phase)["resources"]
        assert res["accelerators"] == "H100:8"
        assert all("accelerators" not in c for c in res["any_of"])  # no candidate overrides the count
        assert {"infra": "lambda"} in res["any_of"]
        assert all(c.get("use_spot") for c in res["any_of"] if c["infra"] != "lambda")
        assert res["job_recovery"]["max_restarts_on_errors"] >= 1


def test_secrets_match_what_the_published_recipe_needs():
    """null (SkyPilot refuses the launch without --secret NAME) exactly where the published recipe cannot run
    without it; "" (optional, never blocks) for the rest; no secret a phase never reads (no W&B key)."""
    recipe = load_recipe(PUBLISHED)
    for phase in PHASE_ORDER:
        declared = task(phase).get("secrets") or {}
        needs = secrets.needs(recipe, phase)
        assert {k for k, v in declared.items() if v is None} == {n.name for n in needs if n.required}, phase
        assert {k for k, v in declared.items() if v == ""} <= {n.name for n in needs} | {"OPENAI_API_KEY"}, phase
        assert set(declared) >= {n.name for n in needs}, phase
    assert "WANDB_API_KEY" not in (task("train").get("secrets") or {})


def test_task_headers_show_the_launch_with_every_required_secret():
    for phase in PHASE_ORDER:
        text = (TASKS / f"{phase}.yaml").read_text()
        required = [k for k, v in (task(phase).get("secrets") or {}).items() if v is None]
        launches = [ln for ln in text.splitlines() if ln.startswith("#   sky jobs launch")]
        assert launches, phase
        for line in launches:
            assert f"sky_tasks/{phase}.yaml --env BUCKET=" in line
            assert all(f"--secret {name}" in line for name in required), (phase, line)


def test_envs_mount_and_run_line():
    for phase in PHASE_ORDER:
        doc = task(phase)
        assert doc["envs"]["BUCKET"] is None  # required at launch
        assert doc["envs"]["RECIPE"] == "recipes/sky-t1-32b-preview.yaml"
        assert doc["file_mounts"]["$RUN_ROOT"]["mode"] == "MOUNT_CACHED"
        assert f'skyt1 {phase} --recipe "$RECIPE" --run-dir "$RUN_ROOT/$RUN_NAME"' in doc["run"]


def test_sharded_phases_take_their_shard_from_skypilot_job_rank():
    """`sky jobs launch --num-jobs N` sets SKYPILOT_JOB_RANK and SKYPILOT_NUM_JOBS on each job (and neither
    under plain `sky launch`, hence the defaults)."""
    assert SHARDED == ("distill", "eval")
    for phase in PHASE_ORDER:
        run = task(phase)["run"].replace("\\\n", " ")
        has = '--shard "${SKYPILOT_JOB_RANK:-0}/${SKYPILOT_NUM_JOBS:-1}"' in run
        assert has == (phase in SHARDED), phase


def test_every_setup_installs_the_roles_locked_environment():
    """A recovery installs exactly what the first attempt did: the role's lock through `make env-<role>`, and
    nothing resolved at install time; bubblewrap where generated code is scored (filter, eval)."""
    for phase in PHASE_ORDER:
        setup = task(phase)["setup"]
        role = phases.get(phase).role
        assert re.findall(r"make env-(\w+) VENV=\"\$VENV\"", setup) == [role], phase
        assert not re.search(r"\b(pip|uv pip|uv) install\b|\buv venv\b|\bconda install\b", setup), phase
        assert ("bubblewrap" in setup) == (phase in ("filter", "eval")), phase


def _skyt1_lines(text: str) -> list[str]:
    """The `skyt1 ...` command lines of a shell script, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("skyt1 ")]


def _expand(line: str, envs: dict[str, str]) -> list[str]:
    """The words of `line` after bash's own expansion with `envs`: what the node's shell passes to skyt1."""
    script = f'set -eu; set -- {line[len("skyt1 "):]}; printf "%s\\0" "$@"'
    out = subprocess.run(["bash", "-c", script], env={"PATH": os.environ["PATH"], **envs}, capture_output=True,
                         check=True, timeout=30).stdout.decode()
    return out.split("\0")[:-1]


def test_every_skyt1_line_in_every_task_parses_against_the_cli():
    """A renamed or removed option fails here: each command line runs through the CLI's own parser."""
    seen = 0
    for phase in PHASE_ORDER:
        doc = task(phase)
        envs = {k: str(v) for k, v in doc["envs"].items() if v is not None}
        envs.update(BUCKET="b", SKYPILOT_JOB_RANK="1", SKYPILOT_NUM_JOBS="3")
        for section in ("setup", "run"):
            for line in _skyt1_lines(doc.get(section) or ""):
                args = _expand(line, envs)
                ctx = cli.make_context("skyt1", list(args), resilient_parsing=False)
                name, cmd, rest = cli.resolve_command(ctx, ctx.protected_args + ctx.args)
                assert cmd is not None, (phase, line)
                try:
                    cmd.make_context(name, rest, parent=ctx)
                except click.ClickException as e:
                    pytest.fail(f"{phase}.yaml: `{shlex.join(args)}` does not parse: {e.format_message()}")
                seen += 1
    assert seen >= len(PHASE_ORDER)


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
    train = report["tasks"]["train"]["best"]
    assert (train["cloud"], train["instance_type"], train["spot"]) == ("aws", "p5.48xlarge", True)


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
    "bucket_uri": ("name: $BUCKET", "name: s3://$BUCKET", "Invalid store name"),
}
EVAL_BAD = {"unsharded": ('\\\n    --shard "${SKYPILOT_JOB_RANK:-0}/${SKYPILOT_NUM_JOBS:-1}"', "", "run does not pass --shard")}


def test_checks_catch_what_the_skypilot_parser_misses(tmp_path):
    train = (TASKS / "train.yaml").read_text()
    args = []
    for name, (old, new, _) in BAD.items():
        assert old in train, name
        path = tmp_path / f"{name}.yaml"
        path.write_text(train.replace(old, new))
        args += ["--task", f"train:{name}={path}"]
    evaluation = (TASKS / "eval.yaml").read_text()
    for name, (old, new, _) in EVAL_BAD.items():
        assert old in evaluation, name
        path = tmp_path / f"eval-{name}.yaml"
        path.write_text(evaluation.replace(old, new))
        args += ["--task", f"eval:{name}={path}"]
    unknown_key = tmp_path / "unknown_key.yaml"
    unknown_key.write_text(train.replace("job_recovery:", "spot_recovery:"))
    args += ["--task", f"train:unknown_key={unknown_key}"]
    rc, report, log = run_validate(tmp_path, *args)
    assert rc == 1
    for name, (_, _, expected) in BAD.items():
        problems = report["tasks"][f"train:{name}"]["problems"]
        assert any(expected in p for p in problems), (name, problems)
    for name, (_, _, expected) in EVAL_BAD.items():
        assert any(expected in p for p in report["tasks"][f"eval:{name}"]["problems"]), name
    assert report["tasks"]["train:unknown_key"]["problems"], "SkyPilot's loader rejects the legacy key"


def test_readme_launch_command_parses(tmp_path):
    """`sky jobs launch sky_tasks/train.yaml --env BUCKET=... --env RUN_NAME=...`: the overrides reach the task."""
    snippet = textwrap.dedent("""
        import sys
        from skyt1.cloud.sky import load_tasks
        t = load_tasks(sys.argv[1], {"BUCKET": "my-bucket", "RUN_NAME": "sky-t1-a"})[0]
        mount = t.storage_mounts["/skyt1"]
        print(t.envs["RUN_NAME"], mount.name, mount.mode.value)
    """)
    env = {**os.environ, "HOME": str(tmp_path), "SKY_RUNTIME_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", snippet, str(TASKS / "train.yaml")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["sky-t1-a", "my-bucket", "MOUNT_CACHED"], out.stderr[-2000:]
