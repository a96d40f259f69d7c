"""The pipeline's eval phase: the recipe's `eval:` section run against the trained model (or any model).

`engine.model: trained` means the run's own `RUN/train/final`. Results go to `RUN/eval/` in the layout of
`skyt1 eval --output-dir` (samples.jsonl per benchmark, summary.json, summary.md); the phase is complete
when every sample of every benchmark exists, and its manifest carries the scores.
"""

from __future__ import annotations

import shutil
import time

from skyt1.data.benchmarks import load_tasks
from skyt1.data.prompts import SKYT1_SYSTEM_PROMPT, system_prompt_for
from skyt1.evaluation.runner import EvalError, Sampling, Scoring, evaluate
from skyt1.recipe import Engine as EngineConfig
from skyt1.recipe import Recipe
from skyt1.store import RunDir, canonical_digest

NAME = "eval"


def _model(recipe: Recipe, run: RunDir) -> tuple[EngineConfig, str, dict]:
    """The engine config, the model to load, and the phase's input digests."""
    cfg = recipe.eval.engine or EngineConfig(backend="vllm", model="trained")
    if cfg.model != "trained":
        return cfg, recipe.resolve_path(cfg.model) if cfg.model.startswith(".") else cfg.model, {
            "model": f"{cfg.model}@{cfg.revision or 'main'}"}
    train = run.phase("train")
    manifest = train.manifest()
    if manifest is None:
        raise EvalError(
            f"eval.engine.model is 'trained' but {train.uri} has no _DONE.json: run `skyt1 train` first, or set "
            "eval.engine.model to a hub id or a local model directory"
        )
    return cfg, str(run.local_path("train/final")), {"train": manifest["outputs"]["final"]}


def config_digest(recipe: Recipe) -> str:
    """What the phase's output depends on in the recipe (compared with its manifest to skip it)."""
    return recipe.digest("eval")


def evaluate_engine(recipe: Recipe, engine, out, *, system_prompt: str | None, force: bool = False,
                    progress: bool = True) -> tuple[dict, list, dict]:
    """The recipe's eval section (benchmarks, prompts, sampling, n, scoring) against one running engine,
    written to the folder `out`: the eval phase's trained model, and the demo's base model with the same
    settings. Returns (summary, tasks, skipped)."""
    ev = recipe.eval
    tasks, skipped = load_tasks(ev.benchmarks, data_dir=recipe.resolve_path(ev.data_dir), limit=ev.limit,
                                prompt_mode=ev.prompt_mode, system_prompt=system_prompt,
                                skip_unavailable=ev.skip_unavailable)
    if force:
        for t in tasks:
            shutil.rmtree(out / t.name, ignore_errors=True)
    s = ev.sampling
    sampling = Sampling(s.temperature, s.top_p, s.max_tokens, s.seed)
    n = {t.name: ev.n.get(t.name, s.n) for t in tasks}
    scoring = Scoring(recipe.filter.workers, recipe.filter.code_timeout_s, recipe.filter.memory_mb)
    summary = evaluate(engine, tasks, output_dir=out, n=n, sampling=sampling, scoring=scoring,
                       progress=progress, skipped=skipped, extra_config={"recipe": recipe.name})
    if not summary["complete"]:
        missing = {k: v["missing_samples"] for k, v in summary["benchmarks"].items() if not v["complete"]}
        raise EvalError(f"eval incomplete, samples missing {missing} (engine errors, see {out}/*/summary.json); "
                        "run the same command again to generate them")
    return summary, tasks, skipped


def run(recipe: Recipe, run: RunDir, *, force: bool = False, progress: bool = True, **opts) -> dict:
    ev = recipe.eval
    cfg, model, inputs = _model(recipe, run)
    phase = run.phase(NAME)
    digest = config_digest(recipe)
    if not force and phase.is_complete(digest, inputs):
        return phase.manifest()
    t0 = time.time()
    out = run.local_path(NAME)  # eval appends to samples.jsonl: a local or mounted directory
    system_prompt = SKYT1_SYSTEM_PROMPT if cfg.model == "trained" else system_prompt_for(model)
    if force:
        phase.invalidate()
    from skyt1.engines import make_engine

    with make_engine(cfg, model=model) as engine:
        summary, tasks, skipped = evaluate_engine(recipe, engine, out, system_prompt=system_prompt, force=force,
                                                  progress=progress)
    counts = {name: {"samples": b["scores"]["samples"], "accuracy": b["scores"]["accuracy"],
                     "stderr": b["scores"]["stderr"]} for name, b in summary["benchmarks"].items()}
    counts.update({name: {"skipped": why} for name, why in skipped.items()})
    outputs = {t.name: canonical_digest(sorted((out / t.name / "samples.jsonl").read_text().splitlines()))
               for t in tasks}
    return phase.write_manifest(recipe_digest=digest, inputs=inputs, counts=counts, started_at=t0,
                                outputs=outputs, config={"eval": ev.model_dump(mode="json", exclude={"engine"}), "engine": cfg.model_dump(mode="json"),
                                                         "model": model})
