"""`skyt1 report RUN_DIR`."""

from __future__ import annotations

import click

from skyt1.cli.common import force_option, load_or_exit, set_option


@click.command()
@click.argument("run_dir")
@click.option("--recipe", "-r", "recipe_path", type=click.Path(dir_okay=False),
              help="The run's recipe: records the report phase's manifest and shows the resolved recipe.")
@set_option
@force_option
def report(run_dir: str, recipe_path: str | None, overrides: tuple[str, ...], force: bool) -> None:
    """Write RUN_DIR/report/report.md and a self-contained report.html from the run's manifests."""
    from skyt1 import report as report_phase
    from skyt1.store import RunDir, StoreError

    try:
        run = RunDir(run_dir)
        if recipe_path:
            report_phase.run(load_or_exit(recipe_path, overrides), run, force=force)
        else:
            report_phase.write_report(run)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    ph = run.phase(report_phase.NAME)
    click.echo(f"report: {ph.uri}/report.md")
    click.echo(f"report: {ph.uri}/report.html")
