"""`skyt1 cost`: golden figures, including the published training run (19 h on 8xH100, ~$450 at $2.99/GPU-h)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from skyt1.cli import cli
from skyt1.cloud.cost import CostError, estimate, params_of
from skyt1.recipe import load_recipe

from .conftest import CATALOG, PUBLISHED, REPO


@pytest.fixture(scope="module")
def published():
    return load_recipe(PUBLISHED)


def phase(cost, name):
    return next(p for p in cost["phases"] if p["name"] == name)


def test_published_training_figure(published):
    train = phase(estimate(published, gpu_hour_price=2.99), "train")
    assert train["hours"] == pytest.approx(19.0, abs=0.3)
    assert train["gpu_hours"] == pytest.approx(152, abs=3)
    assert train["usd"] == pytest.approx(450, abs=15)
    assert train["work"]["flops"] == pytest.approx(6 * 32.8e9 * 16000 * 3 * 5600)
    assert train["work"]["steps"] == 501  # ceil(16,000 samples / global batch 96) x 3 epochs


def test_prices_per_cloud_on_demand_and_spot(published):
    cost = estimate(published)
    train = phase(cost, "train")
    assert train["by_cloud"]["lambda"]["spot_usd"] is None  # Lambda sells no spot
    assert train["by_cloud"]["lambda"]["on_demand_usd"] == pytest.approx(train["on_demand_hours"] * 31.92)
    assert train["by_cloud"]["aws"]["on_demand_usd"] == pytest.approx(train["on_demand_hours"] * 55.04)
    assert (train["cloud"], train["spot"]) == ("lambda", False)  # cheapest on demand
    spot = phase(estimate(published, spot=True), "train")
    assert (spot["cloud"], spot["spot"]) == ("aws", True)
    assert spot["hours"] > train["hours"]  # preemption overhead
    assert spot["usd"] == pytest.approx(spot["hours"] * 11.2543)
    assert estimate(published)["total_usd"] == pytest.approx(sum(p["usd"] for p in cost["phases"]))


def test_spot_overhead_grows_with_checkpoint_interval(published):
    often = published.model_copy(update={"train": published.train.model_copy(update={"save_steps": 10})})
    rare = published.model_copy(update={"train": published.train.model_copy(update={"save_steps": 500})})
    assert phase(estimate(often, spot=True), "train")["hours"] < phase(estimate(rare, spot=True), "train")["hours"]
    hopeless = published.model_copy(update={"cost": published.cost.model_copy(update={"spot_preemptions_per_hour": 2.0})})
    with pytest.raises(CostError, match="never finish"):
        estimate(hopeless, spot=True)


def test_api_dollars_for_label_and_reformat(published):
    cost = estimate(published)
    assert phase(cost, "label")["api_usd"] == 0  # published labels
    reformat = phase(cost, "reformat")
    assert 80 < reformat["api_usd"] < 130  # the reported ~$100 of GPT-4o-mini
    relabel = published.model_copy(update={"label": published.label.model_copy(update={"from_published": False})})
    assert phase(estimate(relabel), "label")["api_usd"] > 0


def test_bad_inputs_say_what_to_fix(published):
    assert params_of("Qwen/Qwen2.5-7B-Instruct") == 7e9
    with pytest.raises(CostError, match="cost.train_params"):
        params_of("./models/student")
    with pytest.raises(CostError, match="known clouds"):
        estimate(published, cloud="azure")


def test_cli_json_and_table():
    runner = CliRunner()
    res = runner.invoke(cli, ["cost", "--recipe", str(PUBLISHED), "--gpu-hour-price", "2.99", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert {"name", "hours", "gpu_hours", "usd"} <= set(data["phases"][0])
    assert data["total_usd"] == pytest.approx(sum(p["usd"] for p in data["phases"]))
    res = runner.invoke(cli, ["cost", "--recipe", str(PUBLISHED), "--cloud", "lambda"])
    assert res.exit_code == 0 and "train" in res.output and "lambda" in res.output
    res = runner.invoke(cli, ["cost", "--recipe", str(PUBLISHED), "--cloud", "nowhere"])
    assert res.exit_code != 0 and "known clouds" in res.output


def test_prices_from_skypilot_catalog_when_present(tmp_path):
    shutil.copytree(CATALOG, tmp_path / ".sky" / "catalogs" / "v8")
    env = {**os.environ, "HOME": str(tmp_path), "SKY_RUNTIME_DIR": str(tmp_path)}
    code = ("from skyt1.cloud.prices import gpu_offers; import json; "
            "print(json.dumps([[o.cloud, o.usd_per_hour, o.spot_usd_per_hour, o.source] for o in gpu_offers()]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r[:3] for r in rows] == [["aws", 55.04, pytest.approx(11.2543)], ["lambda", 31.92, None]]
    assert all(r[3].startswith("SkyPilot catalog") for r in rows)


def test_jobs_split_the_wall_time_and_add_their_setups(published):
    """distill over 4 jobs: a quarter of the generation per job, each job paying its own setup."""
    one = phase(estimate(published), "distill")
    four_jobs = published.model_copy(deep=True)
    four_jobs.cloud.resources["distill"].num_jobs = 4
    four = phase(estimate(four_jobs), "distill")
    setup = published.cost.setup_hours
    assert four["jobs"] == 4 and four["gpus"] == 4 * one["gpus"]
    assert four["hours"] == pytest.approx(setup + (one["hours"] - setup) / 4)
    assert four["gpu_hours"] == pytest.approx(one["gpu_hours"] + 3 * setup * one["gpus"])
    assert four["usd"] > one["usd"]
