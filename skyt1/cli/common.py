"""Options and helpers shared by the phase commands."""

from __future__ import annotations

import click

from skyt1.recipe import Recipe, RecipeError, load_recipe


def parse_overrides(values: tuple[str, ...]) -> dict:
    import yaml

    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. train.max_steps=10", param_hint="--set")
        key, _, raw = item.partition("=")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def load_or_exit(path: str, overrides: tuple[str, ...] = ()) -> Recipe:
    try:
        return load_recipe(path, parse_overrides(overrides))
    except RecipeError as e:
        raise click.ClickException(str(e)) from None


recipe_option = click.option(
    "--recipe", "-r", "recipe_path", required=True, type=click.Path(dir_okay=False),
    help="Recipe YAML, e.g. recipes/sky-t1-32b-preview.yaml.",
)
run_dir_option = click.option(
    "--run-dir", required=True, help="Run directory: a local path, a mounted bucket, or s3://bucket/prefix.",
)
set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field (dotted path).",
)
force_option = click.option("--force", is_flag=True, help="Redo the phase even if its manifest says it is complete.")


def phase_options(fn):
    """--recipe, --run-dir, --set and --force, in that order."""
    for deco in reversed((recipe_option, run_dir_option, set_option, force_option)):
        fn = deco(fn)
    return fn
