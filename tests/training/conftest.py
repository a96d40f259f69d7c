"""Fixtures for the training tests: a tiny random Qwen2, an assembled ShareGPT dataset in a run dir, and
a runner for the real `skyt1 train` command that can SIGKILL it like a preemption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyt1.recipe import load_recipe
from skyt1.store import RunDir, content_digest

REPO = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).parent / "hooks"
SYSTEM = "Your role as an assistant involves thoroughly exploring questions through a systematic long thinking process."


def sharegpt_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        q = f"Return your final response within \\boxed{{}}. What is {i} + {i % 7}?"
        a = (f"<|begin_of_thought|>\n\n{i} plus {i % 7} is {i + i % 7}.\n\n<|end_of_thought|>\n\n"
             f"<|begin_of_solution|>\n\n\\boxed{{{i + i % 7}}}\n\n<|end_of_solution|>")
        rows.append({"system": SYSTEM, "conversations": [{"from": "user", "value": q}, {"from": "assistant", "value": a}]})
    return rows


def write_assembled(run: RunDir, rows: list[dict], name: str = "skyt1_sft") -> None:
    """RUN/assemble as the assemble phase leaves it: train.json, dataset_info.json, _DONE.json."""
    ph = run.phase("assemble")
    text = json.dumps(rows, ensure_ascii=False)
    ph.write_text("train.json", text)
    ph.write_json("dataset_info.json", {name: {"file_name": "train.json", "formatting": "sharegpt"}})
    ph.write_manifest(recipe_digest="test", inputs={"filter": "test"}, counts={"rows": len(rows)},
                      started_at=time.time(), outputs={"train.json": content_digest(text)})


@pytest.fixture
def make_run(tmp_path):
    def make(rows: int = 40, name: str = "run") -> RunDir:
        run = RunDir(tmp_path / name)
        write_assembled(run, sharegpt_rows(rows))
        return run

    return make


def train_overrides(model: Path, **extra) -> dict:
    base = {"train.base_model": str(model), "train.max_steps": 10, "train.save_steps": 2, "train.cutoff_len": 256,
            "train.per_device_train_batch_size": 2, "train.gradient_accumulation_steps": 2,
            "train.deepspeed": "none", "train.gpus_per_node": 1, "train.num_nodes": 1}
    base.update({f"train.{k}": v for k, v in extra.items()})
    return base


def recipe_for(model: Path, **extra):
    return load_recipe(REPO / "recipes" / "tiny.yaml", train_overrides(model, **extra))


def cli_args(run: RunDir, model: Path, **extra) -> list[str]:
    args = [str(Path(sys.executable).parent / "skyt1"), "train", "--recipe", str(REPO / "recipes" / "tiny.yaml"),
            "--run-dir", run.uri, "--no-progress"]
    for k, v in train_overrides(model, **extra).items():
        args += ["--set", f"{k}={v}"]
    return args


def hook_env(**settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOOKS), env.get("PYTHONPATH")]))
    env.update(settings)
    return env


def kill_tree(proc: subprocess.Popen) -> None:
    """What a preemption does to the node: every training process dies at once, no cleanup."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    for child in map(int, children):
        try:
            os.killpg(child, signal.SIGKILL)  # the trainer runs in its own process group
        except ProcessLookupError:
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 180, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"`skyt1 train` exited ({proc.returncode}) before {what}")
        time.sleep(0.05)
    kill_tree(proc)
    raise AssertionError(f"timed out waiting for {what}")


def logged_steps(output_dir: Path) -> list[int]:
    path = output_dir / "trainer_log.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["current_steps"] for x in path.read_text().splitlines() if x.strip().endswith("}")]
