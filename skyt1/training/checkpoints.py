"""Checkpoint hygiene for preemptible training.

A preemption during a save leaves a `checkpoint-N` directory that LlamaFactory's automatic resume would pick
(it takes the highest N without looking inside) and crash on, or worse, resume from half-written state.
Before every launch each checkpoint is checked; incomplete ones move to `quarantine/` with the reason, and
training resumes from the newest complete one.

The HF Trainer writes a checkpoint in this order: model weights, optimizer + scheduler (+ DeepSpeed shards
and `latest`), RNG state, then `trainer_state.json` last; so a complete checkpoint has a parseable
`trainer_state.json` AND everything written before it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def list_checkpoints(output_dir: Path) -> list[Checkpoint]:
    """`checkpoint-N` directories, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [Checkpoint(p, int(m.group(1))) for p in output_dir.iterdir()
             if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return sorted(found, key=lambda c: c.step)


def read_state(directory: Path) -> dict | None:
    """The parsed trainer_state.json, or None when missing or half-written."""
    try:
        state = json.loads((directory / TRAINER_STATE).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return state if isinstance(state, dict) and "global_step" in state else None


def weights_problem(directory: Path) -> str | None:
    """Why the HF model weights in `directory` are incomplete, or None when they are whole."""
    for index_name in WEIGHT_INDEXES:
        index = directory / index_name
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text())["weight_map"].values())
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
                return f"{index_name} is unreadable"
            missing = sorted(s for s in shards if not (directory / s).is_file())
            return f"weight shards missing: {missing}" if missing else None
    if any((directory / name).is_file() for name in WEIGHT_FILES):
        return None
    return "no model weights"


def _deepspeed_problem(ckpt: Path, world_size: int) -> str | None:
    latest = ckpt / "latest"
    if not latest.is_file():
        return "DeepSpeed `latest` tag file missing"
    tag = latest.read_text().strip()
    step_dir = ckpt / tag
    if not tag or not step_dir.is_dir():
        return f"DeepSpeed step directory {tag!r} named by `latest` is missing"
    if not list(step_dir.glob("*model_states.pt")):
        return f"DeepSpeed model states missing in {tag}"
    optim = list(step_dir.glob("*optim_states.pt"))
    if len(optim) < world_size:
        return f"DeepSpeed optimizer shards: {len(optim)} of {world_size} ranks present in {tag}"
    return None


def problem(ckpt: Checkpoint, *, deepspeed: bool, world_size: int) -> str | None:
    """Why a checkpoint cannot be resumed from, or None when it is complete."""
    state = read_state(ckpt.path)
    if state is None:
        return f"{TRAINER_STATE} missing or unreadable (killed during the save)"
    if state["global_step"] != ckpt.step:
        return f"{TRAINER_STATE} says step {state['global_step']}, directory says {ckpt.step}"
    if deepspeed:
        return _deepspeed_problem(ckpt.path, world_size)
    weights = weights_problem(ckpt.path)
    if weights:
        return weights
    for name in ("optimizer.pt", "scheduler.pt"):
        if not (ckpt.path / name).is_file():
            return f"{name} missing"
    return None


def quarantine(path: Path, quarantine_dir: Path, reason: str) -> Path:
    """Move `path` aside (never delete: it may be evidence) and record why."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / f"{path.name}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6:06d}"
    shutil.move(str(path), str(target))
    with (quarantine_dir / "reasons.jsonl").open("a") as f:
        f.write(json.dumps({"path": path.name, "moved_to": target.name, "reason": reason, "at": time.time()}) + "\n")
    return target


def newest_complete(output_dir: Path, *, deepspeed: bool, world_size: int) -> Checkpoint | None:
    """The checkpoint `sweep` would resume from, found without moving anything (for worker nodes)."""
    complete = [c for c in list_checkpoints(output_dir) if problem(c, deepspeed=deepspeed, world_size=world_size) is None]
    return complete[-1] if complete else None


def sweep(output_dir: Path, quarantine_dir: Path, *, deepspeed: bool, world_size: int) -> tuple[Checkpoint | None, list[dict]]:
    """Quarantine every incomplete checkpoint; return the newest complete one and what was moved."""
    moved, newest = [], None
    for ckpt in list_checkpoints(output_dir):
        reason = problem(ckpt, deepspeed=deepspeed, world_size=world_size)
        if reason:
            quarantine(ckpt.path, quarantine_dir, reason)
            moved.append({"checkpoint": ckpt.path.name, "reason": reason})
        else:
            newest = ckpt
    return newest, moved


def quarantine_stray_weights(output_dir: Path, quarantine_dir: Path) -> list[dict]:
    """Model files left in output_dir by a final save that was cut short (LlamaFactory refuses to start
    over such a directory when it holds no checkpoint)."""
    if not output_dir.is_dir():
        return []
    stray = [p for p in output_dir.iterdir() if p.is_file() and
             (p.name in WEIGHT_FILES or p.name in WEIGHT_INDEXES or re.match(r"model-\d+-of-\d+\.safetensors$", p.name))]
    if not stray:
        return []
    holder = output_dir / "partial-final-model"
    holder.mkdir(exist_ok=True)
    for p in stray:
        shutil.move(str(p), str(holder / p.name))
    quarantine(holder, quarantine_dir, "model files of an unfinished final save")
    return [{"checkpoint": "final model files", "reason": "unfinished final save"}]
