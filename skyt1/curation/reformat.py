"""Phase `reformat`: teacher traces -> `<|begin_of_thought|>...<|end_of_thought|>
<|begin_of_solution|>...<|end_of_solution|>` traces.

- `rule`: traces that already separate thinking from the answer (`<think>...</think>`) are split there (free).
- `llm`: an OpenAI-compatible model rewrites the trace; the result must have the four markers once each and
  in order, and keep the final answer (math: the same last \\boxed{} answer as the original; code: exactly
  one code block in the solution). Up to `max_attempts` tries; the last failure reason goes to `rejected`.
- `auto`: rule where `<think>` exists, else llm.
- `answer` (math only, no model): the trace word for word as the thought; the solution is the final answer
  the math scorer reads from it (a box, a "final answer is" statement, or, once scoring reads answers in
  prose, those too), written as \\boxed{}. The real-model demo uses it: a 135M model cannot rewrite a trace.
  Records keep `answer_rule`, where the answer was found.
Worked solutions of `reformat.as_given_sources` are converted word for word (`as_given`, id `<pid>#given`).
"""

from __future__ import annotations

import re
import time
from collections import Counter

from skyt1.curation.common import (
    api_config,
    clear,
    finish,
    is_error,
    progress,
    sum_usage,
    upstream,
    usd,
)
from skyt1.curation.sharegpt import as_given_trace, code_blocks, make_trace, solution_of, structure_problem
from skyt1.data.sources import load_source
from skyt1.engines.base import Request
from skyt1.recipe import Recipe
from skyt1.scoring.text import last_boxed
from skyt1.store import RunDir

NAME = "reformat"

INSTRUCTION = """Rewrite the worked answer below into exactly two sections, using these four markers once each:

<|begin_of_thought|>
the reasoning: keep the author's exploration, checks and corrections close to word for word, with steps \
separated by blank lines
<|end_of_thought|>

<|begin_of_solution|>
one clean final solution: the key steps that lead to the result, then the result itself
<|end_of_solution|>

Rules:
- Do not solve the problem again and do not change the final result.
{domain_rule}
- Output only the two sections, nothing before or after them.

Problem:
{question}

Worked answer to rewrite:
{response}"""

MATH_RULE = "- The solution section must end with the same final answer written as \\boxed{{...}}: {answer}"
CODE_RULE = ("- The solution section must contain exactly one Python code block (```python ... ```), the final "
             "program, copied unchanged from the worked answer.")
NO_ANSWER = "original trace has no final \\boxed{} answer"
_THINK = re.compile(r"<think>(.*?)</think>(.*)", re.S)


def check(trace: str, record: dict) -> str | None:
    """Why `trace` is not an acceptable rewrite of `record["response"]`, or None when it is."""
    problem = structure_problem(trace)
    if problem:
        return problem
    solution = solution_of(trace)
    if record["domain"] == "math":
        original = last_boxed(record.get("response"))
        if original is None:
            return NO_ANSWER
        got = last_boxed(solution)
        if got is None:
            return "final answer missing from the solution section"
        if _norm(got) != _norm(original):
            return f"final answer changed: {original!r} -> {got!r}"
    elif record["domain"] == "code":
        n = len(code_blocks(solution))
        if n != 1:
            return f"solution section has {n} code blocks (expected exactly one)"
    return None


def _norm(answer: str) -> str:
    return "".join(answer.split())


def rule_trace(response: str) -> str | None:
    m = _THINK.search(response or "")
    if not m or not m.group(1).strip() or not m.group(2).strip():
        return None
    return make_trace(m.group(1), m.group(2))


NO_STATED_ANSWER = "trace states no final answer"


def answer_trace(record: dict) -> tuple[str | None, str]:
    """(trace, rule) for `answer` mode: the response as the thought, its final answer boxed as the solution.
    The rule says where the answer was: "boxed" (already in a box) or "prose"; trace None when there is none."""
    from skyt1.scoring.math import extract_math_answer

    response = record.get("response") or ""
    answer = extract_math_answer(response)
    if answer is None:
        return None, "none"
    rule = "boxed" if last_boxed(response) else "prose"
    return make_trace(response, f"The final answer is $\\boxed{{{answer}}}$."), rule


def _method(mode: str, record: dict) -> str:
    if mode == "auto":
        return "rule" if "<think>" in (record.get("response") or "") else "llm"
    return mode


def _prompt(record: dict) -> str:
    if record["domain"] == "math":
        rule = MATH_RULE.format(answer=last_boxed(record.get("response")) or "(as in the worked answer)")
    elif record["domain"] == "code":
        rule = CODE_RULE
    else:
        rule = "- Keep the final answer exactly as the worked answer states it."
    return INSTRUCTION.format(domain_rule=rule, question=record["question"], response=record["response"])


def _as_given(recipe: Recipe, done: set[str]) -> tuple[list[dict], list[dict], int]:
    out, rejected, total = [], [], 0
    for name in recipe.reformat.as_given_sources:
        for p in load_source(recipe, name).problems:
            if not p.get("solution"):
                continue
            total += 1
            sid = f"{p['id']}#given"
            if sid in done:
                continue
            trace = as_given_trace(p["solution"], p["domain"])
            rec = {**p, "id": sid, "problem_id": p["id"], "sample_index": "given", "response": p["solution"],
                   "finish_reason": "given", "prompt_tokens": 0, "completion_tokens": 0, "trace": trace,
                   "reformat_method": "as_given", "usage": None}
            reason = check(trace, rec)
            (rejected if reason else out).append({**rec, "reason": reason} if reason else rec)
    return out, rejected, total


def _llm(recipe: Recipe, pending: list[dict], w, rw, fw, counts: Counter) -> None:
    """Rewrite `pending` with the API model. A rewrite that fails validation after every attempt is rejected
    for good; one whose last attempt was an API error goes to `failed`, which the next run retries."""
    from skyt1.engines import api_engine, sampling_from_api

    cfg = recipe.reformat
    usage: dict[str, Counter] = {r["id"]: Counter() for r in pending}
    reasons: dict[str, str] = {}
    engine = api_engine(cfg.api)
    try:
        for attempt in range(cfg.max_attempts):
            if not pending:
                break
            sampling = sampling_from_api(cfg.api, seed=recipe.seed + attempt)
            by_id = {r["id"]: r for r in pending}
            requests = (Request(r["id"], [{"role": "user", "content": _prompt(r)}], sampling) for r in pending)
            retry = []
            desc = "reformat" + (f" (attempt {attempt + 1})" if attempt else "")
            for c in progress(engine.generate(requests), len(pending), desc):
                rec = by_id[c.id]
                usage[c.id].update({"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                                    "attempts": 1})
                reason = f"api {c.finish_reason}" if is_error(c.finish_reason) else check(c.text, rec)
                if reason is None:
                    w.write({**rec, "trace": c.text, "reformat_method": "llm", "usage": dict(usage[c.id])})
                    counts["llm"] += 1
                else:
                    reasons[c.id] = reason
                    retry.append(rec)
            pending = retry
    finally:
        engine.close()
    for rec in pending:
        reason = reasons[rec["id"]]
        (fw if reason.startswith("api ") else rw).write(
            {**rec, "reformat_method": "llm", "reason": reason, "usage": dict(usage[rec["id"]])})


def config_digest(recipe: Recipe) -> str:
    """What the phase's output depends on in the recipe (compared with its manifest to skip it)."""
    return recipe.digest("reformat", as_given=[recipe.source(s).model_dump(mode="json")
                                               for s in recipe.reformat.as_given_sources])


def run(recipe: Recipe, run: RunDir, *, force: bool = False) -> dict:
    src_ph, src_digest = upstream(run, "distill")
    inputs = {"distill": src_digest}
    digest = config_digest(recipe)
    ph = run.phase(NAME)
    if not force and ph.is_complete(digest, inputs):
        return ph.manifest()
    if force:
        clear(ph)
    t0 = time.time()
    done = ph.ids("records") | ph.ids("rejected")
    counts: Counter = Counter()
    n_in = 0
    llm_pending = []
    with ph.writer("records", flush_every=32) as w, ph.writer("rejected", flush_every=32) as rw, \
            ph.writer("failed", flush_every=16) as fw:
        given, given_rejected, n_given = _as_given(recipe, done)
        w.write_many(given)
        rw.write_many(given_rejected)
        n_in += n_given
        for rec in src_ph.records():
            n_in += 1
            if rec["id"] in done:
                continue
            method = _method(recipe.reformat.mode, rec)
            if method == "answer":
                trace, rule = answer_trace(rec) if rec["domain"] == "math" else (None, "none")
                reason = NO_STATED_ANSWER if trace is None else structure_problem(trace)
                row = {**rec, "reformat_method": "answer", "answer_rule": rule}
                if reason:
                    rw.write({**row, "reason": reason})
                else:
                    w.write({**row, "trace": trace})
                continue
            if rec["domain"] == "math" and last_boxed(rec.get("response")) is None:
                # nothing to preserve and nothing filter could verify: do not pay for a rewrite
                rw.write({**rec, "reformat_method": method, "reason": NO_ANSWER})
                continue
            if method == "llm":
                llm_pending.append(rec)
                continue
            trace = rule_trace(rec.get("response", ""))
            reason = "no <think>...</think> section with text on both sides" if trace is None else check(trace, rec)
            if reason:
                rw.write({**rec, "reformat_method": "rule", "reason": reason})
            else:
                w.write({**rec, "trace": trace, "reformat_method": "rule"})
        if llm_pending:
            _llm(recipe, llm_pending, w, rw, fw, counts)
    records, rejected = list(ph.records("records")), list(ph.records("rejected"))
    settled = {r["id"] for r in records} | {r["id"] for r in rejected}
    usage = sum_usage(records + rejected + list(ph.records("failed")))  # failed attempts were paid for too
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    counts = {
        "in": n_in, "out": len(records),
        "methods": dict(Counter(r["reformat_method"] for r in records)),
        "answer_rules": dict(Counter(r["answer_rule"] for r in records + rejected if "answer_rule" in r)),
        "rejected": dict(Counter(_reason_kind(r["reason"]) for r in rejected)),
        "failed_api": len(ph.ids("failed") - settled),
        "prompt_tokens": prompt, "completion_tokens": completion, "attempts": usage.get("attempts", 0),
    }
    return finish(ph, pending=n_in - len(records) - len(rejected), what="record(s)", recipe_digest=digest,
                  inputs=inputs, counts=counts, started_at=t0, cost_usd=usd(recipe.reformat.api, prompt, completion),
                  config={"mode": recipe.reformat.mode, "max_attempts": recipe.reformat.max_attempts,
                          "api": api_config(recipe.reformat.api), "as_given_sources": recipe.reformat.as_given_sources})


def _reason_kind(reason: str) -> str:
    """Group reasons for the manifest (the full text stays on each rejected record)."""
    for prefix, kind in (("final answer changed", "final answer changed"),
                         ("marker", "markers missing or repeated"), ("solution section has", "code block count")):
        if reason.startswith(prefix):
            return kind
    return reason
