"""`skyt1 reproduce --dryrun` and `skyt1 launch PHASE --dryrun`: SkyPilot's launch-side checks run here on the
pinned catalog, with nothing in the environment but what the command says, and a one-line refusal naming
what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import CATALOG, PUBLISHED, REPO


def dryrun(tmp_path: Path, *args: str, secrets: dict[str, str], cwd: Path = REPO,
           catalog: bool = True) -> subprocess.CompletedProcess:
    """The command in a bare environment: PATH, PYTHONPATH (this checkout), a fresh HOME, the pinned catalog
    (unless `catalog` is false), and the given secrets; nothing else."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": str(home), **secrets}
    if catalog:
        env["SKYT1_SKY_CATALOG"] = str(CATALOG)
    return subprocess.run([sys.executable, "-c", "from skyt1.cli import main; main()", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


KEYS = {"OPENAI_API_KEY": "sk-test", "HF_TOKEN": "hf-test"}


def error_line(res: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    return lines[0]


def test_reproduce_dryrun_passes_with_the_two_keys_and_prints_the_plan(tmp_path):
    res = dryrun(tmp_path, "reproduce", "--recipe", "recipes/sky-t1-32b-preview.yaml", "--bucket", "my-skyt1-bucket",
                 "--dryrun", "--yes", secrets=KEYS)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    plan = res.stdout
    for phase in ("label", "distill", "reformat", "filter", "assemble", "train", "eval"):
        assert f"\n{phase} " in plan, phase
    assert "aws p5.48xlarge spot" in plan and "(budget $1,200)" in plan
    assert "eval: TP=2 x DP=4" in plan
    assert "OPENAI_API_KEY   required  set" in plan and "HF_TOKEN         required  set" in plan
    assert "ok: SkyPilot's launch-side checks pass" in plan
    assert "sk-test" not in res.stdout + res.stderr and "hf-test" not in res.stdout + res.stderr


def test_without_a_catalog_or_sky_check_the_plan_says_what_it_did_not_check(tmp_path):
    """No catalog on disk and no `sky check` yet (a new user, offline): every other check runs, and the plan
    says the offerings were not checked instead of failing or guessing."""
    res = dryrun(tmp_path, "reproduce", "--recipe", "recipes/sky-t1-32b-preview.yaml", "--bucket", "my-skyt1-bucket",
                 "--dryrun", "--yes", secrets=KEYS, catalog=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "note: offerings, prices and the optimizer were not checked: run `sky check`" in res.stdout
    assert "eval: TP=2 x DP=4 (80 GiB GPUs, skyt1 table" in res.stdout
    assert "ok: SkyPilot's launch-side checks pass" in res.stdout


def test_reproduce_dryrun_refuses_in_one_line_what_skypilot_would(tmp_path):
    """Without OPENAI_API_KEY, SkyPilot's own secret resolution refuses reformat; an S3-invalid bucket name
    (SkyPilot's store rules: 3-63 characters) is refused with it."""
    res = dryrun(tmp_path, "reproduce", "--recipe", str(PUBLISHED), "--bucket", "b", "--dryrun", "--yes",
                 secrets={"HF_TOKEN": "hf-test"})
    assert res.returncode != 0
    line = error_line(res)
    assert line.startswith("Error: OPENAI_API_KEY is not set: reformat (reformat.mode: llm) calls the OpenAI API")
    assert "bucket 'b' (S3): Invalid store name: name b must be between 3 (min) and 63 (max) characters" in line
    assert "OPENAI_API_KEY   required  NOT SET" in res.stdout


def test_launch_dryrun_names_a_layout_vllm_cannot_start_and_counts_jobs(tmp_path):
    """A recipe with eval at TP=1 on 8 x H100 is refused before anything is paid for; distill over 3 jobs is
    planned and priced as 3 nodes; a phase that cannot be split is refused."""
    work = tmp_path / "work"
    (work / "recipes").mkdir(parents=True)
    recipe = yaml.safe_load(PUBLISHED.read_text())
    recipe["eval"]["engine"].update(tensor_parallel_size=1, data_parallel_size=8)
    (work / "recipes" / "tp1.yaml").write_text(yaml.safe_dump(recipe))
    res = dryrun(tmp_path, "launch", "eval", "--recipe", "recipes/tp1.yaml", "--bucket", "my-skyt1-bucket",
                 "--dryrun", secrets=KEYS, cwd=work)
    assert res.returncode != 0
    assert "eval: TP=1 leaves 6.9 GiB of KV cache per GPU" in error_line(res) and "use TP=2 x DP=4" in res.stdout

    res = dryrun(tmp_path, "launch", "distill", "--recipe", "recipes/sky-t1-32b-preview.yaml", "--bucket",
                 "my-skyt1-bucket", "--num-jobs", "3", "--dryrun", secrets={})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    row = next(ln for ln in res.stdout.splitlines() if ln.startswith("distill "))
    assert row.split()[1] == "3" and "HF_TOKEN         optional  not set" in res.stdout

    res = dryrun(tmp_path, "launch", "filter", "--recipe", "recipes/sky-t1-32b-preview.yaml", "--bucket",
                 "my-skyt1-bucket", "--num-jobs", "2", "--dryrun", secrets={})
    assert res.returncode != 0 and "filter: cannot be split over 2 jobs" in error_line(res)
