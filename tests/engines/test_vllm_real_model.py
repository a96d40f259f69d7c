"""`skyt1 distill` and `skyt1 eval` with `backend: vllm` on a real instruct model (SmolLM2-135M-Instruct, built
offline from its PyPI wheel), against vLLM's own server on this CPU: what the tiny random model cannot show,
that the served model reads the prompts it is sent and answers them (a random model scores zero)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from skyt1.demo_model import DemoModelError, build_demo_model
from skyt1.store import RunDir, jsonl_lines

from .procs import REPO, SKYT1, skyt1_env

SYSTEM = "You are a helpful assistant. Think step by step."


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    try:
        return build_demo_model(tmp_path_factory.mktemp("smollm2") / "model")
    except DemoModelError as e:  # the wheel (or gguf) is missing: `make install` has both
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the real model: {e}")
        pytest.skip(str(e))


def _run(args: list[str], vllm_python: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SKYT1, *args], cwd=REPO, env=skyt1_env(vllm_python), capture_output=True, text=True,
                          timeout=900)


def test_distill_then_eval_on_a_real_model(vllm_python, smollm2, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "vllm-real",
        "sources": [{"name": "demo_arith", "dataset": "demo", "domain": "math", "subset": "arith", "count": 12}],
        "distill": {"engine": {"backend": "vllm", "model": str(smollm2), "dtype": "bfloat16", "max_model_len": 2048},
                    "sampling": {"temperature": 0.8, "top_p": 0.95, "max_tokens": 160, "n": 2, "seed": 0},
                    "system_prompt": SYSTEM, "sources": ["demo_arith"]},
    }))
    distilled = _run(["distill", "--recipe", str(recipe), "--run-dir", str(tmp_path / "run")], vllm_python)
    assert distilled.returncode == 0, distilled.stderr[-3000:]
    phase = RunDir(str(tmp_path / "run")).phase("distill")
    records = list(phase.records())
    assert len(records) == 24 and {r["sample_index"] for r in records} == {0, 1}
    # A real model writes text about the problem: the numbers it was given come back in most traces.
    echoed = sum(any(tok in r["response"] for tok in r["question"].split() if tok.isdigit()) for r in records)
    assert echoed >= 8, [r["response"][:200] for r in records[:4]]
    info = phase.manifest()["config"]["engine_info"]
    assert info["backend"] == "vllm" and info["per_request_seed"] is False

    out = tmp_path / "eval"
    evaluated = _run(["eval", "--backend", "vllm", "--model", str(smollm2), "--dtype", "bfloat16",
                      "--max-model-len", "2048", "-b", "demo_arith", "--limit", "24", "--temperature", "0",
                      "--max-tokens", "192", "--system-prompt", SYSTEM, "-o", str(out), "--quiet"], vllm_python)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    scores = summary["benchmarks"]["demo_arith"]["scores"]
    assert summary["complete"] and scores["samples"] == 24
    # SmolLM2-135M-Instruct gets about a quarter of these right (base model, report of `make demo`); the tiny
    # random model gets none. Greedy decoding on fixed problems: the count is stable for the pinned versions.
    assert 0 < scores["accuracy"] < 0.8, scores
    assert scores["finish_reasons"].get("stop", 0) >= 12, scores["finish_reasons"]
    rows = [json.loads(x) for x in jsonl_lines((out / "demo_arith" / "samples.jsonl").read_text()) if x.strip()]
    assert all(r["prompt_tokens"] > 20 for r in rows)  # the server counted the chat prompt it was sent
