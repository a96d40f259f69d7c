"""`skyt1 eval`: benchmarks against any model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from skyt1.cli.common import force_option, load_or_exit, set_option

EVAL_HELP = """Evaluate a model on benchmarks: avg@n +- standard error, pass@k, per-sample JSONL.

\b
Two forms, one evaluation:
  skyt1 eval --recipe R --run-dir RUN [--shard I/N]      the recipe's eval section on the model RUN trained
                                                         (the pipeline's eval phase, results in RUN/eval)
  skyt1 eval --model M --benchmarks B [--output-dir D]   any model, every setting a flag (below)

\b
Benchmarks (comma separated): aime24 (alias aime), aime25, amc23, math500, gpqa_diamond (alias gpqa),
livecodebench[_easy|_medium|_hard][@release_vN] (default release_v2), olympiadbench, minerva, gsm8k,
mmlu, mmlu_pro, arc_c, humaneval, mbpp.

\b
Data: from the Hugging Face hub, or with --data-dir DIR (env SKYT1_DATA_DIR) from local files laid out as
DIR/math500/test.jsonl, DIR/aime24/test.jsonl, DIR/aime25/aime25.json, DIR/gpqa_diamond/gpqa_diamond.csv,
DIR/livecodebench/test*.jsonl, ... Every benchmark is loaded before generation starts.
GPQA is gated: without access (accepted terms at huggingface.co/datasets/Idavidrein/gpqa + HF_TOKEN, or a
local copy) the command fails before generating anything; --skip-unavailable evaluates the other
benchmarks instead and reports GPQA as skipped, with how to get it, in summary.json/summary.md.

\b
Sampling defaults follow the common protocol for reasoning models: --temperature 0.6 --top-p 0.95
--max-tokens 32768, n=1 (use --n 8..64 for AIME). Sample k of each problem uses seed --seed + k.
System prompt: the Sky-T1 prompt for Sky-T1 models, the Qwen CoT prompt for Qwen/QwQ models, none
otherwise; --system-prompt TEXT (or @FILE, or "none") overrides it.

\b
Results in --output-dir (or RUN/eval): <benchmark>/part-*.jsonl (samples, written as they finish),
<benchmark>/samples.jsonl (all samples, sorted, with the summary), <benchmark>/summary.json, summary.json,
summary.md. Re-running the same command resumes; --rescore re-scores existing samples. --shard I/N takes
shard I of N (by problem id): N machines split one evaluation, and the one that finishes last writes the
summaries.
"""


@click.command("eval", help=EVAL_HELP)
@click.option("--recipe", "-r", "recipe_path", type=click.Path(dir_okay=False),
              help="Recipe whose eval section to run (with --run-dir).")
@click.option("--run-dir", help="Run directory holding the trained model (with --recipe).")
@set_option
@force_option
@click.option("--benchmarks", "-b", help="Comma-separated benchmark names, e.g. aime,math500,gpqa.")
@click.option("--model", "-m", default=None, help="Hub id, local model directory, or served model name (openai).")
@click.option("--revision", default=None, help="Model revision (commit, tag or branch) to pin.")
@click.option("--backend", type=click.Choice(["vllm", "openai", "hf"]), default="vllm", show_default=True)
@click.option("--base-url", default=None, help="OpenAI-compatible server URL (openai backend).")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Name of the variable holding the API key (openai backend).")
@click.option("--n", "n", type=click.IntRange(min=1), default=1, show_default=True, help="Samples per problem.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first K problems per benchmark.")
@click.option("--output-dir", "-o", default=None, help="Results folder [default: eval-results/<model name>].")
@click.option("--data-dir", envvar="SKYT1_DATA_DIR", default=None, help="Read benchmarks from local files here.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.6, show_default=True)
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=32768, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Base seed; sample k uses seed + k.")
@click.option("--tensor-parallel-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--data-parallel-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float16", "float32", "half", "float"]),
              default="bfloat16", show_default=True)
@click.option("--max-model-len", type=click.IntRange(min=1), default=None, help="vLLM context length.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="hf backend batch.")
@click.option("--concurrency", type=click.IntRange(min=1), default=64, show_default=True,
              help="Requests in flight (openai backend).")
@click.option("--system-prompt", default=None, help='System prompt text, @FILE, or "none".')
@click.option("--prompt-mode", type=click.Choice(["skyt1", "default"]), default="skyt1", show_default=True,
              help="skyt1: the Sky-T1 evaluation prompts; default: plain instructions.")
@click.option("--rescore", is_flag=True, help="Re-score the samples in --output-dir; generate nothing.")
@click.option("--skip-unavailable", is_flag=True, help="Skip (and report) benchmarks that cannot be loaded.")
@click.option("--scoring-workers", type=click.IntRange(min=1), default=None, help="[default: all cores]")
@click.option("--allow-unsandboxed", is_flag=True,
              help="Code benchmarks: where bubblewrap cannot run, run programs with resource limits only "
                   "(on a cloud node this is refused without the flag).")
@click.option("--shard", default=None, metavar="I/N", help="Take shard I of N (0-based): N machines split the work.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def eval_cmd(ctx, recipe_path, run_dir, overrides, force, benchmarks, model, revision, backend, base_url, api_key_env,
             n, limit, output_dir, data_dir, temperature, top_p, max_tokens, seed, tensor_parallel_size,
             data_parallel_size, dtype, max_model_len, batch_size, concurrency, system_prompt, prompt_mode, rescore,
             skip_unavailable, scoring_workers, allow_unsandboxed, shard, quiet):
    from skyt1.protocol import Shard

    part = Shard.parse(shard)
    if recipe_path or run_dir:
        standalone = [f"--{p.name.replace('_', '-')}" for p in ctx.command.params
                      if p.name in _STANDALONE and ctx.get_parameter_source(p.name).name != "DEFAULT"]
        if not (recipe_path and run_dir):
            raise click.UsageError("--recipe and --run-dir go together (the recipe's eval of the model in RUN)")
        if standalone:
            raise click.UsageError(f"{', '.join(standalone)}: with --recipe the recipe's eval section sets these; "
                                   "change them with --set eval.<field>=VALUE")
        return _recipe_eval(recipe_path, run_dir, overrides, force, part, quiet)
    if overrides or force:
        raise click.UsageError("--set and --force go with --recipe/--run-dir")
    if not benchmarks:
        raise click.UsageError("--benchmarks is required (or --recipe with --run-dir)")
    from skyt1.data.benchmarks import load_tasks
    from skyt1.engines import make_engine
    from skyt1.evaluation.runner import Sampling, Scoring, evaluate
    from skyt1.recipe import Engine as EngineConfig

    if model is None and not rescore:
        raise click.UsageError("--model is required (except with --rescore)")
    if output_dir is None:
        if model is None:
            raise click.UsageError("--rescore needs --output-dir")
        output_dir = str(Path("eval-results") / Path(model.rstrip("/")).name)
    names = [b for b in benchmarks.split(",") if b.strip()]
    system = _system_prompt(system_prompt, model)
    tasks, skipped = load_tasks(names, data_dir=data_dir, limit=limit, prompt_mode=prompt_mode,
                                system_prompt=system, skip_unavailable=skip_unavailable)
    for name, reason in skipped.items():
        click.echo(f"skipping {name}: {reason}", err=True)
    if not tasks:
        raise click.ClickException("no benchmark could be loaded; nothing to evaluate")
    sampling = Sampling(temperature, top_p, max_tokens, seed)
    scoring = Scoring(workers=scoring_workers, allow_unsandboxed=allow_unsandboxed)
    if rescore:
        summary = evaluate(None, tasks, output_dir=output_dir, n=n, sampling=sampling, scoring=scoring,
                           rescore=True, skipped=skipped, progress=not quiet)
    else:
        cfg = EngineConfig(backend=backend, model=model, revision=revision, dtype=dtype,
                           tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                           max_model_len=max_model_len, base_url=base_url, api_key_env=api_key_env,
                           concurrency=concurrency, batch_size=batch_size)
        with make_engine(cfg) as engine:
            summary = evaluate(engine, tasks, output_dir=output_dir, n=n, sampling=sampling, scoring=scoring,
                               skipped=skipped, progress=not quiet, shard=part)
    _report(summary, output_dir)


_STANDALONE = {"benchmarks", "model", "revision", "backend", "base_url", "api_key_env", "n", "limit", "output_dir",
               "data_dir", "temperature", "top_p", "max_tokens", "seed", "tensor_parallel_size",
               "data_parallel_size", "dtype", "max_model_len", "batch_size", "concurrency", "system_prompt",
               "prompt_mode", "rescore", "skip_unavailable", "scoring_workers", "allow_unsandboxed"}


def _recipe_eval(recipe_path: str, run_dir: str, overrides: tuple[str, ...], force: bool, part, quiet: bool) -> None:
    from skyt1.evaluation import phase
    from skyt1.store import RunDir

    recipe = load_or_exit(recipe_path, overrides)
    run = RunDir(run_dir)
    manifest = phase.run(recipe, run, force=force, progress=not quiet, shard=str(part))
    if manifest.get("complete") is False:
        if "shard" in manifest:
            click.echo(manifest["message"], err=True)
            return
        raise click.ClickException(manifest["message"])
    out = run.phase(phase.NAME)
    click.echo(out.read_text("summary.md") if out.exists("summary.md") else json.dumps(manifest["counts"], indent=2))


def _report(summary: dict, output_dir: str) -> None:
    from skyt1.store import output_dir as open_output_dir

    if "shard" in summary and not summary["complete"]:
        if summary["missing_in_shard"]:
            raise click.ClickException(f"shard {summary['shard']}: {summary['missing_in_shard']} sample(s) failed to "
                                       "generate; run the same command again to generate them")
        click.echo(f"shard {summary['shard']} done; the shard that finishes last writes the summaries", err=True)
        return
    click.echo(open_output_dir(output_dir).read_text("summary.md"))
    if not summary["complete"]:
        raise click.ClickException(
            f"some samples failed to generate (see {output_dir}/*/summary.json); run the same command again "
            "to generate the missing ones"
        )


def _system_prompt(option: str | None, model: str | None) -> str | None:
    from skyt1.data.prompts import system_prompt_for

    if option is None:
        return system_prompt_for(model) if model else None
    if option.lower() == "none":
        return None
    if option.startswith("@"):
        path = Path(option[1:]).expanduser()
        if not path.is_file():
            raise click.BadParameter(f"{path}: no such file", param_hint="--system-prompt")
        return path.read_text().strip()
    return option
