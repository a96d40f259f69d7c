"""`skyt1 recipe validate|show`."""

from __future__ import annotations

import click
import yaml

from skyt1.cli.common import load_or_exit, set_option
from skyt1.recipe import summarize


@click.group()
def recipe() -> None:
    """Check and inspect recipes."""


@recipe.command()
@click.argument("path", type=click.Path(dir_okay=False))
@set_option
def validate(path: str, overrides: tuple[str, ...]) -> None:
    """Validate a recipe and print a summary of what it will do."""
    r = load_or_exit(path, overrides)
    click.echo(summarize(r))
    click.echo(f"OK: {path} is a valid recipe (digest {r.digest()})")


@recipe.command()
@click.argument("path", type=click.Path(dir_okay=False))
@set_option
def show(path: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved recipe, with every default filled in."""
    r = load_or_exit(path, overrides)
    click.echo(yaml.safe_dump(r.model_dump(mode="json"), sort_keys=False, width=110))
