"""`skyt1 eval` end to end on a tiny model: hf backend, the OpenAI backend against a faulty loopback server,
resume after SIGKILL, --rescore, configuration checks, and the pipeline's eval phase."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from skyt1.cli import cli
from skyt1.store import output_dir

COMMON = ["--benchmarks", "aime,math500", "--dtype", "float32", "--max-tokens", "16", "-q"]


def _eval(*args) -> object:
    result = CliRunner().invoke(cli, ["eval", *args], catch_exceptions=False)
    return result


def _samples(out: Path, bench: str) -> list[dict]:
    return [json.loads(line) for line in (out / bench / "samples.jsonl").read_text().splitlines()]


def _by_id(out: Path, bench: str) -> dict[str, str]:
    rows = _samples(out, bench)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicated samples"
    return {r["id"]: r["response"] for r in rows}


@pytest.fixture(scope="module")
def hf_run(tiny_model, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "out"
    args = [*COMMON, "--model", str(tiny_model), "--backend", "hf", "--n", "2", "--limit", "3",
            "--data-dir", str(data_dir), "--output-dir", str(out)]
    result = _eval(*args)
    assert result.exit_code == 0, result.output
    return out, args, result.output


def test_hf_backend_writes_samples_and_summaries(hf_run, tiny_model):
    out, _, printed = hf_run
    for bench, first in (("aime24", "aime24/60"), ("math500", "math500/test/precalculus/807.json")):
        rows = _samples(out, bench)
        assert len(rows) == 6
        assert {f"{first}#0", f"{first}#1"} <= {r["id"] for r in rows}
        for r in rows:
            assert r["id"] == f"{r['problem_id']}#{r['sample_index']}"
            assert r["finish_reason"] in ("stop", "length")
            assert r["completion_tokens"] <= 16 and r["prompt_tokens"] > 0
            assert set(r) >= {"response", "correct", "extracted", "status"}
            assert r["status"] and isinstance(r["correct"], bool)
        s = json.loads((out / bench / "summary.json").read_text())
        assert s["complete"] and s["scores"]["samples"] == 6 and s["scores"]["problems"] == 3
        assert set(s["scores"]["pass_at_k"]) == {"pass@1", "pass@2"}
        cfg = s["config"]
        assert cfg["engine"]["backend"] == "hf" and str(tiny_model) in json.dumps(cfg["engine"])
        assert cfg["sampling"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 16, "seed": 0, "n": 2,
                                   "per_request_seed": "seed + sample_index"}
        assert cfg["prompt"]["templates"] == {"skyt1/math": cfg["prompt"]["templates"]["skyt1/math"]}
        assert cfg["dataset"]["source"] == "local" and cfg["dataset"]["fingerprint"]
        assert cfg["skyt1_version"] and "skyt1" in cfg["versions"]
    overall = json.loads((out / "summary.json").read_text())
    assert set(overall["benchmarks"]) == {"aime24", "math500"} and overall["complete"]
    assert "| aime24 | 2 | 3 |" in (out / "summary.md").read_text()
    assert "| aime24 | 2 | 3 |" in printed


def test_rerun_resumes_without_generating_and_rescore_restores(hf_run):
    out, args, _ = hf_run
    before = (out / "aime24" / "samples.jsonl").read_bytes()
    assert _eval(*args).exit_code == 0
    assert (out / "aime24" / "samples.jsonl").read_bytes() == before  # nothing regenerated or duplicated
    rows = _samples(out, "aime24")
    truth = {r["id"]: (r["correct"], r["status"]) for r in rows}
    for shard in (out / "aime24").glob("part-*.jsonl"):  # what the verdicts of an older scorer look like
        tampered = [{**json.loads(line), "correct": True, "status": "tampered"} for line in shard.read_text().splitlines()]
        shard.write_text("".join(json.dumps(r) + "\n" for r in tampered))
    assert {r["status"] for r in output_dir(out).records("aime24")} == {"tampered"}
    result = _eval("--rescore", "--benchmarks", "aime", "--n", "2", "--limit", "3", "--output-dir", str(out),
                   "--data-dir", args[args.index("--data-dir") + 1], "-q")
    assert result.exit_code == 0, result.output
    assert {r["id"]: (r["correct"], r["status"]) for r in _samples(out, "aime24")} == truth
    assert {r["id"]: (r["correct"], r["status"]) for r in output_dir(out).records("aime24")} == truth


def test_other_configuration_in_same_output_dir_is_refused(hf_run):
    out, args, _ = hf_run
    result = CliRunner().invoke(cli, ["eval", *args, "--seed", "7"])
    assert result.exit_code != 0
    assert "holds samples from another configuration (differs in: sampling)" in result.output


def test_openai_backend_with_429_and_500_faults_matches_hf(hf_run, tiny_model):
    from skyt1.engines import make_engine
    from skyt1.engines.server import FaultPlan, start_server
    from skyt1.recipe import Engine as EngineConfig

    hf_out, args, _ = hf_run
    out = hf_out.parent / "openai"
    engine = make_engine(EngineConfig(backend="hf", model=str(tiny_model), dtype="float32"))
    faults = FaultPlan(fail_rate=0.35, statuses=(429, 500), retry_after_s=0.05, seed=3)
    with engine, start_server(engine, port=0, faults=faults) as server:
        openai_args = [a if a != str(hf_out) else str(out) for a in args]
        openai_args[openai_args.index("hf")] = "openai"
        result = _eval(*openai_args, "--base-url", server.url, "--concurrency", "4")
        statuses = [e["status"] for e in server.log]
    assert result.exit_code == 0, result.output
    assert 429 in statuses and 500 in statuses  # faults were served and retried through
    for bench in ("aime24", "math500"):
        assert _by_id(out, bench) == _by_id(hf_out, bench)  # same seeds, same samples
        engine = json.loads((out / bench / "summary.json").read_text())["config"]["engine"]
        assert engine["backend"] == "openai" and engine["num_api_keys"] == 1  # a count, not a secret


def test_requests_failing_after_retries_are_left_for_the_next_run(tiny_model, data_dir, tmp_path):
    from skyt1.data.benchmarks import load_tasks
    from skyt1.engines import make_engine
    from skyt1.engines.openai import OpenAIEngine
    from skyt1.engines.server import FaultPlan, start_server
    from skyt1.evaluation.runner import Sampling, evaluate
    from skyt1.recipe import Engine as EngineConfig

    tasks, _ = load_tasks(["aime24"], data_dir=data_dir, limit=2)
    doomed = "Every morning Aya"  # problem aime24/60 always fails
    sampling = Sampling(max_tokens=8)
    engine = make_engine(EngineConfig(backend="hf", model=str(tiny_model), dtype="float32"))
    with engine, start_server(engine, faults=FaultPlan(fail_matching=doomed, statuses=(500,))) as bad:
        client = OpenAIEngine("tiny", base_url=bad.url, api_keys=["EMPTY"], max_retries=1, backoff_base_s=0.01)
        summary = evaluate(client, tasks, output_dir=tmp_path, n=2, sampling=sampling, progress=False)
    assert not summary["complete"] and summary["benchmarks"]["aime24"]["missing_samples"] == 2
    assert {r["problem_id"] for r in _samples(tmp_path, "aime24")} == {"aime24/61"}
    detail = json.loads((tmp_path / "aime24" / "summary.json").read_text())
    assert set(detail["generation_errors"]) == {"aime24/60#0", "aime24/60#1"}
    with engine, start_server(engine) as good:
        client = OpenAIEngine("tiny", base_url=good.url, api_keys=["EMPTY"], max_retries=1, backoff_base_s=0.01)
        summary = evaluate(client, tasks, output_dir=tmp_path, n=2, sampling=sampling, progress=False)
    assert summary["complete"] and len(_by_id(tmp_path, "aime24")) == 4


def _skyt1() -> str:
    return str(Path(sys.executable).parent / "skyt1")


def test_sigkill_mid_run_then_resume_equals_uninterrupted_run(tiny_model, data_dir, tmp_path):
    from skyt1.engines import make_engine
    from skyt1.engines.server import FaultPlan, start_server
    from skyt1.recipe import Engine as EngineConfig

    # The killed run talks to a loopback server that answers one request at a time, each 0.4 s late, so
    # the kill always lands with part of the 16 samples written (they reach the store every 2 s), however
    # fast the machine is.
    engine = make_engine(EngineConfig(backend="hf", model=str(tiny_model), dtype="float32"))
    with engine, start_server(engine, faults=FaultPlan(slow_rate=1.0, delay_s=0.4)) as server:
        args = ["eval", "--benchmarks", "aime,math500", "--model", "tiny", "--backend", "openai",
                "--base-url", server.url, "--concurrency", "1", "--n", "2", "--limit", "4", "--max-tokens", "24",
                "--data-dir", str(data_dir), "-q", "--scoring-workers", "1"]
        killed, clean = tmp_path / "killed", tmp_path / "clean"
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        def written() -> int:
            return sum(len(output_dir(killed).ids(bench)) for bench in ("aime24", "math500"))

        proc = subprocess.Popen([_skyt1(), *args, "--output-dir", str(killed)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and written() < 2:
            time.sleep(0.02)
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert 2 <= written() < 16
        leftover = killed / "aime24" / f".tmp-{socket.gethostname().replace('-', '_')}-{proc.pid}-x"
        leftover.write_text('{"id": "aime24/63#1", "response": "cut sh')  # what a kill in a write leaves
        resumed = subprocess.run([_skyt1(), *args, "--output-dir", str(killed)], env=env, capture_output=True,
                                 text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "resuming:" in resumed.stderr and not leftover.exists()
        result = _eval(*args[1:], "--output-dir", str(clean))
        assert result.exit_code == 0, result.output
    for bench in ("aime24", "math500"):
        got, want = _by_id(killed, bench), _by_id(clean, bench)
        assert len(want) == 8
        assert got == want


def test_eval_phase_uses_the_trained_model(tiny_model, data_dir, tmp_path):
    from skyt1.evaluation import phase
    from skyt1.protocol import PhaseError
    from skyt1.recipe import load_recipe
    from skyt1.store import RunDir

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "tiny.yaml",
                         {"eval.data_dir": str(data_dir), "eval.limit": 2, "eval.sampling.max_tokens": 8})
    run = RunDir(tmp_path / "run")
    with pytest.raises(PhaseError, match="train is not complete: run `skyt1 train` with the same --run-dir first"):
        phase.run(recipe, run, progress=False)
    shutil.copytree(tiny_model, tmp_path / "run" / "train" / "final")
    run.phase("train").write_manifest(recipe_digest="x", inputs={}, counts={}, started_at=time.time(),
                                      outputs={"final": "abc"})
    manifest = phase.run(recipe, run, progress=False)
    assert manifest["counts"]["aime24"]["samples"] == 4 and manifest["counts"]["math500"]["samples"] == 4
    assert manifest["counts"]["demo_math"]["samples"] == 4
    assert set(manifest["outputs"]) == {"demo_math", "aime24", "math500"}
    s = json.loads((tmp_path / "run" / "eval" / "aime24" / "summary.json").read_text())
    assert s["config"]["prompt"]["system_prompt_digest"]  # the Sky-T1 system prompt for the trained model
    again = phase.run(recipe, run, progress=False)
    assert again["finished_at"] == manifest["finished_at"]  # complete: skipped
