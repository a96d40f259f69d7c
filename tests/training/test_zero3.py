"""DeepSpeed ZeRO-3 with CPU offload (the published setting) on CPU through torchrun: train, preempt, resume.

Slow: DeepSpeed compiles its CPU ops on first use (about 5 minutes on a fresh 2-core machine; ~35 s per
attempt afterwards)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from skyt1.training import checkpoints as ck

from .conftest import cli_args, hook_env, kill_tree, logged_steps, wait_for

pytestmark = pytest.mark.slow


def test_zero3_offload_trains_and_resumes_on_cpu(tiny_model, make_run, tmp_path):
    run = make_run(rows=24)
    out = run.local_path("train/checkpoints")
    args = cli_args(run, tiny_model, deepspeed="zero3_offload", max_steps=4)

    proc = subprocess.Popen(args, env=hook_env(SKYT1_TEST_SLOW_TRAIN_STEP="3"))
    wait_for(lambda: 3 in logged_steps(out) and (out / "checkpoint-2" / ck.TRAINER_STATE).exists(), proc,
             timeout=900, what="step 3 under ZeRO-3")
    kill_tree(proc)

    done = subprocess.run(args, env=hook_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = run.phase("train").manifest()
    assert [a["resumed_from"] for a in manifest["attempt_log"]] == [None, "checkpoint-2"]
    assert [step for step, _ in manifest["loss_curve"]] == [1, 2, 3, 4]
    assert manifest["config"]["fingerprint"]["deepspeed"]["zero_optimization"]["offload_param"]["device"] == "cpu"

    # Real ZeRO checkpoints pass the completeness check; one missing optimizer shard fails it.
    newest = ck.list_checkpoints(out)[-1]
    assert ck.problem(newest, deepspeed=True, world_size=1) is None
    broken = tmp_path / "checkpoint-4"
    shutil.copytree(newest.path, broken)
    for shard in broken.glob("global_step*/*optim_states.pt"):
        shard.unlink()
    assert "0 of 1 ranks" in ck.problem(ck.Checkpoint(broken, 4), deepspeed=True, world_size=1)

    # The final model is ordinary HF weights (gathered from the ZeRO-3 shards).
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(run.local_path("train/final"))
