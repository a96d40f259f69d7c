"""Check the SkyPilot task YAMLs offline: SkyPilot's own loader, skyt1's invariants, SkyPilot's optimizer on
a pinned catalog, and that sky_tasks/pipeline.yaml is the phase tasks in order.

    python -m skyt1.cloud.validate --catalog ../shared/data/skypilot_catalog_v8 --recipe recipes/sky-t1-32b-preview.yaml
    python -m skyt1.cloud.validate --write-pipeline      # regenerate sky_tasks/pipeline.yaml

Prints one JSON object; exit status 1 when any task has a problem. Runs SkyPilot in this process with a
private runtime dir, so call it as a subprocess from anything that must keep its own HOME.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from skyt1.cloud.sky import TASKS_DIR
from skyt1.phases import TASK_PHASES as PHASE_ORDER

PIPELINE = TASKS_DIR / "pipeline.yaml"
PIPELINE_HEADER = """\
# All of Sky-T1 as one managed pipeline: the phase tasks of this directory, in order, sharing one bucket.
# Generated from the phase YAMLs by `python -m skyt1.cloud.validate --write-pipeline`; edit those instead.
#
#   sky jobs launch sky_tasks/pipeline.yaml --env BUCKET=my-bucket --env RUN_NAME=sky-t1-a
#
# Each phase skips itself when its manifest in the bucket is complete, so relaunching resumes the run.
name: skyt1-pipeline
"""
CHECK_ENVS = {"BUCKET": "skyt1-validate", "RUN_NAME": "validate"}


def render_pipeline() -> str:
    docs = [PIPELINE_HEADER] + [(TASKS_DIR / f"{p}.yaml").read_text() for p in PHASE_ORDER]
    return "---\n".join(docs)


def check(tasks: dict[str, Path], recipe_path: str | None, clouds: list[str]) -> dict:
    from skyt1.cloud import sky as skyglue

    skyglue.enable_clouds_offline(clouds)
    recipe = None
    if recipe_path:
        from skyt1.recipe import load_recipe

        recipe = load_recipe(recipe_path)
    out: dict = {"tasks": {}, "ok": True}
    for key, path in tasks.items():
        phase = key.split(":")[0]  # PHASE or PHASE:LABEL (several variants of one phase)
        entry: dict = {"path": str(path)}
        try:
            loaded = skyglue.load_tasks(path, CHECK_ENVS)
            entry["problems"] = [p for t in loaded for p in skyglue.check_task(t, phase)]
            task = loaded[0]
            entry["envs"] = dict(task.envs)
            entry["secrets"] = sorted(task.secrets)
            entry["candidates"] = sorted(str(r) for r in skyglue._candidates(task))
            if recipe is not None and phase in PHASE_ORDER:
                best, usd = skyglue.optimize_offline(task, skyglue.time_estimator(recipe, phase))
                entry["best"] = {"cloud": str(best.cloud).lower(), "instance_type": best.instance_type,
                                 "spot": bool(best.use_spot), "usd": usd}
        except Exception as e:  # reported per task: one bad YAML must not hide the others
            entry["problems"] = entry.get("problems", []) + [f"{type(e).__name__}: {e}"]
        out["tasks"][key] = entry
        out["ok"] &= not entry["problems"]
    if PIPELINE.exists():
        try:
            names = [t.name for t in skyglue.load_tasks(PIPELINE, CHECK_ENVS)]
            problems = [] if names == [f"skyt1-{p}" for p in PHASE_ORDER] else [f"tasks out of order: {names}"]
        except Exception as e:
            names, problems = [], [f"{type(e).__name__}: {e}"]
        if PIPELINE.read_text() != render_pipeline():
            problems.append("pipeline.yaml is stale: run `python -m skyt1.cloud.validate --write-pipeline`")
        out["pipeline"] = {"tasks": names, "problems": problems}
        out["ok"] &= not problems
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", help="a SkyPilot v8 catalog tree to use instead of ~/.sky (offline)")
    ap.add_argument("--clouds", default="aws,lambda", help="clouds the optimizer may use")
    ap.add_argument("--recipe", help="price every task with this recipe's runtime model")
    ap.add_argument("--task", action="append", default=[], metavar="PHASE[:LABEL]=PATH",
                    help="check this YAML as PHASE, reported under PHASE:LABEL (default: every sky_tasks/<phase>.yaml)")
    ap.add_argument("--output", help="write the JSON here instead of stdout (SkyPilot prints to stdout too)")
    ap.add_argument("--write-pipeline", action="store_true", help="regenerate sky_tasks/pipeline.yaml and exit")
    args = ap.parse_args(argv)
    if args.write_pipeline:
        PIPELINE.write_text(render_pipeline())
        print(f"wrote {PIPELINE}")
        return 0
    if args.catalog:
        from skyt1.cloud.sky import use_offline_catalog

        use_offline_catalog(args.catalog, tempfile.mkdtemp(prefix="skyt1-sky-"))
    tasks = {p: TASKS_DIR / f"{p}.yaml" for p in PHASE_ORDER}
    if args.task:
        tasks = {k: Path(v) for k, _, v in (t.partition("=") for t in args.task)}
    result = check(tasks, args.recipe, args.clouds.split(","))
    text = json.dumps(result, indent=2, default=str)
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
