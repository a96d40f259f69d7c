"""Rendering recipe.train into LlamaFactory's YAML, dataset_info.json and the DeepSpeed JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from skyt1.phases import diff
from skyt1.recipe import TrainConfig, load_recipe
from skyt1.training import config

REPO = Path(__file__).resolve().parents[2]


def _paths(ds: bool = True) -> config.Paths:
    return config.Paths(model="Qwen/Qwen2.5-32B-Instruct", dataset_dir=Path("/r/train/data"),
                        output_dir=Path("/r/train/checkpoints"), tokenized_path=Path("/r/train/tokenized"),
                        deepspeed_json=Path("/r/train/deepspeed.json") if ds else None)


def test_published_recipe_renders_every_sky_t1_hyperparameter():
    r = load_recipe(REPO / "recipes" / "sky-t1-32b-preview.yaml")
    cfg = config.render(r.train, _paths(), dataset="skyt1_sft", run_name="sky-t1")
    assert cfg == {
        "model_name_or_path": "Qwen/Qwen2.5-32B-Instruct", "trust_remote_code": False,
        "stage": "sft", "do_train": True, "finetuning_type": "full",
        "dataset": "skyt1_sft", "dataset_dir": "/r/train/data", "template": "qwen25", "cutoff_len": 16384,
        "preprocessing_num_workers": 16, "tokenized_path": "/r/train/tokenized",
        "output_dir": "/r/train/checkpoints", "logging_steps": 1, "save_steps": 100, "save_total_limit": 2,
        "save_only_model": False, "plot_loss": True, "report_to": "none", "run_name": "sky-t1",
        "include_num_input_tokens_seen": True,
        "per_device_train_batch_size": 1, "gradient_accumulation_steps": 12, "learning_rate": 1e-5,
        "num_train_epochs": 3.0, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "bf16": True, "seed": 42,
        "ddp_timeout": 180000000, "deepspeed": "/r/train/deepspeed.json",
    }
    assert "max_steps" not in cfg  # epochs decide, as published


def test_deepspeed_modes():
    off = config.deepspeed_config("zero3_offload")["zero_optimization"]
    assert off["stage"] == 3 and off["offload_optimizer"]["device"] == "cpu" and off["offload_param"]["device"] == "cpu"
    assert off["stage3_gather_16bit_weights_on_model_save"] is True
    z3 = config.deepspeed_config("zero3")["zero_optimization"]
    assert z3["stage"] == 3 and "offload_optimizer" not in z3 and "offload_param" not in z3
    assert config.deepspeed_config("zero2")["zero_optimization"]["stage"] == 2
    assert config.deepspeed_config("none") is None
    assert config.deepspeed_config("zero3")["bf16"] == {"enabled": "auto"}
    with pytest.raises(config.TrainConfigError, match="unknown deepspeed mode"):
        config.deepspeed_config("zero4")


def test_dataset_info_matches_assembled_sharegpt():
    info = config.dataset_info("skyt1_sft", "/r/assemble/train.json")
    assert info == {"skyt1_sft": {
        "file_name": "/r/assemble/train.json", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"},
    }}


def test_unsafe_settings_are_refused():
    with pytest.raises(ValidationError, match="save_total_limit\n  Input should be greater than or equal to 2"):
        TrainConfig(save_total_limit=1)  # a preemption during a save can leave the newest one incomplete
    for key in ("save_only_model", "output_dir", "resume_from_checkpoint"):
        with pytest.raises(config.TrainConfigError, match=f"may not set \\['{key}'\\]"):
            config.render(TrainConfig(extra={key: True}), _paths(), dataset="d", run_name="n")
    cfg = config.render(TrainConfig(extra={"gradient_checkpointing": True}, max_steps=5), _paths(False),
                        dataset="d", run_name="n")
    assert cfg["gradient_checkpointing"] is True and cfg["max_steps"] == 5 and "deepspeed" not in cfg


def test_fingerprint_ignores_places_and_diff_names_changes():
    a = config.render(TrainConfig(), _paths(), dataset="d", run_name="one")
    moved = config.Paths(model=a["model_name_or_path"], dataset_dir=Path("/mnt/x/data"),
                         output_dir=Path("/mnt/x/ck"), tokenized_path=Path("/mnt/x/tok"), deepspeed_json=Path("/mnt/ds"))
    b = config.render(TrainConfig(report_to="wandb"), moved, dataset="d", run_name="two")
    ds = config.deepspeed_config("zero3_offload")
    fa = config.fingerprint(a, ds, data_digest="abc", world_size=8)
    assert fa == config.fingerprint(b, ds, data_digest="abc", world_size=8)
    c = config.render(TrainConfig(max_steps=7), _paths(), dataset="d", run_name="one")
    fc = config.fingerprint(c, config.deepspeed_config("zero3"), data_digest="def", world_size=16)
    changes = diff(fa, fc)
    assert "train_args.max_steps: '<unset>' -> 7" in changes
    assert "data: 'abc' -> 'def'" in changes and "world_size: 8 -> 16" in changes
    assert any(line.startswith("deepspeed.zero_optimization.offload_param") for line in changes)
