"""Problem sources: turn a recipe `Source` into problem records.

A problem record is `{id, source, domain, question, reference | tests, solution, starter_code, meta}` with
`id = "<source name>/<row key>"`. Rows that cannot become a problem (no question, unreadable tests) are
returned as quarantine entries `{id, reason, row}` instead of being dropped or crashing the phase.
Every source loads from the hub or, when `local_path` is set, from a local file without any network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from skyt1.data import demo
from skyt1.data.hub import load_rows
from skyt1.recipe import Recipe, Source
from skyt1.scoring.text import last_boxed

DEFAULT_HUB = {
    "numina": "AI-MO/NuminaMath-CoT",
    "apps": "codeparrot/apps",
    "taco": "BAAI/TACO",
    "still2": "RUC-AIBOX/long_form_thought_data_5k",
}


@dataclass
class Loaded:
    problems: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # rows left out on purpose, by reason

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def problem(src: Source, key: Any, question: str, **fields) -> dict:
    rec = {"id": f"{src.name}/{key}", "source": src.name, "domain": src.domain, "question": question,
           "reference": None, "tests": None, "solution": None, "starter_code": None, "meta": {}}
    rec.update(fields)
    return rec


def _rows(recipe: Recipe, src: Source, **hub_kwargs) -> list[dict]:
    return load_rows(src.hub_id or DEFAULT_HUB.get(src.dataset), local_path=recipe.resolve_path(src.local_path),
                     revision=src.revision, split=src.split, **hub_kwargs)


def _window(src: Source, items: list) -> list:
    return items[src.start : src.end]


# ----------------------------------------------------------------------------------------------- math

def _numina(recipe: Recipe, src: Source, labels: dict[str, Any] | None, out: Loaded) -> None:
    rows = _rows(recipe, src)
    if src.subset:
        rows = [r for r in rows if r.get("source") == src.subset]
    bounded = src.difficulty_min is not None or src.difficulty_max is not None
    for idx, row in enumerate(_window(src, rows), start=src.start):
        key = f"{src.subset or 'all'}-{idx:07d}"
        pid = f"{src.name}/{key}"
        question, solution = row.get("problem"), row.get("solution")
        if not isinstance(question, str) or not question.strip():
            out.quarantine.append({"id": pid, "reason": "no problem text", "row": row})
            continue
        answer = last_boxed(solution)
        if answer is None and src.require_boxed:
            out.skip("no boxed answer")
            continue
        if bounded and labels is not None:
            d = labels.get(pid)
            if d is None:
                out.skip("unlabeled")
                continue
            if (src.difficulty_min is not None and d < src.difficulty_min) or (
                src.difficulty_max is not None and d > src.difficulty_max
            ):
                out.skip("difficulty out of bounds")
                continue
        out.problems.append(problem(src, key, question, reference=answer, solution=solution,
                                    meta={"row": idx, "subset": row.get("source")}))


def _demo(recipe: Recipe, src: Source, out: Loaded) -> None:
    count = src.count or 16
    if src.subset == "code" or (src.subset is None and src.domain == "code"):
        for r in _window(src, demo.code_problems(count, recipe.seed)):
            out.problems.append(problem(src, r["key"], r["question"], tests=r["tests"], solution=r["solution"],
                                        meta={"row": int(r["key"]), "kind": r["kind"]}))
    else:
        make = demo.arith_problems if src.subset == "arith" else demo.math_problems
        for r in _window(src, make(count, recipe.seed)):
            out.problems.append(problem(src, r["key"], r["question"], reference=r["answer"],
                                        solution=r["solution"], meta={"row": int(r["key"]), "kind": r["kind"]}))


# ----------------------------------------------------------------------------------------------- code

def apps_tests(input_output: Any) -> dict:
    """APPS/TACO `input_output` (JSON text or dict) -> a `skyt1 score` tests dict. Raises ValueError."""
    io = json.loads(input_output) if isinstance(input_output, str) else input_output
    if not isinstance(io, dict):
        raise ValueError("input_output is not a JSON object")
    inputs, outputs = io.get("inputs"), io.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or not inputs or len(inputs) != len(outputs):
        raise ValueError("input_output needs equal-length non-empty 'inputs' and 'outputs' lists")
    if io.get("fn_name"):
        return {"kind": "call", "fn_name": io["fn_name"], "inputs": inputs, "outputs": outputs}
    as_text = [x if isinstance(x, str) else "\n".join(map(str, x)) for x in inputs]
    out_text = [x if isinstance(x, str) else "\n".join(map(str, x)) for x in outputs]
    return {"kind": "stdio", "inputs": as_text, "outputs": out_text}


def _apps_like(recipe: Recipe, src: Source, out: Loaded) -> None:
    if src.dataset == "apps":
        rows = _rows(recipe, src, builder="json", data_files={src.split: f"{src.split}.jsonl"})
    else:  # taco: the hub repository holds `save_to_disk` Arrow shards, train/data-0000N-of-0000M.arrow
        rows = _rows(recipe, src, builder="arrow", data_files={src.split: f"{src.split}/data-*.arrow"})
    wanted = {d.lower() for d in src.difficulties} if src.difficulties else None
    for idx, row in enumerate(_window(src, rows), start=src.start):
        key = row.get("problem_id", idx) if src.dataset == "apps" else idx
        pid = f"{src.name}/{key}"
        if wanted is not None and str(row.get("difficulty", "")).lower() not in wanted:
            out.skip("difficulty not selected")
            continue
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            out.quarantine.append({"id": pid, "reason": "no question text", "row": row})
            continue
        try:
            tests = apps_tests(row.get("input_output"))
        except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
            out.quarantine.append({"id": pid, "reason": f"unusable input_output: {e}", "row": row})
            continue
        out.problems.append(problem(src, key, question, tests=tests, starter_code=row.get("starter_code") or None,
                                    meta={"row": idx, "difficulty": row.get("difficulty"), "url": row.get("url")}))


# -------------------------------------------------------------------------------------------- science

def _still2(recipe: Recipe, src: Source, out: Loaded) -> None:
    for idx, row in enumerate(_window(src, _rows(recipe, src)), start=src.start):
        pid = f"{src.name}/{idx}"
        if row.get("domain") == "code":
            out.skip("code domain")
            continue
        question, text = row.get("question"), row.get("combined_text")
        if not isinstance(question, str) or not question.strip() or not isinstance(text, str) or not text.strip():
            out.quarantine.append({"id": pid, "reason": "missing question or combined_text", "row": row})
            continue
        out.problems.append(problem(src, idx, question, solution=text, meta={"row": idx, "domain": row.get("domain")}))


def _jsonl(recipe: Recipe, src: Source, out: Loaded) -> None:
    if not src.local_path:
        raise ValueError(f"source {src.name!r}: dataset jsonl needs local_path (a .jsonl file)")
    for idx, row in enumerate(_window(src, _rows(recipe, src)), start=src.start):
        key = row.get("id", idx)
        pid = f"{src.name}/{key}"
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            out.quarantine.append({"id": pid, "reason": "no question text", "row": row})
            continue
        if src.domain == "code" and not isinstance(row.get("tests"), dict):
            out.quarantine.append({"id": pid, "reason": "code problem without a tests object", "row": row})
            continue
        out.problems.append(problem(src, key, question, reference=row.get("reference"), tests=row.get("tests"),
                                    solution=row.get("solution"), starter_code=row.get("starter_code"),
                                    meta={"row": idx}))


def load_source(recipe: Recipe, src: Source | str, labels: dict[str, Any] | None = None) -> Loaded:
    """Problems of one source. `labels` (problem id -> difficulty) applies numina difficulty bounds."""
    if isinstance(src, str):
        src = recipe.source(src)
    out = Loaded()
    if src.dataset == "numina":
        _numina(recipe, src, labels, out)
    elif src.dataset == "demo":
        _demo(recipe, src, out)
    elif src.dataset in ("apps", "taco"):
        _apps_like(recipe, src, out)
    elif src.dataset == "still2":
        _still2(recipe, src, out)
    else:
        _jsonl(recipe, src, out)
    return out
