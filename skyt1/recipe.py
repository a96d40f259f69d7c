"""Recipe schema: every knob of the pipeline, its type, its domain and its default, in one place.

A recipe is a YAML file validated by `Recipe`. Unknown keys are errors (a typo must not silently fall back
to a default), and so are values outside a knob's domain (a negative count, a top_p of 0, an unknown
benchmark or source name): every problem is named by its dotted path before any work starts. Paths inside a
recipe are resolved relative to the recipe file.

Which phases read which knob is declared in `skyt1.phases`; `trace_reads` records the knobs code actually
reads, so tests can hold the two together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from skyt1.data.prompts import MODES as PROMPT_SETS
from skyt1.data.prompts import QWQ_TEACHER_SYSTEM_PROMPT, SYSTEM_PROMPTS

Domain = Literal["math", "code", "science"]
PromptSet = Literal["skyt1", "default"]
SystemPromptName = Literal["sky-t1", "qwen-cot", "none"]
assert set(PromptSet.__args__) == set(PROMPT_SETS) and set(SystemPromptName.__args__) == set(SYSTEM_PROMPTS)

# Domains shared by many knobs.
Count = Annotated[int, Field(ge=1)]  # how many of something: at least one
NonNegInt = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0)]
Dollars = Annotated[float, Field(ge=0)]
Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(gt=0, le=1)]  # 0 keeps no token at all
Fraction = Annotated[float, Field(gt=0, le=1)]


# --------------------------------------------------------------------------------------------- tracing

_trace: dict | None = None  # {"paths": {id(model): dotted path}, "reads": set of dotted paths}
_UNTRACED = frozenset({"path"})  # fields that are not knobs (where the recipe file lives)


def _walk(obj: Any, path: str, out: dict[int, str]) -> None:
    if isinstance(obj, BaseModel):
        out[id(obj)] = path
        for name in type(obj).model_fields:
            _walk(obj.__dict__[name], f"{path}.{name}" if path else name, out)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _walk(v, f"{path}.{i}", out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, f"{path}.{k}", out)


def _is_section(value: Any) -> bool:
    return isinstance(value, BaseModel) or (isinstance(value, list | tuple) and any(isinstance(v, BaseModel) for v in value))


@contextmanager
def trace_reads(recipe: Recipe) -> Iterator[set[str]]:
    """Record the dotted paths of every knob of `recipe` read inside the block (from any thread).

    A knob is read when code gets its value (`recipe.distill.sampling.n` reads `distill.sampling.n`);
    getting a section on the way (`recipe.distill`) is not a read, and neither is `model_dump` (digests).
    One trace at a time per process: phases run one after another."""
    global _trace
    if _trace is not None:
        raise RuntimeError("trace_reads is already active")
    paths: dict[int, str] = {}
    _walk(recipe, "", paths)
    reads: set[str] = set()
    _trace = {"paths": paths, "reads": reads}
    try:
        yield reads
    finally:
        _trace = None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        trace = _trace
        if trace is not None and name[0] != "_" and name not in _UNTRACED and name in type(self).model_fields:
            path = trace["paths"].get(id(self))
            if path is not None and not _is_section(value):
                trace["reads"].add(f"{path}.{name}" if path else name)
        return value


# --------------------------------------------------------------------------------------------- sections


class ApiModel(Strict):
    """An OpenAI-compatible chat model reached over HTTP (the OpenAI API or a local server)."""

    model: str = Field("gpt-4o-mini", min_length=1)
    base_url: str | None = None  # None: the OpenAI API
    api_key_env: str = "OPENAI_API_KEY"  # name of the variable holding the key, never the key itself
    keys_file: str | None = None  # one key per line, rotated round-robin
    temperature: Temperature = 0.7
    top_p: TopP | None = None
    max_tokens: Count = 16384
    concurrency: Count = 16
    max_retries: NonNegInt = 8
    timeout_s: Seconds = 600.0
    usd_per_1m_input: Dollars = 0.15  # GPT-4o-mini list price
    usd_per_1m_output: Dollars = 0.60


class Sampling(Strict):
    temperature: Temperature = 0.7
    top_p: TopP = 1.0
    max_tokens: Count = 16384
    n: Count = 1
    seed: NonNegInt = 0


class Engine(Strict):
    """Where generations come from. `model` is a hub id or a local directory."""

    backend: Literal["vllm", "openai", "hf"] = "vllm"
    model: str = Field(min_length=1)
    revision: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32", "half", "float"] = "bfloat16"
    tensor_parallel_size: Count = 1
    data_parallel_size: Count = 1
    max_model_len: Count | None = None
    gpu_memory_utilization: Fraction = 0.9
    base_url: str | None = None  # openai backend
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: Count = 64
    max_retries: NonNegInt = 8
    batch_size: Count = 8  # hf backend
    chat_template: str | None = None


class Source(Strict):
    """One problem source. `name` is part of every record id, so it must stay stable."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    dataset: Literal["numina", "apps", "taco", "still2", "demo", "jsonl"]
    domain: Domain
    hub_id: str | None = None
    revision: str | None = None
    subset: str | None = None  # numina: the `source` column (amc_aime, math, olympiads); demo: math|arith|code
    split: str = "train"
    difficulties: list[str] | None = None  # apps/taco difficulty names to keep
    difficulty_min: Annotated[float, Field(ge=1, le=10)] | None = None  # numina: AoPS-scale bounds, inclusive
    difficulty_max: Annotated[float, Field(ge=1, le=10)] | None = None
    start: NonNegInt = 0  # row range within the source (after subset selection)
    end: Count | None = None
    require_boxed: bool = False  # numina: keep rows whose solution has a \boxed{} answer
    local_path: str | None = None  # offline override: a local file or directory instead of the hub
    count: Count | None = None  # demo: how many problems to generate

    @model_validator(mode="after")
    def _ranges(self) -> Source:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start}): the row range is empty")
        if None not in (self.difficulty_min, self.difficulty_max) and self.difficulty_min > self.difficulty_max:
            raise ValueError(f"difficulty_min ({self.difficulty_min}) is above difficulty_max ({self.difficulty_max})")
        return self


class PromptConfig(Strict):
    """Which prompts (skyt1.data.prompts) the model is trained and evaluated with: one choice for both."""

    user: PromptSet = "skyt1"  # user-turn templates of distill, the training rows and eval
    system: SystemPromptName = "sky-t1"  # system prompt of the training rows and of the trained model's eval


class LabelConfig(Strict):
    api: ApiModel = ApiModel()
    sources: list[str] = Field(default_factory=list)  # names of numina sources to label
    from_published: bool = False
    published_hub_id: str = "NovaSky-AI/labeled_numina_difficulty_859K"
    published_local_path: str | None = None


class DistillConfig(Strict):
    engine: Engine
    sampling: Sampling = Sampling(temperature=0.7, max_tokens=16384)
    system_prompt: str = QWQ_TEACHER_SYSTEM_PROMPT  # the teacher's own
    sources: list[str] = Field(default_factory=list)
    flush_every: Count = 64  # records per shard file


class ReformatConfig(Strict):
    # auto: rule where <think> tags exist, else llm; answer: no model, the stated final answer boxed (demo)
    mode: Literal["llm", "rule", "auto", "answer"] = "llm"
    api: ApiModel = ApiModel(temperature=0.7, max_tokens=16384)
    max_attempts: Count = 3  # model answers per trace (API failures do not count)
    # Sources whose own worked solutions become traces as given (reformat_method "as_given"); they are
    # verified by `filter` like teacher traces. Used by the tiny recipe's demo problems.
    as_given_sources: list[str] = Field(default_factory=list)


class FilterConfig(Strict):
    math_timeout_s: Seconds = 5.0
    code_timeout_s: Seconds = 6.0  # per test, as LiveCodeBench
    memory_mb: Annotated[int, Field(ge=64)] = 1024
    max_correct_per_problem: Count | None = None
    workers: Count | None = None  # default: all cores
    stop_at_first_failure: bool = True  # code: APPS/LiveCodeBench convention; false runs every test
    allow_unsandboxed: bool = False  # code on a node without bubblewrap: run with resource limits only


class AssembleConfig(Strict):
    mixture: dict[Domain, NonNegInt] = Field(default_factory=lambda: {"math": 10000, "code": 5000, "science": 1000})
    science_source: str | None = None  # a still2 source name, imported as given
    near_dup_threshold: Fraction = 0.9  # Jaccard similarity of word 5-gram shingles
    decontam_ngram: Count = 8
    decontam_benchmarks: list[str] = Field(
        default_factory=lambda: ["aime24", "aime25", "amc23", "math500", "gpqa_diamond", "livecodebench"]
    )
    seed: NonNegInt = 0
    dataset_name: str = Field("skyt1_sft", pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("decontam_benchmarks")
    @classmethod
    def _known_benchmarks(cls, names: list[str]) -> list[str]:
        return _check_benchmarks(names)


class TrainConfig(Strict):
    base_model: str = Field("Qwen/Qwen2.5-32B-Instruct", min_length=1)
    template: str = "qwen25"
    finetuning_type: Literal["full", "lora", "freeze"] = "full"  # freeze: only the top layers train
    cutoff_len: Count = 16384
    per_device_train_batch_size: Count = 1
    gradient_accumulation_steps: Count = 12
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 1.0e-5
    num_train_epochs: Annotated[float, Field(gt=0)] = 3.0
    max_steps: Count | None = None
    lr_scheduler_type: str = "cosine"
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    bf16: bool = True
    deepspeed: Literal["zero3_offload", "zero3", "zero2", "none"] = "zero3_offload"
    save_steps: Count = 100
    # At least two: MOUNT_CACHED may lose the newest checkpoint at a preemption.
    save_total_limit: Annotated[int, Field(ge=2)] = 2
    logging_steps: Count = 1
    preprocessing_num_workers: Count = 16
    gpus_per_node: Count = 8
    num_nodes: Count = 1
    report_to: Literal["none", "wandb", "tensorboard"] = "none"
    seed: NonNegInt = 42
    extra: dict[str, Any] = Field(default_factory=dict)  # passed to LlamaFactory verbatim


class EvalConfig(Strict):
    benchmarks: list[str] = Field(default_factory=lambda: ["aime24", "math500", "gpqa_diamond", "livecodebench"],
                                  min_length=1)
    engine: Engine | None = None  # default: the trained model on vllm
    sampling: Sampling = Sampling(temperature=0.6, top_p=0.95, max_tokens=32768)
    n: dict[str, Count] = Field(default_factory=dict)  # per-benchmark sample count override
    prompt_mode: PromptSet | None = None  # None: the training prompts (`prompts.user`)
    # "auto": the training system prompt (`prompts.system`) for the trained model, else the model family's.
    system_prompt: SystemPromptName | Literal["auto"] = "auto"
    limit: Count | None = None  # the first K problems of every benchmark
    limits: dict[str, Count] = Field(default_factory=dict)  # per-benchmark override of `limit`
    data_dir: str | None = None
    skip_unavailable: bool = False  # evaluate what can be loaded; list the rest (with why) in the summary

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, names: list[str]) -> list[str]:
        return _check_benchmarks(names)

    @field_validator("n", "limits")
    @classmethod
    def _n_names_benchmarks(cls, n: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        from skyt1.data.benchmarks import parse_name

        if "benchmarks" not in info.data:  # already refused
            return n
        known = {parse_name(b).name for b in info.data["benchmarks"]}
        for name in n:
            problem = _benchmark_problem(name)
            if problem:
                raise ValueError(problem)
            if parse_name(name).name not in known:
                raise ValueError(f"{name!r} is not one of eval.benchmarks ({', '.join(sorted(known))})")
        return n


def _benchmark_problem(name: str) -> str | None:
    from skyt1.data.benchmarks import parse_name

    try:
        parse_name(name)
    except ValueError as e:
        return str(e)
    return None


def _check_benchmarks(names: list[str]) -> list[str]:
    problems = [p for n in names if (p := _benchmark_problem(n))]
    if problems:
        raise ValueError("; ".join(problems))
    return names


class PhaseResources(Strict):
    accelerators: str | None = None  # e.g. "H100:8"; None for CPU phases
    cpus: str | None = None
    memory: str | None = None
    disk_size: Count = 512
    candidates: list[dict[str, Any]] = Field(default_factory=list)  # SkyPilot any_of entries
    num_nodes: Count = 1
    num_jobs: Count = 1  # `sky jobs launch --num-jobs N`: the phase split over N jobs (distill, eval)
    spot: bool = False


class CloudConfig(Strict):
    bucket: str | None = None
    store: Literal["s3", "gcs", "r2"] = "s3"
    resources: dict[str, PhaseResources] = Field(default_factory=dict)

    @field_validator("resources")
    @classmethod
    def _known_phases(cls, resources: dict) -> dict:
        from skyt1.phases import TASK_PHASES

        unknown = sorted(set(resources) - set(TASK_PHASES))
        if unknown:
            raise ValueError(f"resources for unknown phase(s) {unknown}; phases with tasks: {', '.join(TASK_PHASES)}")
        return resources


class CostModel(Strict):
    """Assumptions the cost estimate rests on; all stated, all overridable."""

    gpu: str = "H100"
    gpu_bf16_peak_tflops: Annotated[float, Field(gt=0)] = 989.0
    train_mfu: Fraction = 0.14
    train_tokens_per_sample: Count = 5600
    gen_tokens_per_s_per_gpu: Annotated[float, Field(gt=0)] = 650.0
    gen_tokens_per_sample: Count = 7000
    eval_tokens_per_sample: Count = 8000
    setup_hours: Annotated[float, Field(ge=0)] = 0.25
    spot_preemptions_per_hour: Annotated[float, Field(ge=0)] = 0.05
    spot_recovery_hours: Annotated[float, Field(ge=0)] = 0.25
    usd_per_gpu_hour: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)  # overrides the table
    # Work sizes (skyt1.cloud.cost): stated estimates where the recipe cannot know them before running.
    expected_problems: dict[str, NonNegInt] = Field(default_factory=dict)  # source name -> problems after selection
    default_problems_per_source: NonNegInt = 5000  # for sources without an estimate, a count or a row range
    train_params: Annotated[float, Field(gt=0)] | None = None  # parameters of the trained model; None: from its name
    train_samples: Count | None = None  # None: the sum of assemble.mixture
    api_prompt_tokens: NonNegInt = 600  # instruction tokens around each label/reformat request
    label_output_tokens: NonNegInt = 200
    api_s_per_request: Annotated[float, Field(gt=0)] = 20.0  # latency of one API request (label, reformat)
    filter_cpu_s_per_sample: Annotated[float, Field(ge=0)] = 2.0  # CPU seconds to verify one sample
    gen_flush_samples: Count = 64  # samples lost at a preemption of a generation phase (one unflushed shard)
    benchmark_sizes: dict[str, Count] = Field(
        default_factory=lambda: {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "gpqa_diamond": 198,
                                 "livecodebench": 511, "minerva": 272, "olympiadbench": 675, "gsm8k": 1319,
                                 "humaneval": 164, "mbpp": 974, "demo_math": 60,
                                 "demo_arith": 200}
    )


# Knobs that existed once: a recipe that still sets one is told what became of it, not just "unknown field".
REMOVED = {
    "assemble.system_prompt": "the training system prompt is now `prompts.system` (sky-t1, qwen-cot or none), "
                              "shared with the trained model's evaluation",
    "assemble.math_user_prefix": "user turns now come from the versioned templates in skyt1/data/prompts.py, "
                                 "chosen by `prompts.user` (the same ones evaluation renders)",
}


class Recipe(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: NonNegInt = 0
    budget_usd: Dollars | None = None
    sources: list[Source] = Field(default_factory=list)
    prompts: PromptConfig = PromptConfig()
    label: LabelConfig = LabelConfig()
    distill: DistillConfig
    reformat: ReformatConfig = ReformatConfig()
    filter: FilterConfig = FilterConfig()
    assemble: AssembleConfig = AssembleConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    cloud: CloudConfig = CloudConfig()
    cost: CostModel = CostModel()
    path: str | None = Field(default=None, exclude=True)  # where it was loaded from

    @model_validator(mode="before")
    @classmethod
    def _removed_knobs(cls, data: Any) -> Any:
        found = removed_knobs(data)
        if found:
            raise ValueError("; ".join(f"{path} was removed: {why}; delete it" for path, why in found))
        return data

    @model_validator(mode="after")
    def _check_references(self) -> Recipe:
        names = [s.name for s in self.sources]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {sorted(dupes)}")
        known = set(names)
        refs = (("label.sources", self.label.sources), ("distill.sources", self.distill.sources),
                ("reformat.as_given_sources", self.reformat.as_given_sources),
                ("assemble.science_source", [self.assemble.science_source] if self.assemble.science_source else []))
        for where, named in refs:
            missing = [r for r in named if r not in known]
            if missing:
                raise ValueError(f"{where} names unknown sources {missing}; defined: {sorted(known)}")
        return self

    def source(self, name: str) -> Source:
        for s in self.__dict__["sources"]:  # a lookup by name is not a read of the other sources' knobs
            if s.__dict__["name"] == name:
                return s
        raise KeyError(f"recipe {self.__dict__['name']!r} has no source {name!r}")

    def resolve_path(self, value: str | None) -> str | None:
        """Resolve a path written in the recipe relative to the recipe file; URIs and hub ids pass through."""
        if value is None or "://" in value or self.path is None:
            return value
        p = Path(value).expanduser()
        if not p.is_absolute():
            candidate = Path(self.path).parent / p
            if candidate.exists() or value.startswith("."):
                return str(candidate.resolve())
        return str(p)

    def digest(self, *sections: str, **extra: Any) -> str:
        """Stable hash of the whole recipe or of the named top-level sections, plus any `extra` values a
        phase's output also depends on (e.g. a row window given on the command line)."""
        data = self.model_dump(mode="json")
        if sections:
            data = {k: data[k] for k in sections}
        if extra:
            data = {"sections": data, "extra": extra}
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def removed_knobs(data: Any) -> list[tuple[str, str]]:
    """(dotted path, what became of it) for every removed knob a raw recipe mapping still sets."""
    found = []
    for dotted, why in REMOVED.items():
        node = data
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                break
        else:
            found.append((dotted, why))
    return found


class RecipeError(Exception):
    """A recipe that cannot be loaded; the message names the file, field and expectation."""


def _format_errors(path: str, err: ValidationError) -> str:
    lines = [f"{path}: invalid recipe ({err.error_count()} problem(s))"]
    for e in err.errors():
        parts = [str(x) for x in e["loc"]]
        key = parts[-1:] == ["[key]"]  # a mapping's key, not its value, is wrong (e.g. mixture.codee)
        loc = ".".join(parts[:-1] if key else parts) or "(top level)"
        if key:
            e = {**e, "msg": "not a valid key: " + e["msg"]}
        if e["type"] == "extra_forbidden":
            msg = "unknown field (typo?); see `skyt1 recipe show` for the valid fields"
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and not isinstance(e["input"], dict | list):
                msg += f" (got {e['input']!r})"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def _set_dotted(data: dict, dotted: str, value: Any, path: Path) -> None:
    """Set `a.b.0.c` inside nested mappings and lists, creating missing mappings on the way."""
    *parents, leaf = dotted.split(".")
    node: Any = data
    for i, key in enumerate([*parents, leaf]):
        last = i == len(parents)
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise RecipeError(f"{path}: --set {dotted}: {key!r} is not an index of the list (0..{len(node) - 1})")
            key = int(key)
        elif not isinstance(node, dict):
            where = ".".join(dotted.split(".")[:i])
            raise RecipeError(f"{path}: --set {dotted}: {where} is {node!r}, not a mapping or list")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load and validate a recipe file. `overrides` maps dotted paths to values (e.g. {"train.max_steps": 5})."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file (recipes ship in recipes/*.yaml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read the recipe file: {e}") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        raise RecipeError(f"{path}: a recipe must be a YAML mapping of fields, but the file is {what}")
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value, path)
    removed = removed_knobs(data)
    if removed:
        raise RecipeError("\n".join([f"{path}: invalid recipe ({len(removed)} problem(s))"] +
                                     [f"  {dotted}: removed: {why}; delete it" for dotted, why in removed]))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError(_format_errors(str(path), e)) from None
    recipe.path = str(path.resolve())
    return recipe


def summarize(recipe: Recipe) -> str:
    """A few human lines: what the recipe will do."""
    t = recipe.train
    global_batch = t.per_device_train_batch_size * t.gradient_accumulation_steps * t.gpus_per_node * t.num_nodes
    lines = [
        f"recipe {recipe.name}: {recipe.description}".rstrip(": "),
        f"  sources: {', '.join(f'{s.name} ({s.domain})' for s in recipe.sources) or 'none'}",
        f"  teacher: {recipe.distill.engine.model} on {recipe.distill.engine.backend}, "
        f"n={recipe.distill.sampling.n}, T={recipe.distill.sampling.temperature}, "
        f"max_tokens={recipe.distill.sampling.max_tokens}",
        f"  reformat: {recipe.reformat.mode}"
        + (f" ({recipe.reformat.api.model})" if recipe.reformat.mode in ("llm", "auto") else " (code)"),
        f"  mixture: {', '.join(f'{k}={v}' for k, v in recipe.assemble.mixture.items())}",
        f"  train: {t.base_model}, {t.finetuning_type}, cutoff {t.cutoff_len}, global batch {global_batch}, "
        f"lr {t.learning_rate}, {t.num_train_epochs:g} epochs, deepspeed {t.deepspeed}",
        f"  eval: {', '.join(recipe.eval.benchmarks)}",
        f"  budget: {'none' if recipe.budget_usd is None else f'${recipe.budget_usd:.0f}'}",
    ]
    return "\n".join(lines)
