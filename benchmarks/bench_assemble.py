"""Assemble at scale: dedup (exact + MinHash/LSH near-dup) and n-gram decontamination of 100,000 synthetic
training rows against every benchmark available under ../shared/data, then the seeded mixture and the
ShareGPT rows. Baseline in the same run: naive all-pairs Jaccard dedup on a 5,000-row subset, scaled by
(100k/5k)^2. Prints one JSON line.

    python benchmarks/bench_assemble.py [--rows 100000] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path

from skyt1.curation.assemble import build
from skyt1.curation.decontam import Decontaminator, benchmark_questions
from skyt1.curation.dedup import jaccard, shingles
from skyt1.recipe import Recipe

BENCHMARKS = ["aime24", "aime25", "amc23", "math500", "gpqa_diamond", "livecodebench"]
VOCAB = [f"w{i}" for i in range(5000)] + "find the number of ways sum integer prime triangle area".split()


def synthetic_rows(n: int, seed: int, plant: list[str]) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = rng.choices(VOCAB, k=rng.randint(25, 70))
        q = " ".join(words)
        if i % 50 == 1:  # near duplicate of the previous question
            q = rows[-1]["question"] + " again"
        elif i % 97 == 2:  # exact duplicate after normalisation
            q = rows[-1]["question"].upper()
        elif i % 1000 == 3 and plant:  # contaminated
            q = "Consider this. " + plant[i % len(plant)]
        domain = "math" if i % 3 else "code"
        rows.append({"id": f"bench/{i:06d}#0", "problem_id": f"bench/{i:06d}", "domain": domain, "question": q,
                     "user": q, "trace": "<|begin_of_thought|> t <|end_of_thought|> <|begin_of_solution|> "
                     "s <|end_of_solution|>", "method": "llm"})
    return rows


def naive_dedup_seconds(rows: list[dict], threshold: float) -> float:
    t = time.perf_counter()
    sets = []
    for r in rows:
        sh = shingles(r["question"])
        if not any(jaccard(sh, other) >= threshold for other in sets):
            sets.append(sh)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--baseline-rows", type=int, default=5_000)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:2]))
    except (AttributeError, OSError):
        pass
    recipe = Recipe.model_validate({"name": "bench", "distill": {"engine": {"model": "x"}},
                                    "assemble": {"mixture": {"math": 50_000, "code": 20_000, "science": 0}}})
    t0 = time.perf_counter()
    questions, skipped = benchmark_questions(BENCHMARKS, args.data_dir)
    decontam = Decontaminator(questions, recipe.assemble.decontam_ngram)
    t_index = time.perf_counter() - t0
    plant = questions.get("math500", [])[:20]
    rows = synthetic_rows(args.rows, 0, plant)
    t1 = time.perf_counter()
    chosen, train, removed, mixture = build(recipe, rows, decontam=decontam, show_progress=False)
    t_build = time.perf_counter() - t1
    reasons: dict[str, int] = {}
    for r in removed:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    base_s = naive_dedup_seconds(rows[: args.baseline_rows], recipe.assemble.near_dup_threshold)
    scale = (args.rows / args.baseline_rows) ** 2
    print(json.dumps({
        "benchmark": "assemble", "rows": args.rows, "cores": len(os.sched_getaffinity(0)),
        "benchmarks_indexed": {k: len(v) for k, v in questions.items()}, "benchmarks_skipped": sorted(skipped),
        "index_s": round(t_index, 2), "assemble_s": round(t_build, 2), "total_s": round(t_index + t_build, 2),
        "removed": reasons, "train_rows": len(train),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "baseline_naive_dedup_rows": args.baseline_rows, "baseline_naive_dedup_s": round(base_s, 2),
        "baseline_scaled_to_rows_s": round(base_s * scale, 1),
        "speedup_vs_scaled_baseline": round(base_s * scale / max(t_build, 1e-9), 1),
    }))


if __name__ == "__main__":
    main()
