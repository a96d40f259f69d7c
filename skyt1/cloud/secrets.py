"""Which secrets a phase needs under a recipe: required ones (the phase cannot run without them: a launch is
refused when one is missing) and optional ones (forwarded when set, never blocking).

The rules follow what each phase reads:
- an API call (label unless it joins the published labels; reformat in llm/auto mode; an `openai` engine)
  needs the key named by the section's `api_key_env`, unless the server is on loopback or a keys file is given;
- a gated Hugging Face dataset (GPQA-Diamond) needs HF_TOKEN where it is read from the hub: eval's
  benchmarks and assemble's decontamination set, unless the recipe's data_dir holds a copy;
- HF_TOKEN is optional everywhere a phase reads the hub (higher rate limits).
The W&B key is never asked for: training reports to nothing unless `train.report_to: wandb`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from skyt1.recipe import ApiModel, Recipe

HF_TOKEN = "HF_TOKEN"
HUB_READERS = ("label", "distill", "assemble", "train", "eval")  # phases that may download from the hub


@dataclass(frozen=True)
class Need:
    name: str  # the environment variable
    required: bool
    why: str  # what the phase does with it, e.g. "reformat calls the OpenAI API (reformat.mode: llm)"


def _api_need(api_key_env: str, base_url: str | None, keys_file: str | None, why: str) -> Need | None:
    from skyt1.engines import is_loopback

    if keys_file:
        return None  # keys come from a file in the workdir, not from the environment
    where = base_url or "the OpenAI API"
    return Need(api_key_env, not is_loopback(base_url), f"{why} calls {where}")


def _api(api: ApiModel, why: str) -> Need | None:
    return _api_need(api.api_key_env, api.base_url, api.keys_file, why)


def _gated(recipe: Recipe, names: list[str]) -> list[str]:
    """The gated benchmarks among `names` that would be read from the hub (no local copy in data_dir)."""
    from skyt1.data.benchmarks import BENCHMARKS, parse_name

    data_dir = recipe.resolve_path(recipe.eval.data_dir)
    out = []
    for name in names:
        try:
            bench = BENCHMARKS[parse_name(name).base]
        except ValueError:
            continue  # an unknown name is the recipe validator's to report
        if bench.gated and not (data_dir and (Path(data_dir) / bench.local).exists()):
            out.append(bench.name)
    return out


def needs(recipe: Recipe, phase: str) -> list[Need]:
    """Every secret `phase` reads under `recipe`, required ones first."""
    out: list[Need | None] = []
    if phase == "label" and recipe.label.sources and not recipe.label.from_published:
        out.append(_api(recipe.label.api, "label (difficulty labels)"))
    if phase == "reformat" and recipe.reformat.mode != "rule":
        out.append(_api(recipe.reformat.api, f"reformat (reformat.mode: {recipe.reformat.mode})"))
    if phase in ("distill", "eval"):
        engine = recipe.distill.engine if phase == "distill" else recipe.eval.engine
        if engine is not None and engine.backend == "openai":
            out.append(_api_need(engine.api_key_env, engine.base_url, None, f"{phase} (engine backend openai)"))
    if phase == "eval":
        gated = _gated(recipe, recipe.eval.benchmarks)
        if gated and not recipe.eval.skip_unavailable:
            out.append(Need(HF_TOKEN, True, f"eval reads the gated {', '.join(gated)} from the Hugging Face hub"))
    if phase == "assemble":
        gated = _gated(recipe, recipe.assemble.decontam_benchmarks)
        if gated:
            out.append(Need(HF_TOKEN, True, f"assemble decontaminates against the gated {', '.join(gated)} "
                                            "(read from the Hugging Face hub)"))
    if phase in HUB_READERS and not any(n and n.name == HF_TOKEN for n in out):
        out.append(Need(HF_TOKEN, False, f"{phase} reads the Hugging Face hub (a token raises rate limits)"))
    if phase == "train" and recipe.train.report_to == "wandb":
        out.append(Need("WANDB_API_KEY", True, "train reports to Weights & Biases (train.report_to: wandb)"))
    found = [n for n in out if n is not None]
    return sorted(found, key=lambda n: not n.required)


def governed(recipe: Recipe) -> set[str]:
    """The secrets whose need skyt1 decides from the recipe; any other secret a task file declares keeps the
    file's own requirement."""
    keys = {recipe.label.api.api_key_env, recipe.reformat.api.api_key_env, recipe.distill.engine.api_key_env}
    if recipe.eval.engine is not None:
        keys.add(recipe.eval.engine.api_key_env)
    return keys | {HF_TOKEN, "OPENAI_API_KEY", "WANDB_API_KEY"}


def overrides(recipe: Recipe, phase: str, declared: dict[str, bool],
              environ: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    """The `--secret` values a launch of `phase` passes to SkyPilot: (NAME, value) for every secret the task
    declares or the recipe needs.

    `declared` maps each secret of the task YAML to whether the YAML requires it (a null value). A value set
    in this environment is forwarded. A secret still required (by the recipe, or by the task file where
    skyt1 has no rule for it) stays a reference (None), which SkyPilot's own resolution refuses; the rest
    are passed empty (e.g. the file requires HF_TOKEN for GPQA, and this recipe evaluates no gated set).
    """
    env = os.environ if environ is None else environ
    found = needs(recipe, phase)
    required = {n.name for n in found if n.required}
    required |= {name for name, req in declared.items() if req and name not in governed(recipe)}
    out: list[tuple[str, str | None]] = []
    for name in dict.fromkeys([*declared, *(n.name for n in found)]):
        value = env.get(name)
        out.append((name, value if value else None if name in required else ""))
    return out


def declared(task_file: str | Path) -> dict[str, bool]:
    """A task file's secrets: name -> required (a null value, which SkyPilot resolves at launch)."""
    import yaml

    docs = [d for d in yaml.safe_load_all(Path(task_file).read_text()) if d]
    return {k: v is None for d in docs for k, v in (d.get("secrets") or {}).items()}


def for_launch(recipe: Recipe, phase: str, task_file: str | Path,
               explicit: list[tuple[str, str]] | None = None) -> list[tuple[str, str | None]]:
    """The `--secret` values a launch of `task_file` as `phase` passes: `overrides` for what the file declares
    and the recipe needs, then any given explicitly (`--secret NAME[=VALUE]`)."""
    out = dict(overrides(recipe, phase, declared(task_file)))
    out.update(explicit or [])
    return list(out.items())


def missing_message(recipe: Recipe, phases: list[str], names: list[str]) -> str:
    """One line naming each missing secret and why the phases need it."""
    parts = []
    for name in dict.fromkeys(names):
        whys = [n.why for p in phases for n in needs(recipe, p) if n.name == name and n.required]
        parts.append(f"{name} is not set: {'; '.join(dict.fromkeys(whys)) or 'the task requires it'}")
    hint = " ".join(f"--secret {n}" for n in dict.fromkeys(names))
    return "; ".join(parts) + f" (export it here; skyt1 passes it to SkyPilot as {hint})"
