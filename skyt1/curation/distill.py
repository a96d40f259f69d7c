"""Phase `distill`: teacher traces for the recipe's problem sources.

Each problem gets `sampling.n` samples with ids `<problem id>#<k>` and seeds `sampling.seed + row * n + k`
(`row` is the problem's position in its source), so a sample is the same request however the work is split.
`--shard i/N` takes the problems whose id hash falls in bucket i, so N machines split one run without
overlap; each writes shard files tagged with its shard, and whichever finishes last (or any later run
without `--shard`) writes the phase manifest once every sample exists. Failed generations go to the
`failed` stream with their reason and are retried by the next run.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter

from skyt1.curation.common import clear, finish, is_error, progress, upstream
from skyt1.curation.sharegpt import user_turn
from skyt1.data.sources import load_source
from skyt1.engines.base import Request, SamplingParams
from skyt1.recipe import Recipe
from skyt1.store import RunDir

NAME = "distill"


def parse_shard(value: str | None) -> tuple[int, int]:
    """"i/N" -> (i, N) with 0 <= i < N; None -> (0, 1)."""
    if not value:
        return 0, 1
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise ValueError(f"--shard {value!r}: expected I/N, e.g. 0/4 for the first of four machines") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {value!r}: need 0 <= I < N")
    return i, n


def in_shard(problem_id: str, shard: tuple[int, int]) -> bool:
    i, n = shard
    return n == 1 or int(hashlib.sha256(problem_id.encode()).hexdigest()[:12], 16) % n == i


def _labels(recipe: Recipe, run: RunDir) -> tuple[dict | None, dict]:
    """Difficulty labels when some distilled numina source has bounds (the label phase must be complete)."""
    bounded = [recipe.source(s) for s in recipe.distill.sources]
    if not any(s.dataset == "numina" and (s.difficulty_min is not None or s.difficulty_max is not None)
               for s in bounded):
        return None, {}
    ph, digest = upstream(run, "label")
    return {r["id"]: r["difficulty"] for r in ph.records()}, {"label": digest}


def problems(recipe: Recipe, run: RunDir, start: int = 0, end: int | None = None) -> tuple[list[dict], list[dict], dict, dict]:
    labels, inputs = _labels(recipe, run)
    out, quarantine, skipped = [], [], Counter()
    for name in recipe.distill.sources:
        loaded = load_source(recipe, name, labels)
        out += loaded.problems[start:end]
        quarantine += loaded.quarantine
        skipped.update({f"{name}: {k}": v for k, v in loaded.skipped.items()})
    return out, quarantine, dict(skipped), inputs


def requests_for(recipe: Recipe, probs: list[dict], done: set[str]) -> list[tuple[Request, dict, int]]:
    cfg = recipe.distill
    s = cfg.sampling
    out = []
    for p in probs:
        messages = [{"role": "system", "content": cfg.system_prompt},
                    {"role": "user", "content": user_turn(p, recipe.assemble.math_user_prefix)}]
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


def config_digest(recipe: Recipe, start: int = 0, end: int | None = None) -> str:
    """What the phase's output depends on in the recipe (compared with its manifest to skip it)."""
    return recipe.digest("distill", "sources", start=start, end=end)


def run(recipe: Recipe, run: RunDir, *, force: bool = False, start: int = 0, end: int | None = None,
        shard: str | None = None, engine=None) -> dict:
    """`engine`: an engine already running the recipe's teacher (the demo shares one vLLM server between
    phases); left open. None: the phase starts the recipe's engine and closes it."""
    shard_t = parse_shard(shard)
    digest = config_digest(recipe, start, end)
    probs, quarantine, skipped, inputs = problems(recipe, run, start, end)
    ph = run.phase(NAME)
    if not force and ph.is_complete(digest, inputs):
        return ph.manifest()
    if force and shard_t == (0, 1):
        clear(ph)
    t0 = time.time()
    tag = f"s{shard_t[0]}of{shard_t[1]}" if shard_t[1] > 1 else ""
    mine = [p for p in probs if in_shard(p["id"], shard_t)]
    todo = requests_for(recipe, mine, ph.ids("records"))
    by_id = {r.id: (p, k) for r, p, k in todo}
    with ph.writer("records", flush_every=recipe.distill.flush_every, tag=tag) as w, \
            ph.writer("failed", flush_every=16, tag=tag) as fw, ph.writer("quarantine", tag=tag) as qw:
        seen_q = ph.ids("quarantine")
        qw.write_many(q for q in quarantine if q["id"] not in seen_q)
        if todo:
            own = engine is None
            engine = _engine(recipe) if own else engine
            try:
                for c in progress(engine.generate(r for r, _, _ in todo), len(todo), f"distill {tag or ''}".strip()):
                    p, k = by_id[c.id]
                    if is_error(c.finish_reason):
                        fw.write({"id": c.id, "problem_id": p["id"], "reason": c.finish_reason})
                        continue
                    w.write({**p, "id": c.id, "problem_id": p["id"], "sample_index": k, "response": c.text,
                             "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                             "completion_tokens": c.completion_tokens})
            finally:
                if own:
                    engine.close()
    n = recipe.distill.sampling.n
    expected = {f"{p['id']}#{k}" for p in probs for k in range(n)}
    mine_expected = {f"{p['id']}#{k}" for p in mine for k in range(n)}
    written = ph.ids("records")
    missing = len(expected - written)
    config = {"engine": recipe.distill.engine.model_dump(mode="json"),
              "sampling": recipe.distill.sampling.model_dump(mode="json"), "system_prompt": recipe.distill.system_prompt,
              "sources": recipe.distill.sources, "start": start, "end": end, "shard": shard}
    finish_reasons = Counter(r["finish_reason"] for r in ph.records("records")) if missing == 0 else {}
    counts = {"problems": len(probs), "in": len(expected), "out": len(expected & written),
              "rejected": {"failed": len(ph.ids("failed") - written), "quarantine": len(quarantine), **skipped},
              "finish_reasons": dict(finish_reasons)}
    if missing and shard_t[1] > 1 and not (mine_expected - written):
        # This shard is done; others are still running. Leave a per-shard note and no phase manifest.
        note = {"shard": shard, "problems": len(mine), "counts": counts, "finished_at": time.time()}
        ph.write_json(f"_SHARD-{tag}.json", note)
        return {"phase": NAME, "complete": False, "shard": note, "message":
                f"shard {shard} done; {missing} samples of other shards still missing"}
    return finish(ph, pending=missing, what="generation(s)", recipe_digest=digest, inputs=inputs, counts=counts,
                  started_at=t0, config=config)
