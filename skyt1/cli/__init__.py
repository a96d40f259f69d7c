"""The `skyt1` command. Each command lives in a small module of this package and is imported only when
it runs, so `skyt1 --help` stays fast and a CPU machine never imports GPU-only code."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from skyt1 import __version__

# command name -> "module:attribute" inside skyt1.cli
COMMANDS = {
    "recipe": "recipe_cmd:recipe",
    "score": "score_cmd:score",
    "eval": "eval_cmd:eval_cmd",
    "tiny-model": "engines_cmd:tiny_model",
    "demo-model": "engines_cmd:demo_model",
    "serve": "engines_cmd:serve",
    "label": "curation_cmd:label",
    "distill": "curation_cmd:distill",
    "reformat": "curation_cmd:reformat",
    "filter": "curation_cmd:filter_cmd",
    "assemble": "curation_cmd:assemble",
    "train": "train_cmd:train",
    "cost": "cloud_cmd:cost",
    "launch": "cloud_cmd:launch",
    "reproduce": "cloud_cmd:reproduce",
    "report": "report_cmd:report",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        try:
            mod = importlib.import_module(f"skyt1.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("skyt1"):
                raise
            raise click.ClickException(
                f"`skyt1 {name}` needs the Python package {e.name!r}, which is not installed; "
                "run `make install` (or pip install 'skyt1[train,dev]')"
            ) from None
        return getattr(mod, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skyt1")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Reproduce the Sky-T1 recipe: label -> distill -> reformat -> filter -> assemble -> train -> eval."""
    from skyt1.redact import install_log_redaction

    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_log_redaction()


def main() -> None:
    cli(prog_name="skyt1")
