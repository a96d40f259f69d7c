"""The pipeline's phases, in order: the one table the CLI, `reproduce`, cost, validation, the SkyPilot task
checks and the report read.

Each phase is a module exposing `run(recipe, run_dir, *, force=False, **opts) -> manifest`, one command
`skyt1 <name>`, and (except the report) one SkyPilot task `sky_tasks/<name>.yaml`. A phase opens and
finishes through `skyt1.protocol.open_phase`, which reads this table.

What a phase depends on is declared here, in three parts:
- `inputs`: the upstream outputs it reads (`phase:output`; a manifest's output digest is the input digest);
- `knobs`: the recipe paths whose values change its output, wherever they live (`distill.sampling`,
  `filter.code_timeout_s` for eval's scoring, `prompts.user`), plus `sources@LIST` for the sources a list
  of names picks (`sources@distill.sources`: the definitions of the distilled sources) and `*` for the
  whole recipe. These feed the phase's digest: changing one re-runs exactly the phases that declare it.
- `tuning`: recipe paths it reads that change how it runs, not what it writes (concurrency, workers,
  where a server listens): never in the digest, so a resumed phase may change them.
- `prompts`: template ids (prefixes) of `skyt1.data.prompts` it sends; `{user}` and `{system}` stand for the
  recipe's `prompts.user` and `prompts.system`. Their versions are part of the digest.
A phase that reads a knob it does not declare is a bug (it would keep stale results): the phase helper
traces every read and names the undeclared ones (tests make that an error, `SKYT1_STRICT_KNOBS=1`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from skyt1.store import canonical_digest

if TYPE_CHECKING:
    from skyt1.recipe import Recipe

Role = Literal["generation", "training", "control"]  # which locked environment the phase runs in

_API_TUNING = ("base_url", "api_key_env", "keys_file", "concurrency", "max_retries", "timeout_s",
               "usd_per_1m_input", "usd_per_1m_output")
_ENGINE_TUNING = ("base_url", "api_key_env", "concurrency", "max_retries", "batch_size", "gpu_memory_utilization",
                  "tensor_parallel_size", "data_parallel_size")


@dataclass(frozen=True)
class Phase:
    name: str
    module: str  # the module with run()
    command: str  # its `skyt1 <name>` command: "module:attribute" inside skyt1.cli
    inputs: tuple[str, ...]  # "phase:output" it reads (when configured: see the module)
    gpu: bool  # needs accelerators on the cloud
    role: Role
    knobs: tuple[str, ...]
    tuning: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    has_task: bool = True  # a sky_tasks/<name>.yaml exists
    resumable: bool = True  # keeps partial output between runs (else redoes everything each time)
    shardable: bool = False  # `--shard I/N` splits it over N machines
    extras: tuple[str, ...] = field(default=())  # command options that change its output when given

    def config_digest(self, recipe: Recipe, **extras: Any) -> str:
        return config_digest(recipe, self.name, **extras)

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.split(":")[0] for i in self.inputs))

    def needs(self, recipe: Recipe) -> tuple[str, ...]:
        """The inputs this recipe makes the phase read (distill reads labels only for bounded numina
        sources, eval the trained model only when it evaluates it, the report whatever exists)."""
        if self.name == "distill":
            bounded = [recipe.source(s) for s in recipe.distill.sources]
            return self.inputs if any(s.dataset == "numina" and (s.difficulty_min, s.difficulty_max) != (None, None)
                                      for s in bounded) else ()
        if self.name == "eval":
            engine = recipe.eval.engine
            return self.inputs if engine is None or engine.model == "trained" else ()
        if self.name == "report":
            return ()
        return self.inputs

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


PHASES: tuple[Phase, ...] = (
    Phase("label", "skyt1.curation.label", "curation_cmd:label", (), gpu=False, role="control",
          knobs=("label", "sources@label.sources", "seed"),
          tuning=tuple(f"label.api.{k}" for k in _API_TUNING), prompts=("label/",), extras=("from_published",)),
    Phase("distill", "skyt1.curation.distill", "curation_cmd:distill", ("label:records",), gpu=True, role="generation",
          knobs=("distill", "sources@distill.sources", "seed", "prompts.user"),
          tuning=("distill.flush_every", *(f"distill.engine.{k}" for k in _ENGINE_TUNING)),
          prompts=("{user}/",), shardable=True, extras=("start", "end")),
    Phase("reformat", "skyt1.curation.reformat", "curation_cmd:reformat", ("distill:records",), gpu=False, role="control",
          knobs=("reformat", "sources@reformat.as_given_sources", "seed"),
          tuning=tuple(f"reformat.api.{k}" for k in _API_TUNING), prompts=("reformat/",)),
    Phase("filter", "skyt1.curation.filter", "curation_cmd:filter_cmd", ("reformat:records",), gpu=False, role="control",
          knobs=("filter",), tuning=("filter.workers", "filter.allow_unsandboxed")),
    Phase("assemble", "skyt1.curation.assemble", "curation_cmd:assemble", ("filter:records",), gpu=False, role="control",
          knobs=("assemble", "sources@assemble.science_source", "seed", "prompts", "train.cutoff_len",
                 "train.base_model", "eval.data_dir"),
          prompts=("{user}/", "system/{system}")),
    Phase("train", "skyt1.training.train", "train_cmd:train", ("assemble:train.json",), gpu=True, role="training",
          knobs=("train",), tuning=("train.preprocessing_num_workers", "train.report_to", "assemble.dataset_name")),
    Phase("eval", "skyt1.evaluation.phase", "eval_cmd:eval_cmd", ("train:final",), gpu=True, role="generation",
          knobs=("eval", "prompts", "filter.math_timeout_s", "filter.code_timeout_s", "filter.memory_mb"),
          tuning=("filter.workers", "filter.allow_unsandboxed", "name", *(f"eval.engine.{k}" for k in _ENGINE_TUNING)),
          prompts=("{user}/", "system/{system}"), shardable=True),
    Phase("report", "skyt1.report", "report_cmd:report", tuple(f"{p}:manifest" for p in
                                          ("label", "distill", "reformat", "filter", "assemble", "train", "eval")),
          gpu=False, role="control", knobs=("*",), has_task=False, resumable=False),
)
BY_NAME = {p.name: p for p in PHASES}
NAMES = tuple(p.name for p in PHASES)
TASK_PHASES = tuple(p.name for p in PHASES if p.has_task)  # the phases that run as SkyPilot tasks
GPU_PHASES = tuple(p.name for p in PHASES if p.gpu)
CPU_PHASES = tuple(p.name for p in PHASES if p.has_task and not p.gpu)


class UnknownPhase(ValueError):
    pass


def get(name: str) -> Phase:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownPhase(f"unknown phase {name!r}; phases: {', '.join(NAMES)}") from None


def in_order(names: list[str]) -> list[str]:
    """`names` checked and sorted into pipeline order."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UnknownPhase(f"unknown phase(s) {unknown}; phases: {', '.join(NAMES)}")
    return sorted(set(names), key=NAMES.index)


# ------------------------------------------------------------------------------------------- knobs


def _get(data: Any, path: str) -> Any:
    node = data
    for key in path.split(".") if path else ():
        if isinstance(node, list):
            node = node[int(key)]
        elif isinstance(node, dict):
            node = node.get(key)
        else:
            return None
    return node


def expand(pattern: str, data: dict) -> list[str]:
    """The concrete recipe paths a knob pattern names in a recipe dump."""
    if pattern == "*":
        return [""]
    if "@" in pattern:
        listed, ref = pattern.split("@")
        names = _get(data, ref)
        names = [names] if isinstance(names, str) else (names or [])
        index = {s.get("name"): i for i, s in enumerate(data.get(listed) or [])}
        return [f"{listed}.{index[n]}" for n in names if n in index]
    return [pattern]


def _prune(value: Any, path: str, tuning: set[str]) -> Any:
    """`value` (at `path`) without the tuning knobs under it."""
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        sub = f"{path}.{k}" if path else str(k)
        if sub not in tuning:
            out[k] = _prune(v, sub, tuning)
    return out


def knob_values(recipe: Recipe, name: str) -> dict[str, Any]:
    """{recipe path: value} of every knob that changes phase `name`'s output (tuning knobs left out)."""
    spec = get(name)
    data = recipe.model_dump(mode="json")
    tuning = {p for pattern in spec.tuning for p in expand(pattern, data)}
    return {path: _prune(_get(data, path), path, tuning) for pattern in spec.knobs for path in expand(pattern, data)}


def prompt_versions(recipe: Recipe, name: str) -> dict[str, str]:
    """{template id: version} of the prompts phase `name` sends with this recipe."""
    from skyt1.data import prompts

    prefixes = tuple(p.format(user=recipe.prompts.user, system=recipe.prompts.system) for p in get(name).prompts)
    return prompts.versions(*prefixes) if prefixes else {}


def config_digest(recipe: Recipe, name: str, **extras: Any) -> str:
    """What phase `name`'s output depends on in the recipe (compared with its manifest to skip or resume it):
    its knobs, the versions of its prompts, and the command options in `extras` (those given with a value
    other than the default: a plain `skyt1 <phase>` and `reproduce` compute the same digest)."""
    return canonical_digest({"phase": name, "knobs": knob_values(recipe, name),
                             "prompts": prompt_versions(recipe, name), "extras": extras})


def covered(path: str, declared: set[str]) -> bool:
    """Whether a read of `path` falls under one of the `declared` (expanded) knob paths."""
    return "" in declared or any(path == d or path.startswith(d + ".") for d in declared)


def undeclared(recipe: Recipe, name: str, reads: set[str]) -> list[str]:
    """The knobs in `reads` that phase `name` does not declare (neither a knob nor a tuning knob)."""
    spec = get(name)
    data = recipe.model_dump(mode="json")
    declared = {p for pattern in (*spec.knobs, *spec.tuning) for p in expand(pattern, data)}
    return sorted(r for r in reads if not covered(r, declared))


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human lines naming every knob that differs between two `knob_values` (nested values flattened)."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        where = f"{prefix}.{key}" if prefix and key else (key or prefix or "recipe")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += diff(a, b, where)
        elif a != b:
            lines.append(f"{where}: {_short(a)} -> {_short(b)}")
    return lines


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
