"""`skyt1 train`: supervised fine-tuning with LlamaFactory (+ DeepSpeed), resumable on spot instances."""

from __future__ import annotations

import json

import click

from skyt1.cli.common import load_or_exit, phase_options


@click.command()
@phase_options
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
def train(recipe_path: str, run_dir: str, overrides: tuple[str, ...], force: bool, progress: bool | None) -> None:
    """Fine-tune recipe.train.base_model on RUN/assemble/train.json; writes RUN/train/final.

    Run the same command again after a preemption: it resumes from the newest complete checkpoint.
    """
    from skyt1.store import RunDir
    from skyt1.training.train import run

    recipe = load_or_exit(recipe_path, overrides)
    manifest = run(recipe, RunDir(run_dir), force=force, progress=progress)
    counts = manifest.get("counts", {})
    click.echo(json.dumps({"final_model": manifest.get("final_model"), "steps": counts.get("steps"),
                           "final_loss": manifest.get("final_loss"), "tokens_seen": counts.get("tokens_seen")}))
