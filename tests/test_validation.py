"""Values that make no sense are refused before any work, with the field's dotted path in the message; and
the reliability probe's other findings (moved run directories, temporary files, file modes, a hung S3
server, emptied shards) are each handled."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from skyt1.cli import cli
from skyt1.store import RunDir, StoreError, atomic_write, output_dir

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny.yaml"
PUBLISHED = ROOT / "recipes" / "sky-t1-32b-preview.yaml"
DATA = ROOT.parent / "shared" / "data"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


# The reliability probe's table: `skyt1 recipe validate` said OK to every one of these.
@pytest.mark.parametrize("field, value, message", [
    ("eval.limit", -1, "eval.limit: Input should be greater than or equal to 1 (got -1)"),
    ("eval.limit", 0, "eval.limit: Input should be greater than or equal to 1 (got 0)"),
    ("sources.0.count", -5, "sources.0.count: Input should be greater than or equal to 1 (got -5)"),
    ("distill.sampling.n", -2, "distill.sampling.n: Input should be greater than or equal to 1 (got -2)"),
    ("distill.sampling.max_tokens", -5, "distill.sampling.max_tokens: Input should be greater than or equal to 1"),
    ("eval.n.aime24", 0, "eval.n.aime24: Input should be greater than or equal to 1 (got 0)"),
    ("eval.sampling.top_p", 0, "eval.sampling.top_p: Input should be greater than 0 (got 0)"),
    ("train.learning_rate", -1, "train.learning_rate: Input should be greater than 0 (got -1)"),
    ("assemble.mixture.math", -10, "assemble.mixture.math: Input should be greater than or equal to 0 (got -10)"),
    ("eval.benchmarks", ["aime24", "math5000"], "eval.benchmarks: unknown benchmark 'math5000'"),
    ("assemble.decontam_benchmarks", ["aime24", "gpqa_diamnd"], "assemble.decontam_benchmarks: unknown benchmark"),
    ("eval.n", {"aime": 2, "math50": 4}, "eval.n: unknown benchmark 'math50'"),
    ("eval.n", {"gsm8k": 2}, "eval.n: 'gsm8k' is not one of eval.benchmarks"),
    ("eval.limits", {"gsm8k": 2}, "eval.limits: 'gsm8k' is not one of eval.benchmarks"),
    ("eval.limits.aime24", 0, "eval.limits.aime24: Input should be greater than or equal to 1 (got 0)"),
    ("train.save_total_limit", 1, "train.save_total_limit: Input should be greater than or equal to 2"),
    ("sources.0.end", 0, "sources.0.end: Input should be greater than or equal to 1"),
])
def test_nonsense_values_are_refused_naming_the_field(field, value, message, tmp_path):
    res = invoke("recipe", "validate", str(TINY), "--set", f"{field}={json.dumps(value)}")
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output, res.output
    # ... and at the start of every command, before anything is written or generated.
    for cmd in (["distill"], ["eval"], ["reproduce", "--local", "--yes"], ["plan"]):
        res = invoke(*cmd, "--recipe", str(TINY), "--run-dir", str(tmp_path / "run"), "--set",
                     f"{field}={json.dumps(value)}")
        assert res.exit_code == 1 and message in res.output, (cmd, res.output)
    assert not (tmp_path / "run").exists()


def test_the_cost_step_of_reproduce_never_sees_a_typo():
    res = invoke("reproduce", "--recipe", str(PUBLISHED), "--set", "eval.benchmarks=[aime24, gpqa_diamnod]",
                 "--bucket", "b", "--yes")
    assert res.exit_code == 1 and "eval.benchmarks: unknown benchmark 'gpqa_diamnod'" in res.output


@pytest.mark.parametrize("args, option", [
    (["eval", "--benchmarks", "aime", "--model", "m", "--top-p", "0"], "--top-p"),
    (["eval", "--benchmarks", "aime", "--model", "m", "--temperature", "-1"], "--temperature"),
    (["eval", "--benchmarks", "aime", "--model", "m", "--seed", "-3"], "--seed"),
    (["score", "--scorer", "math", "--input", __file__, "--output", "/tmp/x.jsonl", "--timeout", "-1"], "--timeout"),
    (["score", "--scorer", "math", "--input", __file__, "--output", "/tmp/x.jsonl", "--workers", "0"], "--workers"),
    (["cost", "--recipe", str(PUBLISHED), "--gpu-hour-price", "-5"], "--gpu-hour-price"),
    (["serve", "--model", "m", "--port", "70000"], "--port"),
    (["distill", "--recipe", str(TINY), "--run-dir", "r", "--shard", "3/2"], "--shard"),
])
def test_nonsense_flags_are_refused_naming_the_flag(args, option):
    res = invoke(*args)
    assert res.exit_code in (1, 2) and option in res.output and "Traceback" not in res.output, res.output


def test_cost_total_is_never_negative():
    res = invoke("cost", "--recipe", str(PUBLISHED), "--gpu-hour-price", "0.5", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["total_usd"] > 0


def test_an_eval_folder_that_was_moved_resumes(tmp_path, tiny_model):
    """The absolute model path used to be part of the configuration key: a copied or moved run was refused."""
    first = tmp_path / "a"
    shutil.copytree(tiny_model, first / "model")
    args = ["eval", "--benchmarks", "aime24", "--backend", "hf", "--dtype", "float32", "--max-tokens", "4", "-q",
            "--data-dir", str(DATA)]
    res = invoke(*args, "--model", str(first / "model"), "--limit", "1", "--output-dir", str(first / "out"))
    assert res.exit_code == 0, res.output
    moved = tmp_path / "b"
    first.rename(moved)
    res = invoke(*args, "--model", str(moved / "model"), "--limit", "2", "--output-dir", str(moved / "out"))
    assert res.exit_code == 0, res.output
    assert len(list(output_dir(moved / "out").records("aime24"))) == 2
    config = json.loads((moved / "out" / "aime24" / "config.json").read_text())
    assert config["engine"]["model_fingerprint"]


def test_leftovers_of_killed_writes_are_removed(tmp_path):
    from skyt1.store import _HOST

    ph = RunDir(tmp_path / "run").phase("distill")
    ph.write_json("x.json", {})
    folder = tmp_path / "run" / "distill"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    leftovers = [folder / f".tmp-{_HOST}-{dead_pid}-abc", folder / "records" / f".tmp-{_HOST}-{dead_pid}-def"]
    live = folder / f".tmp-{_HOST}-{os.getpid()}-ghi"  # a write of this (live) process
    other = folder / ".tmp-othernode-77-jkl"  # another host's: only once it is old
    for p in (*leftovers, live, other):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("partial")
    assert sorted(Path(p).name for p in ph.sweep()) == sorted(p.name for p in leftovers)
    assert live.exists() and other.exists()
    os.utime(other, (time.time() - 7200, time.time() - 7200))
    assert [Path(p).name for p in ph.sweep()] == [other.name]


def test_written_files_get_the_mode_of_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", "{}")
        RunDir(tmp_path / "run").phase("report").write_text("report.html", "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run" / "report" / "report.html").stat().st_mode) == 0o644


def test_a_hung_s3_server_shows_each_retry_and_gives_up_within_the_budget(s3_bucket, fault_proxy, monkeypatch, caplog):
    monkeypatch.setenv("SKYT1_S3_TIMEOUT_S", "0.5")
    monkeypatch.setenv("SKYT1_S3_RETRY_BUDGET_S", "3")
    proxy = fault_proxy(modes=("hang",), always=True)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="skyt1.store"):
        with pytest.raises(StoreError, match=r"S3 put_object run/distill/x.json failed after \d attempts in \d s: "
                                             r"ReadTimeoutError"):
            RunDir(s3_bucket).phase("distill").write_json("x.json", {})
    took = time.monotonic() - t0
    assert took < 8, took  # not 8 attempts x 60 s
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries and "attempt 1/8 failed (ReadTimeoutError" in retries[0]
    assert proxy.injected.count("hang") >= 2


def test_an_emptied_shard_with_an_intact_sidecar_is_not_trusted(tmp_path):
    from skyt1.curation import distill
    from skyt1.engines.server import start_server
    from skyt1.recipe import load_recipe

    from .curation.conftest import ScriptedEngine, base_recipe
    from .curation.test_phases import teacher_reply

    with start_server(ScriptedEngine(teacher_reply)) as server:
        d = base_recipe()
        d["distill"]["engine"] = {"backend": "openai", "model": "scripted", "base_url": server.url}
        d["distill"]["flush_every"] = 8
        (tmp_path / "r.yaml").write_text(yaml.safe_dump(d))
        recipe = load_recipe(tmp_path / "r.yaml")
        run = RunDir(tmp_path / "run")
        distill.run(recipe, run)
        ph = run.phase("distill")
        ph.invalidate()  # as if the run had not finished yet
        shard = sorted((tmp_path / "run" / "distill" / "records").glob("part-*.jsonl"))[0]
        lost = {json.loads(line)["id"] for line in shard.read_text().splitlines()}
        shard.write_text("")  # emptied by hand; its .ids sidecar still lists 8 ids
        assert not lost & ph.ids() and len(ph.ids()) == 24
        manifest = distill.run(recipe, run)  # the lost samples are generated again
    assert manifest["counts"]["out"] == 32 == len(list(ph.records())) and lost <= ph.ids()
