"""`skyt1 plan`: what `skyt1 reproduce --local` would do with a run directory, without doing it."""

from __future__ import annotations

import json

import click

from skyt1.cli.common import load_or_exit, recipe_option, run_dir_option, set_option


@click.command()
@recipe_option
@run_dir_option
@set_option
@click.option("--phases", help="Comma-separated phases (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plan(recipe_path: str, run_dir: str, overrides: tuple[str, ...], phases: str | None, as_json: bool) -> None:
    """A dry run: validate the recipe, then say for each phase whether it would be skipped (complete), run,
    resumed, redone (its inputs changed), refused (its output was written under other settings: the
    changed knobs are named) or blocked (an upstream phase is missing). Exits 1 when a phase would be
    refused or blocked."""
    from skyt1 import phases as table
    from skyt1.protocol import plan as make_plan
    from skyt1.store import RunDir

    recipe = load_or_exit(recipe_path, overrides)
    names = [p.strip() for p in phases.split(",") if p.strip()] if phases else list(table.NAMES)
    steps = make_plan(recipe, RunDir(run_dir), table.in_order(names))
    if as_json:
        click.echo(json.dumps(steps, indent=2))
    else:
        width = max(len(s["phase"]) for s in steps)
        for s in steps:
            why = s["why"].replace("\n", "\n" + " " * (width + 12))
            click.echo(f"{s['phase']:<{width}}  {s['action']:<8}  {why}".rstrip())
    stuck = [s["phase"] for s in steps if s["action"] in ("refuse", "blocked")]
    if stuck:
        raise click.ClickException(f"{', '.join(stuck)} would not run as the plan stands (see above)")
