"""Check the SkyPilot task YAMLs offline, as `skyt1 launch --dryrun` does (skyt1.cloud.plan): SkyPilot's own
loader, secret resolution and bucket-name rules, skyt1's invariants, and SkyPilot's optimizer on a pinned
catalog, for every task file at once; unset secrets are reported, not counted as problems.

    python -m skyt1.cloud.validate --catalog ../shared/data/skypilot_catalog_v8 --recipe recipes/sky-t1-32b-preview.yaml

Prints one JSON object; exit status 1 when any task has a problem. Runs SkyPilot in this process with a
private runtime dir, so call it as a subprocess from anything that must keep its own HOME.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from skyt1.cloud.sky import TASKS_DIR
from skyt1.phases import TASK_PHASES

CHECK_ENVS = {"BUCKET": "skyt1-validate", "RUN_NAME": "validate"}
PUBLISHED = Path(__file__).resolve().parents[2] / "recipes" / "sky-t1-32b-preview.yaml"


def check(tasks: dict[str, Path], recipe_path: str, catalog: str | None) -> dict:
    from skyt1.cloud import plan
    from skyt1.cloud.cost import estimate, jobs
    from skyt1.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    clouds, source = plan.setup_catalog(catalog)
    usd = {p["name"]: p["usd"] for p in estimate(recipe)["phases"]}
    out: dict = {"catalog": source, "tasks": {}, "ok": True}
    for key, path in tasks.items():
        phase = key.split(":")[0]  # PHASE or PHASE:LABEL (several variants of one phase)
        pp = plan.plan_phase(recipe, phase, path=path, envs={"RECIPE": str(recipe_path), **CHECK_ENVS},
                             explicit_secrets=[], num_jobs=jobs(recipe, phase), usd=usd.get(phase, 0.0),
                             clouds=clouds)
        out["tasks"][key] = asdict(pp)
        out["ok"] &= not pp.problems
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", help="a SkyPilot v8 catalog tree to use instead of ~/.sky (offline)")
    ap.add_argument("--recipe", default=str(PUBLISHED), help="price every task with this recipe's runtime model")
    ap.add_argument("--task", action="append", default=[], metavar="PHASE[:LABEL]=PATH",
                    help="check this YAML as PHASE, reported under PHASE:LABEL (default: every sky_tasks/<phase>.yaml)")
    ap.add_argument("--output", help="write the JSON here instead of stdout (SkyPilot prints to stdout too)")
    args = ap.parse_args(argv)
    tasks = {p: TASKS_DIR / f"{p}.yaml" for p in TASK_PHASES}
    if args.task:
        tasks = {k: Path(v) for k, _, v in (t.partition("=") for t in args.task)}
    result = check(tasks, args.recipe, args.catalog)
    text = json.dumps(result, indent=2, default=str)
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
