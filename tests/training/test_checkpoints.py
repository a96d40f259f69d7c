"""Which checkpoints are complete; quarantine of the rest (layouts as the HF Trainer / DeepSpeed write them)."""

from __future__ import annotations

import json
from pathlib import Path

from skyt1.training import checkpoints as ck


def _hf(out: Path, step: int, *, state=True, optimizer=True, sharded=False, missing_shard=False) -> Path:
    d = out / f"checkpoint-{step}"
    d.mkdir(parents=True)
    if sharded:
        (d / "model.safetensors.index.json").write_text(json.dumps(
            {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
        (d / "model-00001-of-00002.safetensors").write_bytes(b"x")
        if not missing_shard:
            (d / "model-00002-of-00002.safetensors").write_bytes(b"x")
    else:
        (d / "model.safetensors").write_bytes(b"x")
    if optimizer:
        (d / "optimizer.pt").write_bytes(b"x")
    (d / "scheduler.pt").write_bytes(b"x")
    if state:
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return d


def _zero(out: Path, step: int, ranks: int, *, latest=True) -> Path:
    d = out / f"checkpoint-{step}"
    (d / f"global_step{step}").mkdir(parents=True)
    for r in range(ranks):
        (d / f"global_step{step}" / f"zero_pp_rank_{r}_mp_rank_00_model_states.pt").write_bytes(b"x")
        (d / f"global_step{step}" / f"bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt").write_bytes(b"x")
    if latest:
        (d / "latest").write_text(f"global_step{step}")
    (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return d


def _problem(d: Path, **kw) -> str | None:
    return ck.problem(ck.Checkpoint(d, int(d.name.split("-")[1])), **{"deepspeed": False, "world_size": 1, **kw})


def test_plain_checkpoint_completeness(tmp_path):
    assert _problem(_hf(tmp_path, 2)) is None
    assert _problem(_hf(tmp_path, 4, sharded=True)) is None
    assert "trainer_state.json missing" in _problem(_hf(tmp_path, 6, state=False))
    assert _problem(_hf(tmp_path, 8, optimizer=False)) == "optimizer.pt missing"
    assert "model-00002-of-00002" in _problem(_hf(tmp_path, 10, sharded=True, missing_shard=True))
    torn = _hf(tmp_path, 12)
    (torn / "trainer_state.json").write_text('{"global_step": 1')  # cut mid-write
    assert "unreadable" in _problem(torn)
    renamed = _hf(tmp_path, 14)
    (renamed / "trainer_state.json").write_text(json.dumps({"global_step": 13}))
    assert "says step 13" in _problem(renamed)


def test_zero_checkpoint_completeness(tmp_path):
    assert _problem(_zero(tmp_path, 2, ranks=8), deepspeed=True, world_size=8) is None
    assert "4 of 8 ranks" in _problem(_zero(tmp_path, 4, ranks=4), deepspeed=True, world_size=8)
    assert "`latest` tag file missing" in _problem(_zero(tmp_path, 6, ranks=8, latest=False), deepspeed=True, world_size=8)
    wrong_tag = _zero(tmp_path, 8, ranks=8)
    (wrong_tag / "latest").write_text("global_step9")
    assert "'global_step9'" in _problem(wrong_tag, deepspeed=True, world_size=8)


def test_sweep_quarantines_incomplete_and_returns_newest_complete(tmp_path):
    out, q = tmp_path / "checkpoints", tmp_path / "quarantine"
    _hf(out, 2)
    _hf(out, 10)
    _hf(out, 12, state=False)
    (out / "checkpoint-x").mkdir()  # not a checkpoint name: left alone
    newest, moved = ck.sweep(out, q, deepspeed=False, world_size=1)
    assert newest.step == 10
    assert moved == [{"checkpoint": "checkpoint-12",
                      "reason": "trainer_state.json missing or unreadable (killed during the save)"}]
    assert [c.step for c in ck.list_checkpoints(out)] == [2, 10] and (out / "checkpoint-x").is_dir()
    reasons = [json.loads(x) for x in (q / "reasons.jsonl").read_text().splitlines()]
    assert reasons[0]["path"] == "checkpoint-12" and (q / reasons[0]["moved_to"] / "optimizer.pt").is_file()


def test_stray_final_weights_are_moved_aside(tmp_path):
    out, q = tmp_path / "checkpoints", tmp_path / "quarantine"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"half")
    (out / "trainer_log.jsonl").write_text("")
    assert ck.quarantine_stray_weights(out, q) == [{"checkpoint": "final model files", "reason": "unfinished final save"}]
    assert sorted(p.name for p in out.iterdir()) == ["trainer_log.jsonl"]
    assert ck.quarantine_stray_weights(out, q) == []


def test_tokenized_cache_cut_mid_save_is_detected(tmp_path):
    from datasets import Dataset, DatasetDict

    from skyt1.training.train import _tokenized_ok

    path = tmp_path / "tokenized"
    DatasetDict({"train": Dataset.from_dict({"input_ids": [[1, 2, 3]] * 4})}).save_to_disk(str(path))
    assert _tokenized_ok(path)
    (path / "train" / "state.json").unlink()  # save_to_disk writes it last
    assert not _tokenized_ok(path)


def test_newest_complete_agrees_with_sweep_without_moving(tmp_path):
    out = tmp_path / "checkpoints"
    _zero(out, 2, ranks=2)
    _zero(out, 4, ranks=1)  # a rank's shard never arrived
    assert ck.newest_complete(out, deepspeed=True, world_size=2).step == 2
    assert [c.step for c in ck.list_checkpoints(out)] == [2, 4]
    newest, moved = ck.sweep(out, tmp_path / "q", deepspeed=True, world_size=2)
    assert newest.step == 2 and [m["checkpoint"] for m in moved] == ["checkpoint-4"]
