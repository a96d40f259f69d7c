"""`skyt1 score`: re-score a JSONL file of responses."""

from __future__ import annotations

import click


@click.command()
@click.option("--scorer", type=click.Choice(["math", "choice", "code"]), required=True, help="Which scorer judges the rows.")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Input JSONL.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), help="Output JSONL.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds per math answer / per code test.")
@click.option("--memory-mb", type=click.IntRange(min=64), default=None, help="Memory limit per code test process (MiB).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel workers (default: CPU count).")
@click.option("--full-run", is_flag=True,
              help="Code: run every test (partial credit in `passed`) instead of stopping at the first failure.")
@click.option("--allow-unsandboxed", is_flag=True,
              help="Code: where bubblewrap cannot run, run programs with resource limits only (on a cloud node "
                   "this is refused without the flag).")
def score(scorer: str, input_path: str, output_path: str, timeout_s: float | None, memory_mb: int | None,
          workers: int | None, full_run: bool, allow_unsandboxed: bool) -> None:
    """Score responses: rows {"id","response","reference"} (math, choice) or {"id","response","tests"} (code).

    Writes the rows with correct, extracted, status, passed, total added (and extraction: the rule that read
    a math or choice answer; isolation: the sandbox code ran in). Math rows may carry finish_reason ("stop"
    lets an answer stated in prose count). Invalid rows are written with status invalid_input and reported
    by line number; the exit code is then non-zero.
    """
    from pathlib import Path

    from skyt1.scoring.jsonl import score_file

    out = Path(output_path)
    if out.exists() and out.resolve() == Path(input_path).resolve():
        raise click.BadParameter("is the input file; write the scores to another file", param_hint="--output")
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = score_file(scorer, input_path, output_path, workers=workers, timeout_s=timeout_s,
                         memory_mb=memory_mb, full_run=full_run, allow_unsandboxed=allow_unsandboxed)
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(summary.statuses.items()))
    isolation = f"; code isolation: {', '.join(sorted(summary.isolation))}" if summary.isolation else ""
    click.echo(f"{summary.correct}/{summary.rows} correct ({statuses}{isolation}) -> {output_path}")
    if summary.invalid_lines:
        for number, reason in summary.invalid_lines[:20]:
            click.echo(f"{input_path}:{number}: invalid row: {reason}", err=True)
        more = len(summary.invalid_lines) - 20
        if more > 0:
            click.echo(f"... and {more} more invalid rows", err=True)
        raise click.ClickException(f"{len(summary.invalid_lines)} invalid row(s) were written with status "
                                   "invalid_input; fix them and run again") from None
