"""The `skyt1` command. Each command lives in a small module of this package and is imported only when
it runs, so `skyt1 --help` stays fast and a CPU machine never imports GPU-only code.

Every command's errors go through one wrapper (`LazyGroup.invoke`): an error a user can hit is one line
(what went wrong and what to do), a non-zero exit and no traceback; `skyt1 -v ...` adds the traceback."""

from __future__ import annotations

import errno
import importlib
import logging
import sys
import traceback

import click

from skyt1 import __version__
from skyt1.phases import PHASES

# command name -> "module:attribute" inside skyt1.cli; one command per phase comes from the phase table
COMMANDS = {
    "recipe": "recipe_cmd:recipe",
    "score": "score_cmd:score",
    "tiny-model": "engines_cmd:tiny_model",
    "demo-model": "engines_cmd:demo_model",
    "serve": "engines_cmd:serve",
    "cost": "cloud_cmd:cost",
    "launch": "cloud_cmd:launch",
    "reproduce": "cloud_cmd:reproduce",
    "plan": "plan_cmd:plan",
    **{p.name: p.command for p in PHASES},
}


def describe(e: BaseException) -> str:
    """What a user reads about an error that ended a command."""
    if isinstance(e, OSError) and not type(e).__module__.startswith("skyt1"):
        where = f"{e.filename}: " if e.filename else ""
        hint = {errno.ENOSPC: "free some disk space and run the same command again (it resumes)",
                errno.EACCES: "check the permissions of that path", errno.EROFS: "that file system is read-only",
                errno.EADDRINUSE: "another program uses that port; stop it or choose another port",
                errno.ENOENT: "check the path"}.get(e.errno, "")
        return f"{where}{e.strerror or e}" + (f"; {hint}" if hint else "")
    if type(e).__name__ == "ValidationError" and hasattr(e, "errors"):  # pydantic, e.g. a flag's value
        return "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'value'}: {err['msg']}" for err in e.errors())
    if type(e).__module__.startswith("skyt1") or isinstance(e, ValueError):
        return str(e)  # skyt1's own errors say what to do
    return f"unexpected {type(e).__name__}: {e} (a bug: `skyt1 -v ...` shows the traceback; please report it)"


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - every error of every command ends here
            if ctx.meta.get("skyt1.verbose"):
                traceback.print_exc()
            raise click.ClickException(describe(e)) from None

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
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug) and tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Reproduce the Sky-T1 recipe: label -> distill -> reformat -> filter -> assemble -> train -> eval."""
    from skyt1.redact import install_log_redaction

    ctx.meta["skyt1.verbose"] = verbose
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_log_redaction()


def main() -> None:
    cli(prog_name="skyt1")
