"""Recipe schema: every knob of the pipeline, its type and its default, in one place.

A recipe is a YAML file validated by `Recipe`. Unknown keys are errors (a typo must not silently fall back
to a default). Paths inside a recipe are resolved relative to the recipe file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Domain = Literal["math", "code", "science"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ApiModel(Strict):
    """An OpenAI-compatible chat model reached over HTTP (the OpenAI API or a local server)."""

    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None: the OpenAI API
    api_key_env: str = "OPENAI_API_KEY"  # name of the variable holding the key, never the key itself
    keys_file: str | None = None  # one key per line, rotated round-robin
    temperature: float = 0.7
    top_p: float | None = None
    max_tokens: int = 16384
    concurrency: int = 16
    max_retries: int = 8
    timeout_s: float = 600.0
    usd_per_1m_input: float = 0.15  # GPT-4o-mini list price
    usd_per_1m_output: float = 0.60


class Sampling(Strict):
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 16384
    n: int = 1
    seed: int = 0


class Engine(Strict):
    """Where generations come from. `model` is a hub id or a local directory."""

    backend: Literal["vllm", "openai", "hf"] = "vllm"
    model: str
    revision: str | None = None
    dtype: str = "bfloat16"
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    base_url: str | None = None  # openai backend
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 64
    max_retries: int = 8
    batch_size: int = 8  # hf backend
    chat_template: str | None = None


class Source(Strict):
    """One problem source. `name` is part of every record id, so it must stay stable."""

    name: str
    dataset: Literal["numina", "apps", "taco", "still2", "demo", "jsonl"]
    domain: Domain
    hub_id: str | None = None
    revision: str | None = None
    subset: str | None = None  # numina: the `source` column (amc_aime, math, olympiads); demo: math|arith|code
    split: str = "train"
    difficulties: list[str] | None = None  # apps/taco difficulty names to keep
    difficulty_min: float | None = None  # numina: AoPS-scale label bounds, inclusive
    difficulty_max: float | None = None
    start: int = 0  # row range within the source (after subset selection)
    end: int | None = None
    require_boxed: bool = False  # numina: keep rows whose solution has a \boxed{} answer
    local_path: str | None = None  # offline override: a local file or directory instead of the hub
    count: int | None = None  # demo: how many problems to generate


class LabelConfig(Strict):
    api: ApiModel = ApiModel()
    sources: list[str] = Field(default_factory=list)  # names of numina sources to label
    from_published: bool = False
    published_hub_id: str = "NovaSky-AI/labeled_numina_difficulty_859K"
    published_local_path: str | None = None


class DistillConfig(Strict):
    engine: Engine
    sampling: Sampling = Sampling(temperature=0.7, max_tokens=16384)
    system_prompt: str = (
        "You are a helpful and harmless assistant. You are Qwen developed by Alibaba. "
        "You should think step-by-step."
    )
    sources: list[str] = Field(default_factory=list)
    flush_every: int = 64  # records per shard file


class ReformatConfig(Strict):
    # auto: rule where <think> tags exist, else llm; answer: no model, the stated final answer boxed (demo)
    mode: Literal["llm", "rule", "auto", "answer"] = "llm"
    api: ApiModel = ApiModel(temperature=0.7, max_tokens=16384)
    max_attempts: int = 3
    # Sources whose own worked solutions become traces as given (reformat_method "as_given"); they are
    # verified by `filter` like teacher traces. Used by the tiny recipe's demo problems.
    as_given_sources: list[str] = Field(default_factory=list)


class FilterConfig(Strict):
    math_timeout_s: float = 5.0
    code_timeout_s: float = 6.0  # per test, as LiveCodeBench
    memory_mb: int = 1024
    max_correct_per_problem: int | None = None
    workers: int | None = None  # default: all cores
    stop_at_first_failure: bool = True


class AssembleConfig(Strict):
    mixture: dict[Domain, int] = Field(default_factory=lambda: {"math": 10000, "code": 5000, "science": 1000})
    science_source: str | None = None  # a still2 source name, imported as given
    system_prompt: Literal["sky-t1"] = "sky-t1"
    math_user_prefix: str = "Return your final response within \\boxed{}. "
    near_dup_threshold: float = 0.9  # Jaccard similarity of word 5-gram shingles
    decontam_ngram: int = 8
    decontam_benchmarks: list[str] = Field(
        default_factory=lambda: ["aime24", "aime25", "amc23", "math500", "gpqa_diamond", "livecodebench"]
    )
    seed: int = 0
    dataset_name: str = "skyt1_sft"


class TrainConfig(Strict):
    base_model: str = "Qwen/Qwen2.5-32B-Instruct"
    template: str = "qwen25"
    finetuning_type: Literal["full", "lora", "freeze"] = "full"  # freeze: only the top layers train (demo)
    cutoff_len: int = 16384
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 12
    learning_rate: float = 1.0e-5
    num_train_epochs: float = 3.0
    max_steps: int | None = None
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.1
    bf16: bool = True
    deepspeed: Literal["zero3_offload", "zero3", "zero2", "none"] = "zero3_offload"
    save_steps: int = 100
    save_total_limit: int = 2  # at least two: MOUNT_CACHED may lose the newest at preemption
    logging_steps: int = 1
    preprocessing_num_workers: int = 16
    gpus_per_node: int = 8
    num_nodes: int = 1
    report_to: Literal["none", "wandb", "tensorboard"] = "none"
    seed: int = 42
    extra: dict[str, Any] = Field(default_factory=dict)  # passed to LlamaFactory verbatim


class EvalConfig(Strict):
    benchmarks: list[str] = Field(default_factory=lambda: ["aime24", "math500", "gpqa_diamond", "livecodebench"])
    engine: Engine | None = None  # default: the trained model on vllm
    sampling: Sampling = Sampling(temperature=0.6, top_p=0.95, max_tokens=32768)
    n: dict[str, int] = Field(default_factory=dict)  # per-benchmark sample count override
    prompt_mode: Literal["skyt1", "default"] = "skyt1"
    limit: int | None = None
    data_dir: str | None = None
    skip_unavailable: bool = False  # evaluate what can be loaded; list the rest (with why) in the summary


class PhaseResources(Strict):
    accelerators: str | None = None  # e.g. "H100:8"; None for CPU phases
    cpus: str | None = None
    memory: str | None = None
    disk_size: int = 512
    candidates: list[dict[str, Any]] = Field(default_factory=list)  # SkyPilot any_of entries
    num_nodes: int = 1
    spot: bool = False


class CloudConfig(Strict):
    bucket: str | None = None
    store: Literal["s3", "gcs", "r2"] = "s3"
    resources: dict[str, PhaseResources] = Field(default_factory=dict)


class CostModel(Strict):
    """Assumptions the cost estimate rests on; all stated, all overridable."""

    gpu: str = "H100"
    gpu_bf16_peak_tflops: float = 989.0
    train_mfu: float = 0.14
    train_tokens_per_sample: int = 5600
    gen_tokens_per_s_per_gpu: float = 650.0
    gen_tokens_per_sample: int = 7000
    eval_tokens_per_sample: int = 8000
    setup_hours: float = 0.25
    spot_preemptions_per_hour: float = 0.05
    spot_recovery_hours: float = 0.25
    usd_per_gpu_hour: dict[str, float] = Field(default_factory=dict)  # overrides the price table
    # Work sizes (skyt1.cloud.cost): stated estimates where the recipe cannot know them before running.
    expected_problems: dict[str, int] = Field(default_factory=dict)  # source name -> problems after selection
    default_problems_per_source: int = 5000  # for sources without an estimate, a count or a row range
    train_params: float | None = None  # parameters of the trained model; None: from its name (e.g. "32B")
    train_samples: int | None = None  # None: the sum of assemble.mixture
    api_prompt_tokens: int = 600  # instruction tokens around each label/reformat request
    label_output_tokens: int = 200
    api_s_per_request: float = 20.0  # latency of one API request (label, reformat)
    filter_cpu_s_per_sample: float = 2.0  # CPU seconds to verify one sample (code tests dominate)
    gen_flush_samples: int = 64  # samples lost at a preemption of a generation phase (one unflushed shard)
    benchmark_sizes: dict[str, int] = Field(
        default_factory=lambda: {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "gpqa_diamond": 198,
                                 "livecodebench": 511, "minerva": 272, "olympiadbench": 675, "gsm8k": 1319,
                                 "humaneval": 164, "mbpp": 974, "demo_math": 60,
                                 "demo_arith": 200}
    )


class Recipe(Strict):
    name: str
    description: str = ""
    seed: int = 0
    budget_usd: float | None = None
    sources: list[Source] = Field(default_factory=list)
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

    @model_validator(mode="after")
    def _check_references(self) -> Recipe:
        names = [s.name for s in self.sources]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {sorted(dupes)}")
        known = set(names)
        for where, refs in (("label.sources", self.label.sources), ("distill.sources", self.distill.sources)):
            missing = [r for r in refs if r not in known]
            if missing:
                raise ValueError(f"{where} names unknown sources {missing}; defined: {sorted(known)}")
        if self.assemble.science_source and self.assemble.science_source not in known:
            raise ValueError(f"assemble.science_source {self.assemble.science_source!r} is not a defined source")
        return self

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"recipe {self.name!r} has no source {name!r}")

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


class RecipeError(Exception):
    """A recipe that cannot be loaded; the message names the file, field and expectation."""


def _format_errors(path: str, err: ValidationError) -> str:
    lines = [f"{path}: invalid recipe ({err.error_count()} problem(s))"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown field (typo?); see `skyt1 recipe show` for the valid fields"
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = e["msg"]
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
        f"  reformat: {recipe.reformat.mode} ({recipe.reformat.api.model})",
        f"  mixture: {', '.join(f'{k}={v}' for k, v in recipe.assemble.mixture.items())}",
        f"  train: {t.base_model}, {t.finetuning_type}, cutoff {t.cutoff_len}, global batch {global_batch}, "
        f"lr {t.learning_rate}, {t.num_train_epochs:g} epochs, deepspeed {t.deepspeed}",
        f"  eval: {', '.join(recipe.eval.benchmarks)}",
        f"  budget: {'none' if recipe.budget_usd is None else f'${recipe.budget_usd:.0f}'}",
    ]
    return "\n".join(lines)
