"""The `train` phase: SFT of the student on assemble's `train.json` with LlamaFactory, safe under preemption.

Every call is one attempt: check the frozen config, quarantine incomplete checkpoints, resume from the newest
complete one, train to the planned step, then publish RUN/train/final (HF model + tokenizer), loss.jsonl and
the manifest. SkyPilot's recovery simply runs the same command again.

RUN/train/
  frozen_config.yaml     what this run trains (a changed recipe is refused unless --force)
  llamafactory.yaml      the arguments of the latest attempt (frozen config + resume_from_checkpoint)
  deepspeed.json, data/train.json + data/dataset_info.json (assemble's output, read through the store and
  checked against assemble's manifest), tokenized/ (tokenization cache)
  checkpoints/           LlamaFactory's output_dir: checkpoint-N/ and, at the end, the trained model
  quarantine/            incomplete checkpoints and caches moved aside, with reasons.jsonl
  logs/attempt-K.log, attempts.jsonl, loss.jsonl, final/, _DONE.json
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from skyt1.phases import diff
from skyt1.protocol import PhaseError, PhaseRun, run_phase
from skyt1.recipe import Recipe
from skyt1.store import PhaseDir, RunDir, StoreError, canonical_digest, content_digest
from skyt1.training import checkpoints, config, launch

NAME = "train"
log = logging.getLogger(__name__)

MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja",
               "chat_template.json")


class TrainError(PhaseError):
    """Training cannot start or did not finish; the message says what to do."""


TRAIN_FILE = "train.json"  # assemble's output, the training data


def _training_data(p: PhaseRun) -> tuple[bytes, int]:
    """assemble's train.json through the store, checked against the digest in assemble's manifest."""
    src = p.upstream("assemble")
    where = src.where(TRAIN_FILE)
    try:
        data = src.read_bytes(TRAIN_FILE)
    except FileNotFoundError:
        raise TrainError(f"{where} is missing although assemble is complete; run `skyt1 assemble --force`") from None
    if content_digest(data) != p.inputs["assemble"]:
        raise TrainError(f"{where} does not match assemble's manifest (changed after assemble wrote it); run "
                         "`skyt1 assemble --force`")
    try:
        rows = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrainError(f"{where} is not valid JSON ({e}); re-run `skyt1 assemble --force`") from None
    if not isinstance(rows, list) or not rows:
        raise TrainError(f"{where} must be a non-empty JSON list of ShareGPT rows; re-run `skyt1 assemble`")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict) or not r.get("conversations")), None)
    if bad is not None:
        raise TrainError(f"{where} row {bad} has no `conversations`; expected ShareGPT rows from assemble")
    return data, len(rows)


def _training_done(output_dir: Path) -> dict | None:
    """The final trainer state when a previous attempt finished training (the model is saved in output_dir)."""
    state = checkpoints.read_state(output_dir)
    if state and state.get("max_steps") and state["global_step"] >= state["max_steps"]:
        if checkpoints.weights_problem(output_dir) is None:
            return state
    return None


def _tokenized_ok(path: Path) -> bool:
    try:
        from datasets import load_from_disk

        load_from_disk(str(path))
        return True
    except Exception:  # any failure means the cache cannot be used: it is rebuilt
        return False


def _freeze(ph: PhaseDir, root: Path, frozen: dict) -> None:
    path = root / "frozen_config.yaml"
    if path.exists():
        before = yaml.safe_load(path.read_text())["fingerprint"]
        changes = diff(before, frozen["fingerprint"])
        if not changes:
            return
        raise TrainError(
            "the training configuration differs from the one this run started with "
            f"({path}):\n  " + "\n  ".join(changes) + "\nResuming would mix two runs (for example a changed "
            "world size cannot load ZeRO checkpoints). Undo the change, use another --run-dir, or pass --force "
            "to discard the checkpoints and train from scratch."
        )
    ph.write_text("frozen_config.yaml", yaml.safe_dump(frozen, sort_keys=True, width=110))


def _run_name(run: RunDir) -> str:
    """Stable across SkyPilot recoveries (same task id), so W&B/TensorBoard curves continue one run."""
    return os.environ.get("SKYPILOT_TASK_ID") or f"skyt1-{Path(run.uri).name}"


def _publish_model(output_dir: Path, root: Path) -> Path:
    """Copy the trained HF model and tokenizer to RUN/train/final, atomically (whole or absent)."""
    staging, final = root / "final.tmp", root / "final"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    names = [n for n in MODEL_FILES if (output_dir / n).is_file()]
    for index_name in checkpoints.WEIGHT_INDEXES:
        if (output_dir / index_name).is_file():
            names += [index_name, *sorted(set(json.loads((output_dir / index_name).read_text())["weight_map"].values()))]
            break
    else:
        names += [n for n in checkpoints.WEIGHT_FILES if (output_dir / n).is_file()][:1]
    for name in names:
        shutil.copy2(output_dir / name, staging / name)
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return final


class _Progress:
    """A progress bar on stderr fed by trainer_log.jsonl entries."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.task = enabled, None, None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self.bar.__enter__()
        return self

    def update(self, entry: dict) -> None:
        step, total = entry.get("current_steps"), entry.get("total_steps")
        if step is None:
            return
        desc = f"loss {entry['loss']:.4f}" if isinstance(entry.get("loss"), int | float) else ""
        if self.bar is None:
            if not desc:  # the closing summary line repeats the last step
                return
            print(f"train: step {step}/{total} {desc}", file=sys.stderr, flush=True)
            return
        if self.task is None:
            self.task = self.bar.add_task(desc, total=total, completed=step)
        self.bar.update(self.task, completed=step, total=total, description=desc)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _device_kind() -> str:
    try:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def run(recipe: Recipe, run: RunDir, *, force: bool = False, progress: bool | None = None) -> dict[str, Any]:
    topo = launch.topology()
    # Every node runs this command; the head alone locks, checks, tidies, freezes and publishes.
    return run_phase(NAME, recipe, run, partial(_train, topo=topo, progress=progress), force=force,
                     writer=topo.is_head)


def _train(p: PhaseRun, topo: launch.Topology, progress: bool | None) -> dict[str, Any]:
    recipe, run, ph = p.recipe, p.run, p.dir
    t = recipe.train
    try:
        root = run.local_path(NAME)
    except StoreError as e:
        raise TrainError(f"{e}; mount the bucket (SkyPilot file_mounts) and pass the mount path") from None
    data, n_rows = _training_data(p)
    data_digest = p.inputs["assemble"]
    deepspeed = config.deepspeed_config(t.deepspeed)
    distributed = deepspeed is not None or topo.world_size > 1
    root.mkdir(parents=True, exist_ok=True)
    paths = config.Paths(
        model=recipe.resolve_path(t.base_model),
        dataset_dir=root / "data",
        output_dir=root / "checkpoints",
        tokenized_path=root / "tokenized",
        deepspeed_json=root / "deepspeed.json" if deepspeed else None,
    )
    try:
        args = config.render(t, paths, dataset=recipe.assemble.dataset_name, run_name=_run_name(run))
    except config.TrainConfigError as e:
        raise TrainError(str(e)) from None
    if t.gpus_per_node * t.num_nodes != topo.world_size:
        log.warning("train: the recipe plans %d x %d devices but %d processes will train; the global batch "
                    "size differs from the recipe's", t.num_nodes, t.gpus_per_node, topo.world_size)
    fingerprint = config.fingerprint(args, deepspeed, data_digest=data_digest, world_size=topo.world_size)
    frozen = {"fingerprint": fingerprint, "train_args": args, "recipe_digest": p.digest}

    # Every node writes these (identical, atomic): a worker reads them before the rendezvous with the head.
    ph.write_bytes(f"data/{TRAIN_FILE}", data)
    ph.write_text("data/dataset_info.json", json.dumps(config.dataset_info(recipe.assemble.dataset_name, TRAIN_FILE),
                                                       indent=2))
    if deepspeed:
        ph.write_text("deepspeed.json", json.dumps(deepspeed, indent=2))
    if not topo.is_head:  # workers train; the head node alone checks, tidies, freezes and publishes
        if _training_done(paths.output_dir):  # the head publishes without training: no rendezvous to join
            return {"phase": NAME, "node_rank": topo.node_rank, "attempt": None}
        newest = checkpoints.newest_complete(paths.output_dir, deepspeed=deepspeed is not None,
                                             world_size=topo.world_size)  # the head's choice, without moving
        attempt = _attempt(ph, args, paths, root, topo, distributed, progress,
                           resume=str(newest.path) if newest else None)
        if attempt["exit_code"] != 0:
            raise TrainError(f"training on node {topo.node_rank} failed (exit code {attempt['exit_code']}); "
                             f"log: {attempt['log']}\n{launch.tail(Path(attempt['log']))}")
        return {"phase": NAME, "node_rank": topo.node_rank, "attempt": attempt}

    _freeze(ph, root, frozen)
    ph.invalidate()  # a manifest of other data or another recipe must not outlive this attempt

    quarantine_dir = root / "quarantine"
    state = _training_done(paths.output_dir)
    moved: list[dict] = []
    if state is None:
        newest, moved = checkpoints.sweep(paths.output_dir, quarantine_dir, deepspeed=deepspeed is not None,
                                          world_size=topo.world_size)
        if newest is None:
            moved += checkpoints.quarantine_stray_weights(paths.output_dir, quarantine_dir)
        if paths.tokenized_path.exists() and not _tokenized_ok(paths.tokenized_path):
            checkpoints.quarantine(paths.tokenized_path, quarantine_dir, "tokenized cache unreadable (killed while saving)")
            moved.append({"checkpoint": "tokenized", "reason": "unreadable cache"})
        for m in moved:
            log.warning("train: quarantined %s: %s", m["checkpoint"], m["reason"])
        resume = str(newest.path) if newest else None
        attempt = _attempt(ph, args, paths, root, topo, distributed, progress, resume=resume, moved=moved)
        state = _training_done(paths.output_dir)
        if state is None:
            raise TrainError(
                f"training ended (exit code {attempt['exit_code']}) without a finished model in {paths.output_dir}; "
                f"log: {attempt['log']}\n{launch.tail(Path(attempt['log']))}\n"
                "Run the same command again to resume from the newest complete checkpoint."
            )
    return _finish(p, root, paths, state, frozen, n_rows, topo)


def _attempt(ph: PhaseDir, args: dict, paths: config.Paths, root: Path, topo: launch.Topology, distributed: bool,
             progress: bool | None, *, resume: str | None, moved: list[dict] | None = None) -> dict:
    number = len(_attempts(ph)) + 1
    launch_args = {**args, **({"resume_from_checkpoint": resume} if resume else {})}
    cfg_path = root / (f"llamafactory-node{topo.node_rank}.yaml" if topo.node_rank else "llamafactory.yaml")
    cfg_path.write_text(yaml.safe_dump(launch_args, sort_keys=True, width=110))
    # Only the head numbers attempts; a worker names its log by time (it may start before the head records).
    log_name = f"attempt-{number}.log" if topo.is_head else f"node{topo.node_rank}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_path = root / "logs" / log_name
    cmd = launch.command(cfg_path, topo, distributed=distributed)
    log.info("train: attempt %d, %s; log %s", number, f"resuming from {resume}" if resume else "from scratch", log_path)
    entry = {"attempt": number, "started_at": time.time(), "resumed_from": Path(resume).name if resume else None,
             "quarantined": moved or [], "world_size": topo.world_size, "device": _device_kind(), "log": str(log_path)}
    if topo.is_head:  # recorded before the launch: a preempted attempt never gets to write its end
        ph.write_json(f"attempts/{number:04d}.json", entry)
    show = sys.stderr.isatty() if progress is None else progress
    with _Progress(show and topo.is_head) as bar:
        code = launch.run_training(cmd, launch.process_env(distributed), log_path=log_path,
                                   trainer_log=paths.output_dir / launch.TRAINER_LOG, on_entry=bar.update)
    end = {"attempt": number, "exit_code": code, "wall_s": round(time.time() - entry["started_at"], 3)}
    if topo.is_head:
        ph.write_json(f"attempts/{number:04d}.json", {**entry, **end})
    return {**entry, **end}


def _attempts(ph: PhaseDir) -> list[dict]:
    """One dict per attempt (`attempts/NNNN.json`, written at its start and again at its end); an attempt
    that was killed gets its wall time from its log's last write."""
    merged = {a["attempt"]: a for a in (ph.read_json(f) for f in ph.files() if f.startswith("attempts/"))}
    for a in merged.values():
        if "wall_s" not in a:
            log_file = Path(a["log"])
            last = log_file.stat().st_mtime if log_file.exists() else a["started_at"]
            a.update(exit_code=None, wall_s=round(max(0.0, last - a["started_at"]), 3))
    return [merged[k] for k in sorted(merged)]


def _finish(p: PhaseRun, root: Path, paths: config.Paths, state: dict, frozen: dict, n_rows: int,
            topo: launch.Topology) -> dict:
    ph = p.dir
    losses = [{"step": e["step"], "loss": e["loss"], "learning_rate": e.get("learning_rate"), "epoch": e.get("epoch")}
              for e in state.get("log_history", []) if "loss" in e and "step" in e]
    ph.write_text("loss.jsonl", "".join(json.dumps(x, sort_keys=True) + "\n" for x in losses))
    final = _publish_model(paths.output_dir, root)
    attempts = _attempts(ph)
    train_wall = sum(a["wall_s"] for a in attempts)
    on_gpu = any(a.get("device") == "gpu" for a in attempts)
    p.started_at = min((a["started_at"] for a in attempts), default=time.time())
    files = {f.name: f.stat().st_size for f in sorted(final.iterdir())}
    return p.finish(
        outputs={"final": canonical_digest({"files": files, "step": state["global_step"], "losses": losses,
                                            "fingerprint": frozen["fingerprint"]})},
        counts={
            "train_rows": n_rows,
            "steps": state["global_step"],
            "max_steps": state.get("max_steps"),
            "epochs": state.get("epoch"),
            "tokens_seen": state.get("num_input_tokens_seen"),
            "attempts": len(attempts),
            "quarantined": sum(len(a.get("quarantined", [])) for a in attempts),
        },
        config=frozen,
        extra={
            "final_model": str(final),
            "final_loss": losses[-1]["loss"] if losses else None,
            "loss_curve": [[x["step"], x["loss"]] for x in losses],
            "train_wall_s": round(train_wall, 3),
            "world_size": topo.world_size,
            "gpu_hours": round(train_wall * topo.world_size / 3600, 4) if on_gpu else 0.0,
            "attempt_log": attempts,
        },
    )
