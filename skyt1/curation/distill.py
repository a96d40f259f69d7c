"""Phase `distill`: teacher traces for the recipe's problem sources.

Each problem gets `sampling.n` samples with ids `<problem id>#<k>` and seeds `sampling.seed + row * n + k`
(`row` is the problem's position in its source), so a sample is the same request however the work is split.
`--shard i/N` takes the problems whose id hash falls in bucket i, so N machines split one run without
overlap; each writes shard files tagged with its shard, and whichever finishes last (or any later run
without `--shard`) writes the phase manifest once every sample exists. Failed generations go to the
`failed` stream with their reason and are retried by the next run.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

from skyt1 import phases
from skyt1.curation.common import is_error, progress
from skyt1.data.prompts import user_turn
from skyt1.data.sources import load_source
from skyt1.engines.base import Request, SamplingParams
from skyt1.protocol import PhaseError, PhaseRun, Shard, run_phase
from skyt1.recipe import Recipe
from skyt1.store import RunDir

NAME = "distill"


def problems(recipe: Recipe, labels: dict | None, start: int = 0, end: int | None = None
             ) -> tuple[list[dict], list[dict], dict]:
    out, quarantine, skipped = [], [], Counter()
    for name in recipe.distill.sources:
        loaded = load_source(recipe, name, labels)
        out += loaded.problems[start:end]
        quarantine += loaded.quarantine
        skipped.update({f"{name}: {k}": v for k, v in loaded.skipped.items()})
    return out, quarantine, dict(skipped)


def requests_for(recipe: Recipe, probs: list[dict], done: set[str]) -> list[tuple[Request, dict, int]]:
    cfg = recipe.distill
    s = cfg.sampling
    out = []
    for p in probs:
        messages = [{"role": "system", "content": cfg.system_prompt},
                    {"role": "user", "content": user_turn(p, recipe.prompts.user)}]
        row = int(p["meta"].get("row", 0))
        for k in range(s.n):
            sid = f"{p['id']}#{k}"
            if sid in done:
                continue
            sampling = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                                      seed=s.seed + row * s.n + k)
            out.append((Request(sid, messages, sampling), p, k))
    return out


def _engine(recipe: Recipe):
    from skyt1.engines import make_engine

    cfg = recipe.distill.engine
    local = recipe.resolve_path(cfg.model) if cfg.model.startswith((".", "/", "~")) else None
    return make_engine(cfg, model=local)


def run(recipe: Recipe, run: RunDir, *, force: bool = False, start: int = 0, end: int | None = None,
        shard: str | None = None, engine=None) -> dict:
    """`engine`: an engine already running the recipe's teacher (the demo shares one vLLM server between
    phases); left open. None: the phase starts the recipe's engine and closes it."""
    if start < 0 or (end is not None and end <= start):
        raise PhaseError(f"--start {start} --end {end}: need 0 <= start < end")
    part = Shard.parse(shard)
    window = {k: v for k, v in (("start", start), ("end", end)) if v != {"start": 0, "end": None}[k]}
    needs = phases.get(NAME).needs(recipe)  # difficulty labels, when a distilled numina source has bounds
    return run_phase(NAME, recipe, run, partial(_distill, part=part, start=start, end=end, labelled=bool(needs),
                                                   engine=engine),
                     force=force, extras=window, shard=part)


def _distill(p: PhaseRun, part: Shard, start: int, end: int | None, labelled: bool, engine=None) -> dict:
    recipe = p.recipe
    ph = p.dir
    labels = {r["id"]: r["difficulty"] for r in p.upstream("label").records()} if labelled else None
    probs, quarantine, skipped = problems(recipe, labels, start, end)
    mine = [x for x in probs if x["id"] in part]
    todo = requests_for(recipe, mine, ph.ids("records"))
    by_id = {r.id: (x, k) for r, x, k in todo}
    p.quarantine(quarantine)
    engine_info = None
    with ph.writer("records", flush_every=recipe.distill.flush_every, tag=part.tag) as w, \
            ph.writer("failed", flush_every=16, tag=part.tag) as fw:
        if todo:
            own = engine is None
            engine = _engine(recipe) if own else engine
            try:
                engine_info = engine.info()  # versions, parallelism, whether per-request seeds were honoured
                desc = f"distill {part.tag}".strip()
                for c in progress(engine.generate(r for r, _, _ in todo), len(todo), desc):
                    x, k = by_id[c.id]
                    if is_error(c.finish_reason):
                        fw.write({"id": c.id, "problem_id": x["id"], "reason": c.finish_reason})
                        continue
                    w.write({**x, "id": c.id, "problem_id": x["id"], "sample_index": k, "response": c.text,
                             "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                             "completion_tokens": c.completion_tokens})
            finally:
                if own:
                    engine.close()
    n = recipe.distill.sampling.n
    expected = {f"{x['id']}#{k}" for x in probs for k in range(n)}
    mine_expected = {f"{x['id']}#{k}" for x in mine for k in range(n)}
    written = ph.ids("records")
    missing = len(expected - written)
    finish_reasons = Counter(r["finish_reason"] for r in ph.records("records")) if missing == 0 else {}
    counts = {"problems": len(probs), "in": len(expected), "out": len(expected & written),
              "rejected": {"failed": len(ph.ids("failed") - written), "quarantine": len(quarantine), **skipped},
              "finish_reasons": dict(finish_reasons)}
    config = {"engine": recipe.distill.engine.model_dump(mode="json"),
              "sampling": recipe.distill.sampling.model_dump(mode="json"),
              "system_prompt": recipe.distill.system_prompt, "sources": recipe.distill.sources,
              "start": start, "end": end, "shard": str(part)}
    if engine_info is not None:
        config["engine_info"] = engine_info
    return p.finish(counts=counts, config=config, pending=missing, what="generation(s)",
                    shard_pending=len(mine_expected - written))
