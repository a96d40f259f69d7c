"""`skyt1 cost`, `skyt1 launch`, `skyt1 reproduce`."""

from __future__ import annotations

import json
import sys

import click

from skyt1.cli.common import load_or_exit, recipe_option, set_option


def _err(msg: str) -> None:
    click.echo(msg, err=True)


def _cost_table(cost: dict) -> None:
    """Two narrow tables (they fit 80 columns): the estimate at the cheapest choice, then dollars per cloud."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    t = Table(title=f"skyt1 cost: {cost['recipe']}", box=box.SIMPLE_HEAD)
    for col in ("phase", "hours", "GPU-h", "API $", "cheapest", "$"):
        t.add_column(col, justify="left" if col in ("phase", "cheapest") else "right")
    for p in cost["phases"]:
        t.add_row(p["name"], f"{p['hours']:.1f}", f"{p['gpu_hours']:.0f}", f"{p['api_usd']:.0f}",
                  f"{p['cloud']}{' spot' if p['spot'] else ''}", f"{p['usd']:,.0f}")
    t.add_row("total", f"{cost['total_hours']:.1f}", f"{cost['total_gpu_hours']:.0f}", f"{cost['api_usd']:.0f}",
              "", f"{cost['total_usd']:,.0f}", style="bold")
    console.print(t)

    clouds = [r["cloud"] for r in cost["prices"]]
    per_cloud = Table(title="dollars per cloud (on demand / spot)", box=box.SIMPLE_HEAD)
    per_cloud.add_column("phase")
    for c in clouds:
        per_cloud.add_column(f"{c}", justify="right")
        per_cloud.add_column(f"{c} spot", justify="right")
    for p in cost["phases"]:
        row = [p["name"]]
        for c in clouds:
            v = p["by_cloud"][c]
            row += [f"{v['on_demand_usd']:,.0f}", "-" if v["spot_usd"] is None else f"{v['spot_usd']:,.0f}"]
        per_cloud.add_row(*row)
    console.print(per_cloud)
    for r in cost["prices"]:
        spot = "no spot" if r["spot"] is None else f"spot ${r['spot']:.2f}"
        console.print(f"  {r['cloud']} {r['instance_type']}: ${r['on_demand']:.2f}/GPU-h on demand, {spot} ({r['source']})")
    budget = cost["budget_usd"]
    console.print(f"  budget_usd: {'none' if budget is None else f'${budget:,.0f}'}; spot hours include expected "
                  "preemption overhead; assumptions: the recipe's `cost:` section")


def _estimate(recipe, **kw) -> dict:
    from skyt1.cloud.cost import CostError, estimate

    try:
        return estimate(recipe, **kw)
    except CostError as e:
        raise click.ClickException(str(e)) from None


@click.command()
@recipe_option
@set_option
@click.option("--cloud", help="Price on this cloud only (e.g. lambda, aws).")
@click.option("--spot", is_flag=True, help="Use spot prices where the cloud sells spot (with preemption overhead).")
@click.option("--gpu-hour-price", type=click.FloatRange(0, min_open=True),
              help="Price of one GPU-hour in USD, instead of the price table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def cost(recipe_path, overrides, cloud, spot, gpu_hour_price, as_json):
    """Estimate hours, GPU-hours and dollars of every phase, per cloud, on demand and spot."""
    recipe = load_or_exit(recipe_path, overrides)
    result = _estimate(recipe, cloud=cloud, spot=spot, gpu_hour_price=gpu_hour_price)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _cost_table(result)


def _parse_envs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--env")
        out[key] = value
    return out


bucket_option = click.option("--bucket", envvar="BUCKET", help="S3 bucket holding the run (env BUCKET).")
run_name_option = click.option("--run-name", help="Run directory inside the bucket (default: the recipe name).")
env_option = click.option("--env", "envs", multiple=True, metavar="K=V", help="Extra task env (repeatable).")


def _managed_jobs():
    try:
        from skyt1.cloud.sky import ManagedJobs
    except ImportError as e:
        raise click.ClickException(f"launching needs SkyPilot ({e}); pip install 'skyt1[sky]'") from None
    return ManagedJobs()


@click.command()
@click.argument("phase")
@recipe_option
@bucket_option
@run_name_option
@env_option
@click.option("--detach", is_flag=True, help="Return after launching instead of waiting for the job.")
def launch(phase, recipe_path, bucket, run_name, envs, detach):
    """Launch one phase as a SkyPilot managed job (sky_tasks/PHASE.yaml) and wait for it."""
    from skyt1.cloud.sky import SkyError, phase_envs, task_path

    recipe = load_or_exit(recipe_path)
    if not bucket:
        raise click.ClickException("--bucket (or env BUCKET) is required: the S3 bucket the run lives in")
    run_name = run_name or recipe.name
    try:
        task_path(phase)
        jobs = _managed_jobs()
        job_id = jobs.launch(phase, phase_envs(recipe_path, bucket, run_name, _parse_envs(envs)),
                             f"skyt1-{run_name}-{phase}")
        _err(f"[{phase}] managed job {job_id}; logs: sky jobs logs {job_id}")
        if detach:
            return
        status = jobs.wait(job_id, _err)
    except SkyError as e:
        raise click.ClickException(str(e)) from None
    if status != "SUCCEEDED":
        raise click.ClickException(f"[{phase}] managed job {job_id} ended {status}; see `sky jobs logs {job_id}`")


def _confirm_or_refuse(yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.ClickException(
            "refusing to start without confirmation: no terminal to ask on; pass --yes (make reproduce YES=1) "
            "after reading the estimate above"
        )
    if not click.confirm("Start?", default=False, err=True):
        raise click.ClickException("not started")


@click.command()
@recipe_option
@set_option
@click.option("--local", is_flag=True, help="Run the phases in this process instead of on the cloud.")
@click.option("--run-dir", help="Local run directory for --local (default: runs/<recipe name>).")
@bucket_option
@run_name_option
@env_option
@click.option("--phases", help="Comma-separated phases to run (default: all).")
@click.option("--force", is_flag=True, help="Redo phases even when their manifest matches.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def reproduce(recipe_path, overrides, local, run_dir, bucket, run_name, envs, phases, force, yes):
    """Run the whole recipe: cost estimate, budget check, confirmation, then every phase in order."""
    from skyt1.cloud.pipeline import (
        ALL_PHASES,
        Budget,
        BudgetError,
        PipelineError,
        check_phases,
        reproduce_cloud,
    )

    recipe = load_or_exit(recipe_path, overrides)
    try:
        selected = check_phases(phases.split(",") if phases else list(ALL_PHASES))
    except PipelineError as e:
        raise click.BadParameter(str(e), param_hint="--phases") from None
    cost = _estimate(recipe, phases=selected)
    _cost_table(cost)
    # Local runs buy only API calls; cloud runs buy machines too (priced on demand: the dearest candidate).
    planned = cost["api_usd"] if local else cost["total_usd"]
    try:
        Budget(recipe.budget_usd).check(planned, f"start {recipe.name}")
    except BudgetError as e:
        raise click.ClickException(str(e)) from None
    _err(f"estimate: ${planned:,.2f}{' (API calls; compute is this machine)' if local else ''}; "
         f"budget ${recipe.budget_usd if recipe.budget_usd is not None else 'none'}")
    _confirm_or_refuse(yes)
    try:
        if local:
            from skyt1.cloud.pipeline import run_local
            from skyt1.store import RunDir

            run_local(recipe, RunDir(run_dir or f"runs/{recipe.name}"), selected, force=force, progress=_err)
        else:
            from skyt1.cloud.sky import SkyError, phase_envs

            bucket = bucket or recipe.cloud.bucket
            if not bucket:
                raise click.ClickException("a cloud run needs --bucket (env BUCKET, or cloud.bucket in the recipe); "
                                           "or pass --local to run here")
            name = run_name or recipe.name
            try:
                reproduce_cloud(recipe, root=f"s3://{bucket}", run_name=name, phases=selected,
                                launcher=_managed_jobs(), envs=phase_envs(recipe_path, bucket, name, _parse_envs(envs)),
                                force=force, progress=_err)
            except SkyError as e:
                raise click.ClickException(str(e)) from None
    except PipelineError as e:
        raise click.ClickException(str(e)) from None
