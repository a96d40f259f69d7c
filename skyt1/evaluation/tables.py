"""Result tables: one Markdown table of every benchmark (also printed at the end of `skyt1 eval`)."""

from __future__ import annotations


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _acc(scores: dict) -> str:
    acc, err = scores.get("accuracy"), scores.get("stderr")
    return _pct(acc) + ("" if err is None else f" ± {100 * err:.1f}")


def markdown(summary: dict) -> str:
    rows = []
    for name, b in summary["benchmarks"].items():
        s = b["scores"]
        passk = ", ".join(f"{k}={_pct(v)}" for k, v in s.get("pass_at_k", {}).items() if k != "pass@1") or "-"
        tokens = s.get("completion_tokens", {}).get("mean")
        finish = ", ".join(f"{k} {v}" for k, v in s.get("finish_reasons", {}).items()) or "-"
        state = "" if b["complete"] else f" (incomplete: {b['missing_samples']} missing)"
        rows.append([name + state, str(s.get("n", 0)), str(s.get("problems", 0)), _acc(s), passk,
                     "-" if tokens is None else f"{tokens:.0f}", finish])
        for diff, d in s.get("by_difficulty", {}).items():
            rows.append([f"  {name} [{diff}]", str(d["n"]), str(d["problems"]), _acc(d), "", "", ""])
    for name, reason in summary.get("skipped", {}).items():
        rows.append([f"{name} (skipped)", "", "", "-", reason, "", ""])
    head = ["benchmark", "n", "problems", "avg@n ± stderr (%)", "pass@k (%)", "mean tokens", "finish"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    note = ("\navg@n: mean over problems of each problem's accuracy over its n samples; stderr: standard error "
            "of that mean over problems. pass@k: unbiased estimator 1 - C(n-c,k)/C(n,k).\n")
    isolation = sorted({i for b in summary["benchmarks"].values() for i in b.get("isolation", [])})
    if isolation:
        note += f"Code ran under isolation: {', '.join(isolation)}.\n"
    return "\n".join(lines) + "\n" + note
