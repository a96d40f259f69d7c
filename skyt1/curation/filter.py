"""Phase `filter`: rejection sampling. Math solutions must match the reference answer, code solutions must
pass the problem's unit tests in the sandbox (a crash, a timeout or a wrong output is a failure).

Scoring writes a `verdicts` stream (resumable); the selection then derives `records` (correct, at most
`max_correct_per_problem` per problem, lowest sample index first) and `rejected` (with the scorer's status
as reason) from it. Records without a reference or tests are quarantined.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import as_completed

from skyt1.curation.common import progress
from skyt1.curation.sharegpt import solution_of
from skyt1.protocol import PhaseRun, run_phase
from skyt1.recipe import Recipe
from skyt1.scoring.registry import verdict_of
from skyt1.store import PhaseDir, RunDir

NAME = "filter"
DERIVED = ("records", "rejected")


def target_of(rec: dict) -> tuple[str, object] | None:
    if rec["domain"] == "math" and rec.get("reference") not in (None, ""):
        return "math", rec["reference"]
    if rec["domain"] == "code" and isinstance(rec.get("tests"), dict):
        return "code", rec["tests"]
    return None


def _score(recipe: Recipe, ph: PhaseDir, todo: list[dict]) -> None:
    from skyt1.scoring import ScoringPool

    cfg = recipe.filter
    timeouts = {"math": cfg.math_timeout_s, "code": cfg.code_timeout_s}
    kinds = {target_of(r)[0] for r in todo}
    pools = {k: ScoringPool(cfg.workers, timeouts[k], cfg.memory_mb, full_run=not cfg.stop_at_first_failure,
                            allow_unsandboxed=cfg.allow_unsandboxed) for k in kinds}
    try:
        if "code" in pools:
            pools["code"].code_isolation()  # a node where code may not run fails here (one line), before scoring
        futures = {}
        for rec in todo:
            kind, target = target_of(rec)
            futures[pools[kind].submit(kind, solution_of(rec["trace"]), target,
                                       finish_reason=rec.get("finish_reason"))] = rec
        with ph.writer("verdicts", flush_every=64) as w:
            for fut in progress(as_completed(futures), len(futures), "filter"):
                rec = futures[fut]
                w.write({**rec, "verdict": verdict_of(fut)})
    finally:
        for p in pools.values():
            p.close()


def select(verdicts: list[dict], k: int | None) -> tuple[list[dict], list[dict]]:
    """Keep correct records, at most k per problem (lowest sample index, then id, first)."""
    keep, reject = [], []
    per_problem: dict[str, list[dict]] = defaultdict(list)
    for r in verdicts:
        if r["verdict"]["correct"]:
            per_problem[r["problem_id"]].append(r)
        else:
            reject.append({**r, "reason": r["verdict"]["status"] or "incorrect"})
    for group in per_problem.values():
        group.sort(key=lambda r: (str(r.get("sample_index")), r["id"]))
        limit = len(group) if k is None else k
        keep += group[:limit]
        reject += [{**r, "reason": f"over max_correct_per_problem={k}"} for r in group[limit:]]
    return keep, reject


def run(recipe: Recipe, run: RunDir, *, force: bool = False) -> dict:
    return run_phase(NAME, recipe, run, _filter, force=force)


def _filter(p: PhaseRun) -> dict:
    recipe, ph, src_ph = p.recipe, p.dir, p.upstream("reformat")
    done = ph.ids("verdicts") | ph.ids("quarantine")
    todo, bad, n_in = [], [], 0
    for rec in src_ph.records():
        n_in += 1
        if rec["id"] in done:
            continue
        if target_of(rec) is None:
            bad.append({**rec, "reason": f"{rec['domain']} record without a reference answer or tests"})
        else:
            todo.append(rec)
    quarantined = p.quarantine(bad)
    if todo:
        _score(recipe, ph, todo)
    verdicts = list(ph.records("verdicts"))
    keep, reject = select(verdicts, recipe.filter.max_correct_per_problem)
    for stream in DERIVED:  # derived from verdicts: rewrite whole
        for key in ph.backend.list(ph.key(stream)):
            ph.backend.delete(key)
    for stream, rows in (("records", keep), ("rejected", reject)):
        with ph.writer(stream, flush_every=256) as w:
            w.write_many(rows)
    counts = {"in": n_in, "out": len(keep), "scored": len(verdicts),
              "rejected": dict(Counter(r["reason"] for r in reject)) | ({"quarantine": quarantined} if quarantined else {}),
              "by_domain": dict(Counter(r["domain"] for r in keep)),
              "by_method": dict(Counter(r.get("reformat_method") for r in keep)),
              # which sandbox ran the code, and which rule read each kept math answer
              "isolation": dict(Counter(r["verdict"]["isolation"] for r in verdicts if r["verdict"].get("isolation"))),
              "extraction": dict(Counter(r["verdict"]["extraction"] for r in keep if r["verdict"].get("extraction")))}
    return p.finish(counts=counts, config=recipe.filter.model_dump(mode="json"))
