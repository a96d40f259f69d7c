"""`skyt1 cost`, `skyt1 launch`, `skyt1 reproduce`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


def _parse_pairs(values: tuple[str, ...], hint: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=hint)
        out[key] = value
    return out


def _parse_secrets(values: tuple[str, ...]) -> list[tuple[str, str]]:
    """`--secret NAME` (the value of $NAME here) or `--secret NAME=VALUE`, as `sky jobs launch` reads them."""
    import os

    out = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            if not os.environ.get(name):
                raise click.BadParameter(f"{name} is not set in this environment", param_hint="--secret")
            value = os.environ[name]
        out.append((name, value))
    return out


def _parse_jobs(values: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for phase, n in _parse_pairs(values, "--num-jobs").items():
        if not n.isdigit() or int(n) < 1:
            raise click.BadParameter(f"{phase}={n}: expected PHASE=N with N >= 1", param_hint="--num-jobs")
        out[phase] = int(n)
    return out


bucket_option = click.option("--bucket", envvar="BUCKET", help="S3 bucket holding the run (env BUCKET).")
run_name_option = click.option("--run-name", help="Run directory inside the bucket (default: the recipe name).")
env_option = click.option("--env", "envs", multiple=True, metavar="K=V", help="Extra task env (repeatable).")
secret_option = click.option(
    "--secret", "secrets", multiple=True, metavar="NAME[=VALUE]",
    help="Pass a secret to the task (repeatable): NAME takes $NAME from here. The secrets the recipe needs "
         "are passed from this environment without it.")
dryrun_option = click.option(
    "--dryrun", is_flag=True,
    help="Run SkyPilot's launch-side checks here and print the plan; provision nothing. Exits non-zero "
         "naming what is missing.")
catalog_option = click.option(
    "--catalog", envvar="SKYT1_SKY_CATALOG", type=click.Path(file_okay=False, exists=True),
    help="A SkyPilot v8 catalog tree for --dryrun's offline checks (env SKYT1_SKY_CATALOG) [default: "
         "SkyPilot's own catalog and `sky check` clouds].")


def _managed_jobs():
    try:
        from skyt1.cloud.sky import ManagedJobs
    except ImportError as e:
        raise click.ClickException(f"launching needs SkyPilot ({e}); pip install 'skyt1[sky]'") from None
    return ManagedJobs()


def _recipe_env(recipe_path: str, local: bool) -> str:
    """The RECIPE a node gets: a path inside the synced workdir (this directory), relative to it. A local
    node is this machine, so a recipe the workdir copy leaves out is passed by its absolute path."""
    path = Path(recipe_path).resolve()
    if path.is_relative_to(Path.cwd()):
        relative = str(path.relative_to(Path.cwd()))
        if not local:
            return relative
        from skyt1.cloud.plan import synced_problems

        return str(path) if synced_problems(relative) else relative
    if local:
        return str(path)
    raise click.ClickException(f"{recipe_path} is outside this directory, the workdir SkyPilot syncs to the "
                               "nodes; put the recipe under it (e.g. recipes/) and launch from here")


def _task_target(target: str) -> tuple[str, Path]:
    """PHASE or TASK_FILE -> (phase, task file)."""
    import yaml

    from skyt1.cloud.sky import SkyError, task_path
    from skyt1.phases import TASK_PHASES

    if target in TASK_PHASES:
        return target, task_path(target)
    path = Path(target)
    if not path.is_file():
        raise click.BadParameter(f"{target!r} is neither a phase ({', '.join(TASK_PHASES)}) nor a task file",
                                 param_hint="PHASE|TASK_FILE")
    try:
        name = str((next(d for d in yaml.safe_load_all(path.read_text()) if d) or {}).get("name", ""))
    except (yaml.YAMLError, StopIteration) as e:
        raise click.ClickException(f"{path}: not a task YAML ({SkyError.__name__}: {e})") from None
    phase = name.removeprefix("skyt1-")
    if phase not in TASK_PHASES:
        raise click.ClickException(f"{path}: task name {name!r} is not skyt1-<phase> for a phase of "
                                   f"{', '.join(TASK_PHASES)}")
    return phase, path


def _refuse_unplanned(plan) -> None:
    reason = plan.reason()
    if reason:
        raise click.ClickException(reason)


@click.command()
@click.argument("target", metavar="PHASE|TASK_FILE")
@recipe_option
@bucket_option
@run_name_option
@env_option
@secret_option
@click.option("--num-jobs", type=click.IntRange(min=1), default=None,
              help="Split the phase over N managed jobs (distill, eval) [default: the recipe's "
                   "cloud.resources.PHASE.num_jobs].")
@dryrun_option
@catalog_option
@click.option("--local", is_flag=True, help="Run the task here as a SkyPilot node would (setup, then run).")
@click.option("--job-rank", type=click.IntRange(min=0), default=None,
              help="--local: run only job I of --num-jobs (default: every job, one after another).")
@click.option("--bucket-dir", type=click.Path(file_okay=False),
              help="--local: the directory that plays the bucket [default: runs/local-buckets/BUCKET].")
@click.option("--node-dir", type=click.Path(file_okay=False),
              help="--local: the directory that plays the node's HOME [default: runs/local-nodes/PHASE-RANK].")
@click.option("--detach", is_flag=True, help="Return after launching instead of waiting for the job.")
def launch(target, recipe_path, bucket, run_name, envs, secrets, num_jobs, dryrun, catalog, local, job_rank,
           bucket_dir, node_dir, detach):
    """Launch one phase (sky_tasks/PHASE.yaml, or a task file) as SkyPilot managed job(s) and wait.

    \b
    --dryrun    SkyPilot's launch-side checks and the plan; nothing is provisioned.
    --local     the task's setup and run here, as a node would run them: SkyPilot's loader, the task's envs
                and secrets, the SKYPILOT_* variables, the bucket as a local directory.
    """
    from skyt1.cloud import secrets as secret_rules
    from skyt1.cloud.sky import SkyError, phase_envs

    phase, path = _task_target(target)
    recipe = load_or_exit(recipe_path)
    run_name = run_name or recipe.name
    extra, explicit = _parse_pairs(envs, "--env"), _parse_secrets(secrets)
    if job_rank is not None and not local:
        raise click.BadParameter("only with --local (a managed launch starts every job)", param_hint="--job-rank")
    try:
        if local:
            _launch_local(recipe, phase, path, recipe_env=_recipe_env(recipe_path, True), bucket=bucket or "skyt1-local",
                          run_name=run_name, extra=extra, explicit=explicit, num_jobs=num_jobs, job_rank=job_rank,
                          bucket_dir=bucket_dir, node_dir=node_dir)
            return
        if not bucket:
            raise click.ClickException("--bucket (or env BUCKET) is required: the S3 bucket the run lives in")
        from skyt1.cloud.plan import make_plan, render

        recipe_env = _recipe_env(recipe_path, False)
        plan = make_plan(recipe, recipe_env, [phase], bucket=bucket, run_name=run_name, extra_envs=extra,
                         explicit_secrets=explicit, num_jobs={phase: num_jobs} if num_jobs else None,
                         task_files={phase: path}, catalog=catalog if dryrun else None)
        click.echo(render(plan))
        _refuse_unplanned(plan)
        if dryrun:
            return
        jobs = _managed_jobs()
        ids = jobs.launch(phase, phase_envs(recipe_env, bucket, run_name, extra), f"skyt1-{run_name}-{phase}",
                          secrets=secret_rules.for_launch(recipe, phase, path, explicit), num_jobs=plan.phases[0].jobs,
                          task_file=path)
        _err(f"[{phase}] managed job(s) {', '.join(map(str, ids))}; logs: sky jobs logs {ids[0]}")
        if detach:
            return
        statuses = {i: jobs.wait(i, _err) for i in ids}
    except SkyError as e:
        raise click.ClickException(str(e)) from None
    failed = {i: s for i, s in statuses.items() if s != "SUCCEEDED"}
    if failed:
        raise click.ClickException(f"[{phase}] managed job(s) ended {failed}; see `sky jobs logs JOB_ID`")


def _launch_local(recipe, phase, path, *, recipe_env, bucket, run_name, extra, explicit, num_jobs, job_rank,
                  bucket_dir, node_dir) -> None:
    from skyt1 import phases
    from skyt1.cloud import secrets as secret_rules
    from skyt1.cloud.cost import jobs
    from skyt1.cloud.local import LocalNode, MissingSecrets, run_task
    from skyt1.cloud.plan import SHARDABLE
    from skyt1.cloud.sky import phase_envs

    n = num_jobs or jobs(recipe, phase)
    if n > 1 and not phases.get(phase).shardable:
        raise click.BadParameter(f"{phase} cannot be split over jobs (only {', '.join(SHARDABLE)} can)",
                                 param_hint="--num-jobs")
    if job_rank is not None and job_rank >= n:
        raise click.BadParameter(f"{job_rank} is not below --num-jobs {n}", param_hint="--job-rank")
    secrets_out = secret_rules.for_launch(recipe, phase, path, explicit)
    envs = phase_envs(recipe_env, bucket, run_name, extra)
    for rank in [job_rank] if job_rank is not None else range(n):
        node = LocalNode(node_dir=Path(node_dir or f"runs/local-nodes/{phase}-{rank}"),
                         bucket_dir=Path(bucket_dir or f"runs/local-buckets/{bucket}"))
        try:
            rc = run_task(path, envs, secrets_out, node, job_rank=rank, num_jobs=n, say=_err)
        except MissingSecrets as e:
            raise click.ClickException(secret_rules.missing_message(recipe, [phase], e.names)) from None
        if rc != 0:
            raise click.ClickException(f"[{phase}] job {rank} of {n} failed (exit status {rc}); its output is above, "
                                       f"the node is {node.node_dir}")
    _err(f"[{phase}] done: {n if job_rank is None else 1} job(s); the bucket is {node.bucket_dir}")


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


NODE_BLIND = ("cloud.", "cost.", "budget_usd")  # --set keys that matter only here, not to the phases on nodes


@click.command()
@recipe_option
@set_option
@click.option("--local", is_flag=True, help="Run the phases in this process instead of on the cloud.")
@click.option("--run-dir", help="Local run directory for --local (default: runs/<recipe name>).")
@bucket_option
@run_name_option
@env_option
@secret_option
@click.option("--num-jobs", "num_jobs", multiple=True, metavar="PHASE=N",
              help="Split distill or eval over N managed jobs (repeatable) [default: the recipe's "
                   "cloud.resources.PHASE.num_jobs].")
@click.option("--phases", help="Comma-separated phases to run (default: all).")
@click.option("--force", is_flag=True, help="Redo phases even when their manifest matches.")
@dryrun_option
@catalog_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def reproduce(recipe_path, overrides, local, run_dir, bucket, run_name, envs, secrets, num_jobs, phases, force,
              dryrun, catalog, yes):
    """Run the whole recipe: cost estimate, budget check, confirmation, then every phase in order.

    On the cloud each phase is its task in sky_tasks/ launched as SkyPilot managed job(s), after SkyPilot's
    launch-side checks of every phase have passed (--dryrun stops there).
    """
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
    jobs = _parse_jobs(num_jobs)
    if local and (dryrun or jobs):
        raise click.UsageError("--dryrun and --num-jobs are for cloud runs, not --local")
    if not local:
        blind = [o.partition("=")[0] for o in overrides if not o.partition("=")[0].startswith(NODE_BLIND)]
        if blind:
            raise click.BadParameter(f"{blind[0]} would not reach the nodes (they read the recipe file); edit "
                                     f"{recipe_path} instead", param_hint="--set")
        from skyt1.cloud.plan import recipe_with_jobs

        unknown = [p for p in jobs if p not in selected]
        if unknown:
            raise click.BadParameter(f"{unknown[0]} is not a selected phase", param_hint="--num-jobs")
        recipe = recipe_with_jobs(recipe, jobs)
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
    if local:
        _confirm_or_refuse(yes)
        from skyt1.cloud.pipeline import run_local
        from skyt1.store import RunDir

        try:
            run_local(recipe, RunDir(run_dir or f"runs/{recipe.name}"), selected, force=force, progress=_err)
        except PipelineError as e:
            raise click.ClickException(str(e)) from None
        return
    bucket = bucket or recipe.cloud.bucket
    if not bucket:
        raise click.ClickException("a cloud run needs --bucket (env BUCKET, or cloud.bucket in the recipe); "
                                   "or pass --local to run here")
    from skyt1.cloud.plan import make_plan, render
    from skyt1.cloud.sky import SkyError, phase_envs

    name = run_name or recipe.name
    recipe_env = _recipe_env(recipe_path, False)
    extra, explicit = _parse_pairs(envs, "--env"), _parse_secrets(secrets)
    tasks = [p for p in selected if p != "report"]
    try:
        plan = make_plan(recipe, recipe_env, tasks, bucket=bucket, run_name=name, extra_envs=extra,
                         explicit_secrets=explicit, catalog=catalog if dryrun else None)
    except SkyError as e:
        raise click.ClickException(str(e)) from None
    click.echo(render(plan))
    _refuse_unplanned(plan)
    if dryrun:
        return
    _confirm_or_refuse(yes)
    try:
        reproduce_cloud(recipe, root=f"s3://{bucket}", run_name=name, phases=selected, launcher=_managed_jobs(),
                        envs=phase_envs(recipe_env, bucket, name, extra), secrets=explicit, force=force,
                        progress=_err)
    except (SkyError, PipelineError) as e:
        raise click.ClickException(str(e)) from None
