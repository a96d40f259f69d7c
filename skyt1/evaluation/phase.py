"""The pipeline's eval phase: the recipe's `eval:` section run against the trained model (or any model).

`engine.model: trained` means the run's own `RUN/train/final`. Results go to `RUN/eval/` in the layout of
`skyt1 eval --output-dir` (see skyt1.evaluation.runner); the phase is complete when every sample of every
benchmark exists, and its manifest carries the scores. `--shard I/N` splits the problems over N machines;
the shard that completes the last sample writes the summaries and the manifest.

Prompts: the user turns are the training ones (`prompts.user`) unless `eval.prompt_mode` says otherwise;
the trained model is evaluated with its training system prompt (`prompts.system`) unless
`eval.system_prompt` names another; other models get their family's (`system_prompt_for`).
"""

from __future__ import annotations

from functools import partial

from skyt1.cloud.staging import staged_model
from skyt1.data import prompts
from skyt1.data.benchmarks import load_tasks
from skyt1.evaluation.runner import EvalError, Sampling, Scoring, evaluate
from skyt1.protocol import PhaseRun, Shard, run_phase
from skyt1.recipe import Engine as EngineConfig
from skyt1.recipe import Recipe
from skyt1.store import RunDir, StoreError

NAME = "eval"
TRAINED = "trained"


def engine_config(recipe: Recipe) -> EngineConfig:
    return recipe.eval.engine or EngineConfig(backend="vllm", model=TRAINED)


def system_prompt(recipe: Recipe, model: str) -> str | None:
    choice = recipe.eval.system_prompt
    if choice != "auto":
        return prompts.system_prompt(choice)
    if engine_config(recipe).model == TRAINED:
        return prompts.system_prompt(recipe.prompts.system)
    return prompts.system_prompt_for(model)


def eval_tasks(recipe: Recipe, system: str | None) -> tuple[list, dict[str, str]]:
    """The recipe's benchmarks as tasks with their prompts (and those it skipped, with why)."""
    ev = recipe.eval
    tasks, skipped = load_tasks(ev.benchmarks, data_dir=recipe.resolve_path(ev.data_dir), limit=ev.limit,
                                limits=ev.limits,
                                prompt_mode=ev.prompt_mode or recipe.prompts.user, system_prompt=system,
                                skip_unavailable=ev.skip_unavailable)
    if not tasks:
        raise EvalError(f"no benchmark of eval.benchmarks could be loaded: {skipped}")
    return tasks, skipped


def evaluate_engine(recipe: Recipe, engine, tasks: list, skipped: dict[str, str], out, *, progress: bool = True,
                    shard: Shard = Shard(), locked: bool = False) -> dict:
    """The recipe's eval settings (sampling, n, scoring) on `tasks` against a running engine, into `out`: the
    phase's trained model, and the demo's base model under the same settings (skyt1.demo)."""
    ev = recipe.eval
    s = ev.sampling
    sampling = Sampling(s.temperature, s.top_p, s.max_tokens, s.seed)
    n = {t.name: ev.n.get(t.name, s.n) for t in tasks}
    f = recipe.filter
    scoring = Scoring(f.workers, f.code_timeout_s, f.memory_mb, f.allow_unsandboxed)
    return evaluate(engine, tasks, output_dir=out, n=n, sampling=sampling, scoring=scoring, progress=progress,
                    skipped=skipped, extra_config={"recipe": recipe.name}, shard=shard, locked=locked)


def run(recipe: Recipe, run: RunDir, *, force: bool = False, progress: bool = True, shard: str | None = None) -> dict:
    cfg = engine_config(recipe)
    part = Shard.parse(shard)
    inputs = {} if cfg.model == TRAINED else {"model": f"{cfg.model}@{cfg.revision or 'main'}"}
    return run_phase(NAME, recipe, run, partial(_evaluate, part=part, progress=progress), force=force, inputs=inputs,
                     shard=part)


def _evaluate(p: PhaseRun, part: Shard, progress: bool) -> dict:
    recipe, run = p.recipe, p.run
    ev, cfg = recipe.eval, engine_config(recipe)
    trained = cfg.model == TRAINED
    if trained:
        try:
            model = str(run.local_path("train/final"))
        except StoreError as e:
            raise EvalError(f"{e}: copy {run.uri}/train/final to a local disk (or mount the bucket) first") from None
        # On a node the run is a bucket mount: $SKYT1_MODEL_CACHE serves a local-disk copy made once
        model = staged_model(model, p.inputs.get("train") or "final")
    else:
        model = recipe.resolve_path(cfg.model) if cfg.model.startswith(".") else cfg.model
    tasks, skipped = eval_tasks(recipe, system_prompt(recipe, model))
    from skyt1.engines import make_engine

    with make_engine(cfg, model=model) as engine:
        summary = evaluate_engine(recipe, engine, tasks, skipped, p.dir, progress=progress, shard=part, locked=True)
    missing = sum(b["missing_samples"] for b in summary["benchmarks"].values())
    counts = {name: {"samples": b["scores"]["samples"], "accuracy": b["scores"]["accuracy"],
                     "stderr": b["scores"]["stderr"], "missing": b["missing_samples"]}
              for name, b in summary["benchmarks"].items()}
    counts.update({name: {"skipped": why} for name, why in skipped.items()})
    outputs = {t.name: p.dir.output_digest(t.name) for t in tasks}
    config = {"eval": ev.model_dump(mode="json", exclude={"engine"}), "engine": cfg.model_dump(mode="json"),
              "model": cfg.model if trained else model, "shard": str(part)}
    return p.finish(counts=counts, config=config, outputs=outputs, pending=missing, what="sample(s)",
                    shard_pending=summary["missing_in_shard"], see=f"{p.dir.uri}/*/summary.json")
