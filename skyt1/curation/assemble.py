"""Phase `assemble`: the SFT data set in LlamaFactory's ShareGPT format.

Candidates are the verified traces of `filter` plus the science source imported as given. Questions that
duplicate an earlier problem's question (exact after normalisation, or near: Jaccard of word 5-gram
shingles >= `near_dup_threshold`) and questions sharing a word n-gram with a benchmark are removed (listed
in the `removed` stream with the reason, the matched problem or benchmark and the n-gram). The mixture is
then sampled per domain with a seeded RNG. Outputs: `train.json`, `dataset_info.json`, `stats.json`.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from pathlib import Path

from skyt1.curation.common import progress
from skyt1.curation.decontam import Decontaminator, benchmark_questions
from skyt1.curation.dedup import NearDuplicates, normalize
from skyt1.curation.sharegpt import as_given_trace
from skyt1.data.prompts import system_prompt, user_turn
from skyt1.data.sources import load_source
from skyt1.protocol import PhaseRun, run_phase
from skyt1.recipe import Recipe
from skyt1.redact import redact
from skyt1.store import PhaseDir, RunDir, content_digest
from skyt1.training.config import dataset_info

NAME = "assemble"
TRAIN_FILE = "train.json"


def sharegpt_row(system: str | None, user: str, trace: str) -> dict:
    return {"system": system or "", "conversations": [{"from": "user", "value": user},
                                                      {"from": "assistant", "value": trace}]}


def candidates(recipe: Recipe, filtered: PhaseDir) -> tuple[list[dict], list[dict]]:
    """Rows {id, problem_id, domain, question, user, trace, method} and quarantined rows."""
    mode = recipe.prompts.user
    rows = [{"id": r["id"], "problem_id": r["problem_id"], "domain": r["domain"], "question": r["question"],
             "user": user_turn(r, mode), "trace": r["trace"], "method": r.get("reformat_method")}
            for r in filtered.records()]
    quarantine = []
    if recipe.assemble.science_source:
        loaded = load_source(recipe, recipe.assemble.science_source)
        quarantine += loaded.quarantine
        for p in loaded.problems:
            rows.append({"id": f"{p['id']}#given", "problem_id": p["id"], "domain": p["domain"],
                         "question": p["question"], "user": user_turn(p, mode),
                         "trace": as_given_trace(p["solution"], p["domain"]), "method": "as_given"})
    return rows, quarantine


def remove_duplicates_and_contamination(rows: list[dict], *, threshold: float, decontam: Decontaminator | None,
                                        show_progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Rows kept, and removed rows with their reason. Problems are visited in id order, so which copy of a
    duplicate survives does not depend on input order."""
    by_problem: dict[str, list[dict]] = {}
    for r in rows:
        by_problem.setdefault(r["problem_id"], []).append(r)
    exact: dict[str, str] = {}
    near = NearDuplicates(threshold)
    near_ids: list[str] = []
    kept, removed = [], []
    pids = sorted(by_problem)
    for pid in progress(pids, len(pids), "assemble") if show_progress else pids:
        group = by_problem[pid]
        question = group[0]["question"]
        hit = decontam.match(question) if decontam else None
        if hit:
            why = {"reason": "benchmark contamination", "benchmark": hit[0], "ngram": hit[1]}
        else:
            norm = normalize(question)
            if norm in exact:
                why = {"reason": "exact duplicate", "duplicate_of": exact[norm]}
            else:
                match = near.add(question)
                if match is not None:
                    why = {"reason": "near duplicate", "duplicate_of": near_ids[match[0]],
                           "similarity": round(match[1], 4)}
                else:
                    exact[norm] = pid
                    why = None
                near_ids.append(pid)
        if why is None:
            kept += group
        else:
            removed += [{"id": r["id"], "problem_id": pid, "domain": r["domain"], "question": question, **why}
                        for r in group]
    return kept, removed


def sample_mixture(rows: list[dict], targets: dict[str, int], seed: int) -> tuple[list[dict], dict]:
    rng = random.Random(seed)
    chosen, report = [], {}
    for domain in sorted(set(targets) | {r["domain"] for r in rows}):
        pool = sorted((r for r in rows if r["domain"] == domain), key=lambda r: r["id"])
        want = targets.get(domain, 0)
        take = pool if len(pool) <= want else rng.sample(pool, want)
        chosen += take
        report[domain] = {"target": want, "available": len(pool), "selected": len(take),
                          "shortfall": max(0, want - len(pool))}
    return sorted(chosen, key=lambda r: r["id"]), report


def token_lengths(recipe: Recipe, texts: list[str]) -> tuple[list[int], str]:
    """Token counts with the base model's tokenizer when it is a local directory, else a word estimate."""
    base = recipe.resolve_path(recipe.train.base_model)
    if base and Path(base).is_dir():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(base)
        return [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts], f"tokenizer:{base}"
    return [len(t.split()) for t in texts], "estimate:whitespace words (base model is not a local directory)"


def length_stats(lengths: list[int], cutoff: int, method: str) -> dict:
    if not lengths:
        return {"method": method, "count": 0, "cutoff_len": cutoff}
    ordered = sorted(lengths)
    return {"method": method, "count": len(lengths), "cutoff_len": cutoff, "mean": round(statistics.fmean(lengths), 1),
            "median": ordered[len(ordered) // 2], "p95": ordered[int(0.95 * (len(ordered) - 1))], "max": ordered[-1],
            "over_cutoff": sum(n > cutoff for n in lengths)}


def build(recipe: Recipe, rows: list[dict], *, decontam: Decontaminator | None, show_progress: bool = True):
    cfg = recipe.assemble
    kept, removed = remove_duplicates_and_contamination(rows, threshold=cfg.near_dup_threshold, decontam=decontam,
                                                        show_progress=show_progress)
    chosen, mixture = sample_mixture(kept, cfg.mixture, cfg.seed)
    system = system_prompt(recipe.prompts.system)
    train = [sharegpt_row(system, r["user"], r["trace"]) for r in chosen]
    return chosen, train, removed, mixture


def run(recipe: Recipe, run: RunDir, *, force: bool = False) -> dict:
    return run_phase(NAME, recipe, run, _assemble, force=force)


def _assemble(p: PhaseRun) -> dict:
    recipe, ph = p.recipe, p.dir
    cfg = recipe.assemble
    ph.clear(keep=[p.lock.name, "_STARTED.json"])  # every output is derived from the inputs at once
    rows, quarantine = candidates(recipe, p.upstream("filter"))
    data_dir = recipe.resolve_path(recipe.eval.data_dir)
    questions, skipped = benchmark_questions(cfg.decontam_benchmarks, data_dir)
    decontam = Decontaminator(questions, cfg.decontam_ngram)
    chosen, train, removed, mixture = build(recipe, rows, decontam=decontam)
    lengths, method = token_lengths(recipe, [r["system"] + "\n" + "\n".join(t["value"] for t in r["conversations"])
                                             for r in train])
    stats = {
        "rows": len(train), "candidates": len(rows), "mixture": mixture,
        "removed": dict(Counter(r["reason"] for r in removed)),
        "contamination_by_benchmark": dict(Counter(r["benchmark"] for r in removed if "benchmark" in r)),
        "decontamination": {"ngram": cfg.decontam_ngram, "benchmarks": {k: len(v) for k, v in questions.items()},
                            "skipped": skipped},
        "near_dup_threshold": cfg.near_dup_threshold,
        "methods": dict(Counter(r["method"] for r in chosen)),
        "tokens": length_stats(lengths, recipe.train.cutoff_len, method),
        "quarantine": len(quarantine),
    }
    text = json.dumps(redact(train), ensure_ascii=False, indent=1)
    ph.write_bytes(TRAIN_FILE, text.encode())
    ph.write_json("dataset_info.json", dataset_info(cfg.dataset_name, TRAIN_FILE))
    ph.write_json("stats.json", stats)
    with ph.writer("removed", flush_every=1024) as w:
        w.write_many(removed)
    p.quarantine(quarantine)
    counts = {"in": len(rows), "out": len(train), "rejected": stats["removed"] | {"quarantine": len(quarantine)},
              "mixture": mixture, "benchmarks_skipped": skipped}
    return p.finish(counts=counts, outputs={TRAIN_FILE: content_digest(text), "removed": ph.output_digest("removed")},
                    config=cfg.model_dump(mode="json") | {"cutoff_len": recipe.train.cutoff_len})
