"""Metrics over scored samples.

- avg@n: the mean over problems of each problem's mean accuracy over its n samples.
- stderr: the standard error of that mean over problems, std(per-problem means, ddof=1) / sqrt(problems).
  It measures how much the score would move with another draw of problems (and samples); with one
  problem it is undefined (None).
- pass@k: the unbiased estimator 1 - C(n-c, k) / C(n, k) per problem (n samples, c correct), averaged over
  problems; reported for k = 1, 2, 4, ... up to n.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def ks_for(n: int) -> list[int]:
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks


def mean_stderr(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, statistics.stdev(values) / math.sqrt(len(values))


def _stats(values: list[int]) -> dict:
    if not values:
        return {"mean": None, "median": None, "max": None, "total": 0}
    return {"mean": round(statistics.fmean(values), 2), "median": statistics.median(values), "max": max(values),
            "total": sum(values)}


def summarize(samples: Iterable[dict], difficulties: dict[str, str | None] | None = None) -> dict:
    """Scores of one benchmark from its sample records (problem_id, correct, finish_reason, token counts)."""
    by_problem: dict[str, list[bool]] = defaultdict(list)
    finish, status = Counter(), Counter()
    completion_tokens, prompt_tokens = [], []
    for s in samples:
        by_problem[s["problem_id"]].append(bool(s.get("correct")))
        finish[_finish_class(s.get("finish_reason"))] += 1
        status[s.get("status") or "unscored"] += 1
        completion_tokens.append(int(s.get("completion_tokens") or 0))
        prompt_tokens.append(int(s.get("prompt_tokens") or 0))
    out = _scores(by_problem)
    out.update(
        samples=sum(len(v) for v in by_problem.values()),
        finish_reasons=dict(sorted(finish.items())),
        statuses=dict(sorted(status.items())),
        completion_tokens=_stats(completion_tokens),
        prompt_tokens=_stats(prompt_tokens),
    )
    if difficulties and any(difficulties.get(p) for p in by_problem):
        groups: dict[str, dict[str, list[bool]]] = defaultdict(dict)
        for pid, results in by_problem.items():
            groups[str(difficulties.get(pid))][pid] = results
        out["by_difficulty"] = {d: _scores(g) for d, g in sorted(groups.items())}
    return out


def _scores(by_problem: dict[str, list[bool]]) -> dict:
    per_problem = [sum(r) / len(r) for r in by_problem.values() if r]
    acc, err = mean_stderr(per_problem)
    ns = [len(r) for r in by_problem.values()]
    n_min = min(ns) if ns else 0
    pass_k = {}
    for k in ks_for(n_min):
        pass_k[f"pass@{k}"] = statistics.fmean(pass_at_k(len(r), sum(r), k) for r in by_problem.values())
    return {"problems": len(per_problem), "n": n_min, "accuracy": acc, "stderr": err, "pass_at_k": pass_k}


def _finish_class(reason: str | None) -> str:
    if not reason:
        return "unknown"
    return "error" if reason.startswith("error") else reason
