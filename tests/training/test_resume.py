"""Real `skyt1 train` runs (LlamaFactory on CPU, tiny Qwen2) killed like spot preemptions, then resumed."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from skyt1.protocol import PhaseError
from skyt1.training import train
from skyt1.training.checkpoints import TRAINER_STATE

from .conftest import cli_args, hook_env, kill_tree, logged_steps, recipe_for, wait_for


def _losses(run) -> list[dict]:
    return [json.loads(x) for x in run.phase("train").read_text("loss.jsonl").splitlines()]


def test_kill_during_save_and_during_training_then_resume(tiny_model, make_run):
    reference = make_run(name="reference")
    ref_manifest = train.run(recipe_for(tiny_model), reference, progress=False)
    assert ref_manifest["counts"]["steps"] == 10

    run = make_run(name="preempted")
    out = run.local_path("train/checkpoints")

    # 1. SIGKILL while checkpoint-4 is being written: weights and optimizer on disk, no trainer_state.json.
    proc = subprocess.Popen(cli_args(run, tiny_model), env=hook_env(SKYT1_TEST_SLOW_SAVE_STEP="4"))
    wait_for(lambda: (out / "checkpoint-4" / "optimizer.pt").exists(), proc, what="checkpoint-4 to be half-written")
    kill_tree(proc)
    assert not (out / "checkpoint-4" / TRAINER_STATE).exists()

    # 2. Resume: checkpoint-4 is quarantined, training restarts from checkpoint-2; SIGKILL mid-step 8.
    proc = subprocess.Popen(cli_args(run, tiny_model), env=hook_env(SKYT1_TEST_SLOW_TRAIN_STEP="7"))
    wait_for(lambda: 7 in logged_steps(out) and (out / "checkpoint-6" / TRAINER_STATE).exists(), proc,
             what="step 7 and a complete checkpoint-6")
    kill_tree(proc)

    # 3. Resume again and finish.
    done = subprocess.run(cli_args(run, tiny_model), env=hook_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    manifest = run.phase("train").manifest()
    attempts = manifest["attempt_log"]
    assert [a["resumed_from"] for a in attempts] == [None, "checkpoint-2", "checkpoint-6"]
    assert attempts[1]["quarantined"] == [
        {"checkpoint": "checkpoint-4", "reason": "trainer_state.json missing or unreadable (killed during the save)"}
    ]
    reasons = [json.loads(x) for x in run.local_path("train/quarantine/reasons.jsonl").read_text().splitlines()]
    assert [r["path"] for r in reasons] == ["checkpoint-4"]

    # The loss history is unbroken (steps 1..10, each once) and equals the uninterrupted run's: optimizer,
    # scheduler, RNG and data order all came back from the checkpoints.
    losses = _losses(run)
    assert [x["step"] for x in losses] == list(range(1, 11))
    ref = _losses(reference)
    assert [x["loss"] for x in losses] == pytest.approx([x["loss"] for x in ref], rel=1e-4, abs=1e-4)
    assert [x["learning_rate"] for x in losses] == pytest.approx([x["learning_rate"] for x in ref])
    assert manifest["counts"]["steps"] == 10 and manifest["counts"]["attempts"] == 3
    assert manifest["counts"]["tokens_seen"] == ref_manifest["counts"]["tokens_seen"] > 0
    assert manifest["loss_curve"] == [[x["step"], x["loss"]] for x in losses]
    assert (run.local_path("train/final") / "model.safetensors").is_file()

    # Complete with the same inputs: a re-run is a no-op.
    again = train.run(recipe_for(tiny_model), run, progress=False)
    assert again["finished_at"] == manifest["finished_at"]


def test_changed_config_is_refused_and_force_starts_over(tiny_model, make_run, monkeypatch):
    run = make_run()
    monkeypatch.setenv("SKYPILOT_TASK_ID", "sky-2026-11-21-managed-7_skyt1-train_0")
    first = train.run(recipe_for(tiny_model, max_steps=2), run, progress=False)
    assert first["counts"]["steps"] == 2
    frozen = yaml.safe_load(run.local_path("train/frozen_config.yaml").read_text())
    assert frozen["fingerprint"]["train_args"]["max_steps"] == 2
    # W&B / TensorBoard see one run across recoveries: the name comes from SkyPilot's stable task id.
    assert frozen["train_args"]["run_name"] == "sky-2026-11-21-managed-7_skyt1-train_0"

    with pytest.raises(PhaseError, match=r"train.learning_rate: 0.001 -> 0.002\n  train.max_steps: 2 -> 3\n"
                                         r"Continuing would mix the two. Pass --force"):
        train.run(recipe_for(tiny_model, max_steps=3, learning_rate=2e-3), run, progress=False)
    # Another world size cannot load ZeRO shards: an interrupted run resumed on another machine shape is
    # refused as well (one node with 2 GPUs from SkyPilot).
    manifest = run.phase("train").manifest()
    run.phase("train").invalidate()
    monkeypatch.setenv("SKYPILOT_NODE_IPS", "10.0.0.1")
    monkeypatch.setenv("SKYPILOT_NUM_NODES", "1")
    monkeypatch.setenv("SKYPILOT_NODE_RANK", "0")
    monkeypatch.setenv("SKYPILOT_NUM_GPUS_PER_NODE", "2")
    with pytest.raises(train.TrainError, match="world_size: 1 -> 2"):
        train.run(recipe_for(tiny_model, max_steps=2), run, progress=False)
    run.phase("train").write_json("_DONE.json", manifest)
    for var in ("SKYPILOT_NODE_IPS", "SKYPILOT_NUM_NODES", "SKYPILOT_NODE_RANK", "SKYPILOT_NUM_GPUS_PER_NODE"):
        monkeypatch.delenv(var)
    assert run.phase("train").manifest()["counts"]["steps"] == 2  # refusals changed nothing

    redone = train.run(recipe_for(tiny_model, max_steps=3), run, force=True, progress=False)
    assert redone["counts"]["steps"] == 3 and redone["counts"]["attempts"] == 1
    assert [x["step"] for x in _losses(run)] == [1, 2, 3]


def test_missing_or_bad_dataset_says_what_to_do(tiny_model, tmp_path):
    from skyt1.store import RunDir

    from .conftest import write_assembled

    run = RunDir(tmp_path / "empty")
    with pytest.raises(PhaseError, match="run `skyt1 assemble` with the same --run-dir first"):
        train.run(recipe_for(tiny_model), run, progress=False)
    write_assembled(run, [{"system": "s", "conversations": []}])
    with pytest.raises(train.TrainError, match="row 0 has no `conversations`"):
        train.run(recipe_for(tiny_model), run, progress=False)


def test_a_failing_launch_reports_its_log(tiny_model, make_run, tmp_path):
    run = make_run(rows=4)
    with pytest.raises(train.TrainError, match=r"without a finished model(.|\n)*Run the same command again"):
        train.run(recipe_for(tmp_path / "no-such-model"), run, progress=False)
    attempts = sorted(run.local_path("train/attempts").glob("*.json"))
    assert json.loads(attempts[-1].read_text())["exit_code"] != 0
