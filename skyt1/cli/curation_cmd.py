"""`skyt1 label|distill|reformat|filter|assemble`: one curation phase each; the work is in skyt1.curation."""

from __future__ import annotations

import importlib
import json

import click

from skyt1.cli.common import load_or_exit, phase_options


def _run(phase: str, recipe_path: str, run_dir: str, overrides: tuple[str, ...], force: bool, **opts) -> None:
    from skyt1.store import RunDir

    recipe = load_or_exit(recipe_path, overrides)
    module = importlib.import_module(f"skyt1.curation.{phase}")
    manifest = module.run(recipe, RunDir(run_dir), force=force, **opts)
    summary = {k: manifest.get(k) for k in ("phase", "counts", "cost_usd", "wall_time_s", "message") if k in manifest}
    click.echo(json.dumps(summary, indent=2, sort_keys=True))
    if manifest.get("complete") is False and "shard" not in manifest:
        raise click.ClickException(manifest.get("message", f"{phase} is incomplete"))


@click.command()
@phase_options
@click.option("--from-published", is_flag=True, default=None,
              help="Join the published labels (NovaSky-AI/labeled_numina_difficulty_859K) instead of calling the API.")
def label(recipe_path, run_dir, overrides, force, from_published) -> None:
    """Difficulty labels (AoPS 1-10) for the recipe's label sources."""
    _run("label", recipe_path, run_dir, overrides, force, from_published=from_published)


@click.command()
@phase_options
@click.option("--start", type=int, default=0, show_default=True, help="First problem (per source) to distill.")
@click.option("--end", type=int, default=None, help="Stop before this problem (per source).")
@click.option("--shard", default=None, metavar="I/N", help="Take shard I of N (0-based): N machines split the work.")
def distill(recipe_path, run_dir, overrides, force, start, end, shard) -> None:
    """Teacher traces for the recipe's distill sources."""
    _run("distill", recipe_path, run_dir, overrides, force, start=start, end=end, shard=shard)


@click.command()
@phase_options
def reformat(recipe_path, run_dir, overrides, force) -> None:
    """Rewrite traces into thought/solution sections (LLM or rule-based)."""
    _run("reformat", recipe_path, run_dir, overrides, force)


@click.command("filter")
@phase_options
def filter_cmd(recipe_path, run_dir, overrides, force) -> None:
    """Rejection sampling: keep traces whose answer is right or whose code passes the tests."""
    _run("filter", recipe_path, run_dir, overrides, force)


@click.command()
@phase_options
def assemble(recipe_path, run_dir, overrides, force) -> None:
    """ShareGPT training set: mixture, dedup, decontamination, length statistics."""
    _run("assemble", recipe_path, run_dir, overrides, force)
