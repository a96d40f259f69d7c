"""Render recipe.train into what LlamaFactory reads: the training YAML, dataset_info.json, the DeepSpeed JSON.

Every Sky-T1 hyperparameter is written out explicitly (nothing left to LlamaFactory's defaults), so the
frozen copy of a run's config says exactly what was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyt1.recipe import TrainConfig

# The DeepSpeed configs LlamaFactory ships (examples/deepspeed/), which the published run used; "auto"
# values are filled by the HF Trainer from the training arguments.
_DS_COMMON: dict[str, Any] = {
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "zero_allow_untested_optimizer": True,
    "fp16": {
        "enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
        "hysteresis": 2, "min_loss_scale": 1,
    },
    "bf16": {"enabled": "auto"},
}
_ZERO3: dict[str, Any] = {
    "stage": 3,
    "overlap_comm": False,
    "contiguous_gradients": True,
    "sub_group_size": 1e9,
    "reduce_bucket_size": "auto",
    "stage3_prefetch_bucket_size": "auto",
    "stage3_param_persistence_threshold": "auto",
    "stage3_max_live_parameters": 1e9,
    "stage3_max_reuse_distance": 1e9,
    # The final model is saved as ordinary HF weights, not only as ZeRO shards.
    "stage3_gather_16bit_weights_on_model_save": True,
}
_ZERO2: dict[str, Any] = {
    "stage": 2,
    "allgather_partitions": True,
    "allgather_bucket_size": 5e8,
    "overlap_comm": False,
    "reduce_scatter": True,
    "reduce_bucket_size": 5e8,
    "contiguous_gradients": True,
    "round_robin_gradients": True,
}

# LlamaFactory's keys that name places, not training math: they may differ between attempts of one run
# (another mount point, another W&B project) without changing what is trained.
PLACE_KEYS = frozenset({"output_dir", "dataset_dir", "tokenized_path", "deepspeed", "run_name", "report_to",
                        "logging_dir", "resume_from_checkpoint", "preprocessing_num_workers"})
# Keys skyt1 owns; `train.extra` may not override them (they are what makes a run resumable).
_PROTECTED = frozenset({"output_dir", "overwrite_output_dir", "save_only_model", "resume_from_checkpoint",
                        "tokenized_path", "dataset", "dataset_dir", "deepspeed"})


class TrainConfigError(ValueError):
    """A training configuration that would train something other than what the recipe says, or lose work."""


def deepspeed_config(kind: str) -> dict[str, Any] | None:
    """The DeepSpeed JSON for recipe.train.deepspeed; None for plain (DDP / single process) training."""
    if kind == "none":
        return None
    if kind == "zero2":
        return {**_DS_COMMON, "zero_optimization": dict(_ZERO2)}
    zero = dict(_ZERO3)
    if kind == "zero3_offload":
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    elif kind != "zero3":
        raise TrainConfigError(f"unknown deepspeed mode {kind!r}; use zero3_offload, zero3, zero2 or none")
    return {**_DS_COMMON, "zero_optimization": zero}


def dataset_info(dataset_name: str, file_name: str = "train.json") -> dict[str, Any]:
    """LlamaFactory's registration of the assembled ShareGPT file."""
    return {
        dataset_name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "user", "assistant_tag": "assistant"},
        }
    }


@dataclass(frozen=True)
class Paths:
    """Where one run's training reads and writes (all local: a run dir or a mounted bucket)."""

    model: str  # hub id or local directory
    dataset_dir: Path
    output_dir: Path
    tokenized_path: Path
    deepspeed_json: Path | None


def render(train: TrainConfig, paths: Paths, *, dataset: str, run_name: str) -> dict[str, Any]:
    """The LlamaFactory training arguments (the YAML) for this recipe."""
    bad = sorted(_PROTECTED & set(train.extra))
    if bad:
        raise TrainConfigError(f"train.extra may not set {bad}: skyt1 manages them to keep runs resumable")
    cfg: dict[str, Any] = {
        # model
        "model_name_or_path": paths.model,
        "trust_remote_code": False,
        # method
        "stage": "sft",
        "do_train": True,
        "finetuning_type": train.finetuning_type,
        # dataset
        "dataset": dataset,
        "dataset_dir": str(paths.dataset_dir),
        "template": train.template,
        "cutoff_len": train.cutoff_len,
        "preprocessing_num_workers": train.preprocessing_num_workers,
        "tokenized_path": str(paths.tokenized_path),
        # output and checkpoints
        "output_dir": str(paths.output_dir),
        "logging_steps": train.logging_steps,
        "save_steps": train.save_steps,
        "save_total_limit": train.save_total_limit,
        "save_only_model": False,  # resuming needs optimizer, scheduler and RNG state
        "plot_loss": True,
        "report_to": train.report_to,
        "run_name": run_name,
        "include_num_input_tokens_seen": True,
        # training
        "per_device_train_batch_size": train.per_device_train_batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "learning_rate": train.learning_rate,
        "num_train_epochs": train.num_train_epochs,
        "lr_scheduler_type": train.lr_scheduler_type,
        "warmup_ratio": train.warmup_ratio,
        "bf16": train.bf16,
        "seed": train.seed,
        "ddp_timeout": 180000000,
    }
    if train.max_steps is not None:
        cfg["max_steps"] = train.max_steps
    if paths.deepspeed_json is not None:
        cfg["deepspeed"] = str(paths.deepspeed_json)
    cfg.update(train.extra)
    return cfg


def fingerprint(cfg: dict[str, Any], ds: dict[str, Any] | None, *, data_digest: str, world_size: int) -> dict:
    """What must not change between attempts of one run: the training math, the data and the world size
    (ZeRO checkpoints only load with the world size that wrote them)."""
    return {
        "train_args": {k: v for k, v in sorted(cfg.items()) if k not in PLACE_KEYS},
        "deepspeed": ds,
        "data": data_digest,
        "world_size": world_size,
    }
