"""The report's "What the recipe did" sections, for runs that also evaluated the untrained base model
(the real-model demo writes RUN/base_eval/): base against trained with error bars, what rejection sampling
kept and threw away (answers boxed, stated in prose, or missing; right or wrong), example traces before and
after reformatting, and the CPU time each phase cost.

Sections are the report's own (`skyt1.report.Section` of blocks), so Markdown and HTML show the same thing.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

from skyt1.report import Chart, Code, Section, Table, Text
from skyt1.report_assets import svg
from skyt1.store import RunDir, jsonl_lines

BASE_EVAL = "base_eval"
CPU_FILE = "demo/cpu.json"  # written by skyt1.demo: CPU and wall seconds per step
EXAMPLE_CHARS = 700


# ------------------------------------------------------------------------------------------- reading


def eval_samples(folder: Path) -> dict[str, dict[str, list[dict]]]:
    """benchmark -> problem id -> its samples, from an eval output folder."""
    out: dict[str, dict[str, list[dict]]] = {}
    for path in sorted(folder.glob("*/samples.jsonl")) if folder.is_dir() else []:
        by_problem: dict[str, list[dict]] = defaultdict(list)
        for line in jsonl_lines(path.read_text()):
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a torn last line of an interrupted run
            if isinstance(row, dict) and "correct" in row and "problem_id" in row:
                by_problem[row["problem_id"]].append(row)
        out[path.parent.name] = by_problem
    return out


def _mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def compare(base: dict[str, list[dict]], trained: dict[str, list[dict]]) -> dict:
    """Accuracy of each model (mean over problems of the per-problem sample mean, with its standard error)
    and of their difference on the problems both answered (paired: the same problems, so the difference's
    standard error is that of the per-problem differences)."""
    def per_problem(samples: dict[str, list[dict]]) -> dict[str, float]:
        return {pid: sum(bool(s["correct"]) for s in rows) / len(rows) for pid, rows in samples.items() if rows}

    b, t = per_problem(base), per_problem(trained)
    shared = sorted(set(b) & set(t))
    b_acc, b_se = _mean_se(list(b.values()))
    t_acc, t_se = _mean_se(list(t.values()))
    d_acc, d_se = _mean_se([t[p] - b[p] for p in shared])
    return {"base": (b_acc, b_se, len(b)), "trained": (t_acc, t_se, len(t)), "diff": (d_acc, d_se, len(shared)),
            "z": d_acc / d_se if d_se > 0 else (math.inf if d_acc > 0 else 0.0)}


_UNEXTRACTED = {"no_answer": "no answer", "timeout": "scorer timed out"}  # labels for samples with no extraction


def _where_answers_were(samples: dict[str, list[dict]]) -> Counter:
    """How the scorer found each answer (its `extraction` rule when it records one)."""
    c: Counter = Counter()
    for rows in samples.values():
        for r in rows:
            verdict = r.get("verdict") if isinstance(r.get("verdict"), dict) else r
            rule = verdict.get("extraction") or _UNEXTRACTED.get(verdict.get("status"), "-")
            c[rule] += 1
    return c


# ------------------------------------------------------------------------------------------- sections


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def effect_section(run: RunDir) -> Section | None:
    base_all, trained_all = eval_samples(run.local_path(BASE_EVAL)), eval_samples(run.local_path("eval"))
    benchmarks = [name for name in base_all if name in trained_all]
    if not benchmarks:
        return None
    blocks, rows, bars = [], [], []
    for name in benchmarks:
        c = compare(base_all[name], trained_all[name])
        (ba, bs, bn), (ta, ts, _), (da, ds, _) = c["base"], c["trained"], c["diff"]
        rows.append([name, f"{_pct(ba)} ± {_pct(bs)}", f"{_pct(ta)} ± {_pct(ts)}", f"{100 * da:+.1f} ± {_pct(ds)}",
                     f"{c['z']:.1f}", "yes" if c["z"] > 2 else "no", str(bn)])
        bars += [(f"{name} base", 100 * ba, 100 * bs), (f"{name} trained", 100 * ta, 100 * ts)]
        blocks.append(Text(
            f"{name}: the untrained base model scores {_pct(ba)}% ± {_pct(bs)}, the trained student "
            f"{_pct(ta)}% ± {_pct(ts)} ({bn} held-out problems, none of them a training question; same prompt, "
            f"sampling and scorer). The difference, {100 * da:+.1f} points, is {c['z']:.1f} standard errors of "
            f"the paired difference{' (more than two: the training helped)' if c['z'] > 2 else ' (not more than two)'}."))
        where_b, where_t = _where_answers_were(base_all[name]), _where_answers_were(trained_all[name])
        if (set(where_b) | set(where_t)) - {"-"}:
            rules = sorted(set(where_b) | set(where_t))
            blocks.append(Table([f"{name}: where the scorer found the answer", "base", "trained"],
                                [[r, str(where_b[r]), str(where_t[r])] for r in rules], frozenset({1, 2})))
    table = Table(["benchmark", "base acc. (%)", "trained acc. (%)", "difference (points)", "z", "> 2 SE",
                   "problems"], rows, frozenset({4, 6}))
    chart = Chart(svg.error_bars(bars, "Accuracy, base vs trained (± stderr)", "accuracy (%)"))
    return Section("effect", "What the recipe did: base model against trained model", [chart, table, *blocks])


def rejection_section(run: RunDir) -> Section | None:
    """Teacher samples by where their final answer was and whether it was right."""
    reformat, filt = run.phase("reformat"), run.phase("filter")
    if reformat.manifest() is None or filt.manifest() is None:
        return None
    rules = {r["id"]: r.get("answer_rule") for s in ("records", "rejected") for r in reformat.records(s)}
    if not any(rules.values()):
        return None
    kept = {r["id"] for r in filt.records("records")}
    wrong = {r["id"] for r in filt.records("rejected")}
    label = {"boxed": "in a \\boxed{}", "prose": "stated in prose only", "none": "no final answer"}
    table = Counter()
    for sid, rule in rules.items():
        outcome = "kept (right)" if sid in kept else "rejected (wrong)" if sid in wrong else "rejected (no answer)"
        table[(label.get(rule, str(rule)), outcome)] += 1
    outcomes = ["kept (right)", "rejected (wrong)", "rejected (no answer)"]
    rows = [[where, *[str(table[(where, o)]) for o in outcomes], str(sum(table[(where, o)] for o in outcomes))]
            for where in dict.fromkeys(label.values()) if any(table[(where, o)] for o in outcomes)]
    total = len(rules)
    prose_right = table[(label["prose"], "kept (right)")]
    right = sum(table[(w, "kept (right)")] for w in label.values())
    return Section("kept", "What rejection sampling kept", [Text(
        f"{total} teacher samples. {right} had the right final answer and were kept"
        + (f"; {prose_right} of those stated it only in prose, so without reformatting (which moves the stated "
           "answer into a \\boxed{} solution section) they would have been lost, as QwQ's traces were before "
           "Sky-T1 reformatted them" if prose_right else "")
        + f". {sum(table[(w, 'rejected (wrong)')] for w in label.values())} gave a wrong answer and "
        f"{sum(table[(w, 'rejected (no answer)')] for w in label.values())} none."),
        Table(["final answer of the sample", *outcomes, "samples"], rows, frozenset({1, 2, 3, 4}))])


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " [...]"


def examples_section(run: RunDir) -> Section | None:
    filt = run.phase("filter")
    if filt.manifest() is None:
        return None
    kept = [r for r in filt.records("records") if r.get("reformat_method") != "as_given"]
    wrong = [r for r in filt.records("rejected") if r.get("trace")]
    picks = [("kept: answer stated in prose", next((r for r in kept if r.get("answer_rule") == "prose"), None)),
             ("kept", next((r for r in kept if r.get("answer_rule") != "prose"), None)),
             ("rejected: wrong answer", wrong[0] if wrong else None)]
    blocks = []
    for title, r in picks:
        if r is None:
            continue
        verdict = r.get("verdict") or {}
        caption = f"{title} ({r['id']}; reference {r.get('reference')}, read {verdict.get('extracted')!r})"
        blocks += [Code(_clip(r.get("response") or ""), f"{caption}: teacher sample", lang="text"),
                   Code(_clip(r["trace"]), f"{caption}: after reformat", lang="text")]
    return Section("examples", "Example traces before and after reformatting", blocks) if blocks else None


def cpu_section(run: RunDir) -> Section | None:
    path = run.local_path(CPU_FILE)
    if not path.is_file():
        return None
    try:
        cpu = json.loads(path.read_text())
    except ValueError:
        return None
    steps = cpu.get("phases", {})
    rows = [[name, f"{v['cpu_s']:.0f}", f"{v['wall_s']:.0f}"] for name, v in steps.items()]
    rows.append(["total", f"{sum(v['cpu_s'] for v in steps.values()):.0f}",
                 f"{sum(v['wall_s'] for v in steps.values()):.0f}"])
    return Section("cpu", "Cost in CPU time", [
        Table(["step", "CPU seconds (all processes)", "wall seconds"], rows, frozenset({1, 2})),
        Text(f"Measured on {cpu.get('cpus', '?')} CPU cores. CPU seconds count skyt1 and every process it started "
             "(vLLM's server, LlamaFactory, scorers); the figures are from this run, on this machine, under "
             "whatever else it was doing.")])


def collect(run: RunDir) -> list[Section]:
    """The sections this run can show (none for a run without a base-model evaluation or demo records)."""
    return [s for s in (effect_section(run), rejection_section(run), examples_section(run), cpu_section(run)) if s]
