"""What a recipe will cost before anything is launched: a runtime model per phase, priced per cloud.

Runtime model (every assumption is a field of the recipe's `cost:` section):
- generation (distill, eval): tokens = problems x n x tokens per sample; hours = tokens /
  (tokens/s per GPU x GPUs). Split over N jobs (`cloud.resources.<phase>.num_jobs`, `sky jobs launch
  --num-jobs N`), each job does 1/N of the tokens on its own node and pays its own setup: wall hours shrink,
  GPU-hours grow by N - 1 setups.
- training: FLOPs = 6 x parameters x tokens, tokens = samples x epochs x tokens per sample;
  hours = FLOPs / (GPUs x bf16 peak x MFU).
- API phases (label, reformat): dollars from tokens at the recipe's API prices; hours from request latency
  and concurrency. filter: CPU seconds per sample over the task's vCPUs.
- every phase adds `setup_hours` (provisioning, install, model download).
- spot: each preemption costs re-provisioning + setup (`spot_recovery_hours`) plus the work redone since the
  last checkpoint (half a checkpoint interval on average); with preemption rate r per hour and overhead o per
  preemption, expected wall time is T = hours / (1 - r o).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from skyt1.cloud import prices
from skyt1.data.benchmarks import parse_name
from skyt1.phases import TASK_PHASES
from skyt1.recipe import Recipe

DEFAULT_CPUS = {"label": 4, "reformat": 4, "filter": 32, "assemble": 8}


class CostError(Exception):
    """A cost that cannot be estimated; the message names the recipe field to fix."""


@dataclass
class PhaseWork:
    """How long one phase runs, independent of where."""

    name: str
    hours: float  # wall hours on demand, setup included
    gpus: int = 0  # over all jobs
    vcpus: int = 0
    jobs: int = 1  # parallel jobs (nodes) the phase is split over; `hours` is one job's
    api_usd: float = 0.0
    redo_hours: float = 0.0  # average work lost at a preemption
    work: dict = field(default_factory=dict)  # the sizes the hours come from

    def spot_hours(self, recipe: Recipe) -> float:
        c = recipe.cost
        overhead = c.spot_preemptions_per_hour * (c.spot_recovery_hours + self.redo_hours)
        if overhead >= 1:
            raise CostError(
                f"{self.name}: on spot, expected preemption overhead ({overhead:.2f} per hour) exceeds the work "
                "itself, so the phase would never finish; lower cost.spot_preemptions_per_hour or checkpoint "
                "more often (train.save_steps)"
            )
        return self.hours / (1 - overhead)


# ------------------------------------------------------------------------------------------- work sizes


def params_of(model: str, stated: float | None = None) -> float:
    """Parameter count: the recipe's statement, else the size in the model name ("Qwen2.5-32B" -> 32e9)."""
    if stated:
        return stated
    m = re.search(r"(\d+(?:\.\d+)?)\s*([BM])\b", model.split("/")[-1], re.IGNORECASE)
    if not m:
        raise CostError(
            f"cannot tell the parameter count of {model!r} from its name; set cost.train_params (e.g. 32.8e9)"
        )
    return float(m.group(1)) * (1e9 if m.group(2).upper() == "B" else 1e6)


def problems(recipe: Recipe, source_names: list[str]) -> dict[str, int]:
    """Expected problems per source: the recipe's estimate, else the source's own count or row range."""
    out = {}
    for name in source_names:
        src = recipe.source(name)
        if name in recipe.cost.expected_problems:
            out[name] = recipe.cost.expected_problems[name]
        elif src.count is not None:
            out[name] = src.count
        elif src.end is not None:
            out[name] = src.end - src.start
        else:
            out[name] = recipe.cost.default_problems_per_source
    return out


def _gpus(recipe: Recipe, phase: str) -> int:
    if phase == "train":
        return recipe.train.gpus_per_node * recipe.train.num_nodes
    res = recipe.cloud.resources.get(phase)
    if res and res.accelerators:
        _, _, count = res.accelerators.partition(":")
        return int(count or 1) * res.num_nodes
    return 8  # the task YAMLs ask for H100:8


def jobs(recipe: Recipe, phase: str) -> int:
    res = recipe.cloud.resources.get(phase)
    return res.num_jobs if res else 1


def _vcpus(recipe: Recipe, phase: str) -> int:
    res = recipe.cloud.resources.get(phase)
    if res and res.cpus:
        return int(float(res.cpus.rstrip("+")))
    return DEFAULT_CPUS[phase]


def _gen_hours(tokens: float, recipe: Recipe, gpus: int) -> float:
    return tokens / (recipe.cost.gen_tokens_per_s_per_gpu * gpus) / 3600


def _api(recipe: Recipe, api, requests: int, in_tokens: float, out_tokens: float) -> tuple[float, float]:
    usd = (in_tokens * api.usd_per_1m_input + out_tokens * api.usd_per_1m_output) / 1e6
    hours = requests * recipe.cost.api_s_per_request / max(1, api.concurrency) / 3600
    return usd, hours


def train_steps(recipe: Recipe, samples: int) -> int:
    t = recipe.train
    global_batch = t.per_device_train_batch_size * t.gradient_accumulation_steps * t.gpus_per_node * t.num_nodes
    steps = math.ceil(samples / global_batch) * t.num_train_epochs
    return int(min(steps, t.max_steps) if t.max_steps else steps)


def estimate_work(recipe: Recipe) -> list[PhaseWork]:
    """Hours (and API dollars) of every phase the recipe runs."""
    c, setup = recipe.cost, recipe.cost.setup_hours
    out: list[PhaseWork] = []

    # label: nothing to buy when the published labels are used
    labelled = problems(recipe, recipe.label.sources)
    n_label = 0 if recipe.label.from_published else sum(labelled.values())
    usd, hours = _api(recipe, recipe.label.api, n_label, n_label * c.api_prompt_tokens, n_label * c.label_output_tokens)
    out.append(PhaseWork("label", setup + hours, vcpus=_vcpus(recipe, "label"), api_usd=usd,
                         work={"problems": n_label, "from_published": recipe.label.from_published}))

    # distill
    per_source = problems(recipe, recipe.distill.sources)
    samples = sum(per_source.values()) * recipe.distill.sampling.n
    gen_tokens = samples * c.gen_tokens_per_sample
    gpus, n_jobs = _gpus(recipe, "distill"), jobs(recipe, "distill")
    out.append(PhaseWork(
        "distill", setup + _gen_hours(gen_tokens / n_jobs, recipe, gpus), gpus=gpus * n_jobs, jobs=n_jobs,
        redo_hours=_gen_hours(c.gen_flush_samples * c.gen_tokens_per_sample, recipe, gpus) / 2,
        work={"problems": per_source, "n": recipe.distill.sampling.n, "samples": samples, "tokens": gen_tokens},
    ))

    # reformat: rule and answer modes cost nothing; llm (and auto, at worst) sends every trace
    n_ref = 0 if recipe.reformat.mode in ("rule", "answer") else samples
    usd, hours = _api(recipe, recipe.reformat.api, n_ref, n_ref * (c.api_prompt_tokens + c.gen_tokens_per_sample),
                      n_ref * c.gen_tokens_per_sample)
    out.append(PhaseWork("reformat", setup + hours, vcpus=_vcpus(recipe, "reformat"), api_usd=usd,
                         work={"samples": n_ref, "mode": recipe.reformat.mode}))

    vcpus = _vcpus(recipe, "filter")
    out.append(PhaseWork("filter", setup + samples * c.filter_cpu_s_per_sample / vcpus / 3600, vcpus=vcpus,
                         work={"samples": samples}))
    out.append(PhaseWork("assemble", setup, vcpus=_vcpus(recipe, "assemble"), work={}))

    # train
    train_samples = c.train_samples or sum(recipe.assemble.mixture.values())
    params = params_of(recipe.train.base_model, c.train_params)
    tokens = train_samples * recipe.train.num_train_epochs * c.train_tokens_per_sample
    steps = train_steps(recipe, train_samples)
    full_steps = train_steps(recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": None})}),
                             train_samples)
    tokens *= steps / full_steps if full_steps else 1
    gpus = _gpus(recipe, "train")
    flops = 6 * params * tokens
    compute_h = flops / (gpus * c.gpu_bf16_peak_tflops * 1e12 * c.train_mfu) / 3600
    step_h = compute_h / steps if steps else 0.0
    out.append(PhaseWork(
        "train", setup + compute_h, gpus=gpus, redo_hours=min(recipe.train.save_steps, steps) * step_h / 2,
        work={"samples": train_samples, "epochs": recipe.train.num_train_epochs, "tokens": tokens,
              "params": params, "flops": flops, "steps": steps, "step_hours": step_h, "mfu": c.train_mfu},
    ))

    # eval
    ev, eval_tokens, eval_samples = recipe.eval, 0.0, {}
    for b in ev.benchmarks:
        size = c.benchmark_sizes.get(parse_name(b).base)  # aliases and LiveCodeBench variants share a size
        if size is None:
            raise CostError(f"no size for benchmark {b!r}; add it to cost.benchmark_sizes")
        size = min(size, ev.limit) if ev.limit else size
        eval_samples[b] = size * ev.n.get(b, ev.sampling.n)
        eval_tokens += eval_samples[b] * c.eval_tokens_per_sample
    gpus, n_jobs = _gpus(recipe, "eval"), jobs(recipe, "eval")
    out.append(PhaseWork(
        "eval", setup + _gen_hours(eval_tokens / n_jobs, recipe, gpus), gpus=gpus * n_jobs, jobs=n_jobs,
        redo_hours=_gen_hours(c.gen_flush_samples * c.eval_tokens_per_sample, recipe, gpus) / 2,
        work={"samples": eval_samples, "tokens": eval_tokens},
    ))
    return out


# ------------------------------------------------------------------------------------------- prices


def _gpu_hour_prices(recipe: Recipe, gpu_hour_price: float | None) -> list[dict]:
    """One row per cloud: on-demand and spot price of a GPU-hour, and where it came from."""
    rows = []
    for o in prices.gpu_offers(recipe.cost.gpu, 8):
        on_demand, spot, source = o.usd_per_hour / o.gpus, o.price(True), o.source
        spot = spot / o.gpus if spot is not None else None
        if o.cloud in recipe.cost.usd_per_gpu_hour:
            on_demand, source = recipe.cost.usd_per_gpu_hour[o.cloud], "recipe cost.usd_per_gpu_hour"
        if gpu_hour_price is not None:
            on_demand, spot, source = gpu_hour_price, (gpu_hour_price if spot is not None else None), "--gpu-hour-price"
        rows.append({"cloud": o.cloud, "instance_type": o.instance_type, "on_demand": on_demand, "spot": spot,
                     "source": source})
    return rows


def estimate(
    recipe: Recipe,
    *,
    cloud: str | None = None,
    spot: bool = False,
    gpu_hour_price: float | None = None,
    phases: tuple[str, ...] | list[str] | None = None,
) -> dict:
    """The cost table of `skyt1 cost`: every phase priced on every cloud, on demand and spot, and the
    cheapest choice allowed by `cloud`/`spot` as the phase's `usd`."""
    gpu_rows = _gpu_hour_prices(recipe, gpu_hour_price)
    if cloud is not None:
        gpu_rows = [r for r in gpu_rows if r["cloud"] == cloud]
        if not gpu_rows:
            known = sorted(r["cloud"] for r in _gpu_hour_prices(recipe, gpu_hour_price))
            raise CostError(f"no {recipe.cost.gpu} price for cloud {cloud!r}; known clouds: {known}")
    out_phases = []
    for w in estimate_work(recipe):
        if phases is not None and w.name not in phases:
            continue
        spot_h = w.spot_hours(recipe)
        by_cloud = {}
        for r in gpu_rows:
            if w.gpus:
                od = w.hours * w.gpus * r["on_demand"]
                sp = spot_h * w.gpus * r["spot"] if r["spot"] is not None else None
            else:
                od = w.hours * w.vcpus * prices.cpu_usd_per_vcpu_hour(r["cloud"])
                sp = spot_h * w.vcpus * prices.cpu_usd_per_vcpu_hour(r["cloud"], spot=True)
            by_cloud[r["cloud"]] = {"on_demand_usd": od + w.api_usd, "spot_usd": None if sp is None else sp + w.api_usd}
        options = [(v["spot_usd"], c, True) for c, v in by_cloud.items() if spot and v["spot_usd"] is not None]
        options += [(v["on_demand_usd"], c, False) for c, v in by_cloud.items() if not spot or v["spot_usd"] is None]
        usd, chosen, on_spot = min(options)
        hours = spot_h if on_spot else w.hours
        out_phases.append({
            "name": w.name, "hours": hours, "gpus": w.gpus, "jobs": w.jobs, "gpu_hours": hours * w.gpus,
            "vcpus": w.vcpus,
            "usd": usd, "api_usd": w.api_usd, "cloud": chosen, "spot": on_spot,
            "on_demand_hours": w.hours, "spot_hours": spot_h, "by_cloud": by_cloud, "work": w.work,
        })
    return {
        "recipe": recipe.name,
        "phases": out_phases,
        "total_usd": sum(p["usd"] for p in out_phases),
        "total_hours": sum(p["hours"] for p in out_phases),
        "total_gpu_hours": sum(p["gpu_hours"] for p in out_phases),
        "api_usd": sum(p["api_usd"] for p in out_phases),
        "budget_usd": recipe.budget_usd,
        "prices": gpu_rows,
        "assumptions": recipe.cost.model_dump(mode="json"),
    }


def phase_hours(recipe: Recipe, phase: str, spot: bool) -> float:
    """Expected wall hours of one job of a phase (SkyPilot's time estimator for one task)."""
    for w in estimate_work(recipe):
        if w.name == phase:
            return w.spot_hours(recipe) if spot else w.hours
    raise CostError(f"unknown phase {phase!r}; phases: {', '.join(TASK_PHASES)}")


def as_dict(work: list[PhaseWork]) -> list[dict]:
    return [asdict(w) for w in work]
