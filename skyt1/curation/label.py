"""Phase `label`: difficulty of math problems on the AoPS 1-10 scale, by an OpenAI-compatible model or from
the published labels (NovaSky-AI/labeled_numina_difficulty_859K).

Records: `{id: problem id, difficulty: number | None, raw, usage, method}`. A reply without a parsable
rating is kept with `difficulty: None` and counted as unlabeled. A request that failed after the engine's
retries goes to the `failed` stream and is retried by the next run of the same command.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import partial

from skyt1.curation.common import api_config, is_error, progress, sum_usage, usd
from skyt1.data import prompts
from skyt1.data.hub import load_rows
from skyt1.data.sources import load_source
from skyt1.engines.base import Request
from skyt1.protocol import PhaseRun, run_phase
from skyt1.recipe import Recipe
from skyt1.store import RunDir

NAME = "label"
INSTRUCTION = prompts.TEMPLATES["label/difficulty"]

_DOUBLE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_SINGLE = re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]")


def parse_difficulty(text: str | None) -> float | int | None:
    """The last [[n]] in the reply, else the last [n]; None when absent or outside 1-10."""
    if not text:
        return None
    for pattern in (_DOUBLE, _SINGLE):
        found = pattern.findall(text)
        if found:
            value = float(found[-1])
            if not 1 <= value <= 10:
                return None
            return int(value) if value.is_integer() else value
    return None


def _problems(recipe: Recipe) -> tuple[list[dict], list[dict]]:
    problems, quarantine = [], []
    for name in recipe.label.sources:
        loaded = load_source(recipe, name, labels=None)
        problems += loaded.problems
        quarantine += loaded.quarantine
    return problems, quarantine


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _from_published(recipe: Recipe, problems: list[dict], todo: list[dict], writer) -> Counter:
    cfg = recipe.label
    rows = load_rows(cfg.published_hub_id, local_path=recipe.resolve_path(cfg.published_local_path))
    by_text = {}
    for row in rows:
        text = row.get("problem")
        if isinstance(text, str):
            raw = row.get("gpt_difficulty_parsed", row.get("gpt_difficulty"))
            by_text.setdefault(_normalize(text), raw)
    counts = Counter()
    for p in todo:
        raw = by_text.get(_normalize(p["question"]), None)
        found = _normalize(p["question"]) in by_text
        difficulty = raw if isinstance(raw, int | float) and 1 <= raw <= 10 else parse_difficulty(str(raw)) if raw else None
        writer.write({"id": p["id"], "difficulty": difficulty, "raw": raw, "usage": None,
                      "method": "published" if found else "published:not found"})
        counts["labeled" if difficulty is not None else "unlabeled"] += 1
    return counts


def _from_api(recipe: Recipe, todo: list[dict], writer, failed_writer) -> Counter:
    from skyt1.engines import api_engine, sampling_from_api

    api = recipe.label.api
    sampling = sampling_from_api(api, seed=recipe.seed)
    requests = (
        Request(p["id"], [{"role": "user", "content": INSTRUCTION.render(problem=p["question"],
                                                                          solution=p.get("solution") or "(none)")}],
                sampling)
        for p in todo
    )
    counts = Counter()
    engine = api_engine(api)
    try:
        for c in progress(engine.generate(requests), len(todo), "label"):
            usage = {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens}
            if is_error(c.finish_reason):
                failed_writer.write({"id": c.id, "reason": c.finish_reason, "usage": usage})
                counts["failed"] += 1
                continue
            difficulty = parse_difficulty(c.text)
            writer.write({"id": c.id, "difficulty": difficulty, "raw": c.text, "usage": usage, "method": "api"})
            counts["labeled" if difficulty is not None else "unlabeled"] += 1
    finally:
        engine.close()
    return counts


def run(recipe: Recipe, run: RunDir, *, force: bool = False, from_published: bool | None = None) -> dict:
    published = recipe.label.from_published if from_published is None else from_published
    overridden = {"from_published": published} if published != recipe.label.from_published else {}
    return run_phase(NAME, recipe, run, partial(_label, published=published), force=force, extras=overridden)


def _label(p: PhaseRun, published: bool) -> dict:
    recipe = p.recipe
    ph = p.dir
    problems, quarantine = _problems(recipe)
    done = ph.ids("records")
    todo = [x for x in problems if x["id"] not in done]
    p.quarantine(quarantine)
    with ph.writer("records", flush_every=64) as w, ph.writer("failed", flush_every=16) as fw:
        if published:
            _from_published(recipe, problems, todo, w)
        else:
            _from_api(recipe, todo, w, fw)
    records = list(ph.records("records"))
    labeled = sum(r["difficulty"] is not None for r in records)
    missing = len(problems) - len(records)
    written = {r["id"] for r in records}
    usage = sum_usage(records + [r for r in ph.records("failed") if r["id"] not in written])
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    counts = {
        "in": len(problems), "out": len(records), "labeled": labeled, "unlabeled": len(records) - labeled,
        "rejected": {"failed": missing, "quarantine": len(quarantine)},
        "difficulty_histogram": dict(sorted(Counter(str(r["difficulty"]) for r in records).items())),
        "prompt_tokens": prompt, "completion_tokens": completion,
    }
    cost = 0.0 if published else usd(recipe.label.api, prompt, completion)
    config = {"from_published": published, "sources": recipe.label.sources,
              "api": None if published else api_config(recipe.label.api)}
    return p.finish(pending=missing, what="label request(s)", counts=counts, cost_usd=cost, config=config)
