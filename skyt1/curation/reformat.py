"""Phase `reformat`: teacher traces -> `<|begin_of_thought|>...<|end_of_thought|>
<|begin_of_solution|>...<|end_of_solution|>` traces.

- `rule`: traces that already separate thinking from the answer (`<think>...</think>`) are split there (free).
- `llm`: an OpenAI-compatible model rewrites the trace; the result must have the four markers once each and
  in order, and keep the final answer (math: the same last \\boxed{} answer as the original; code: exactly
  one code block in the solution). Up to `max_attempts` model answers per trace; the last answer's reason
  goes to `rejected`. An API failure is not an answer: the trace goes to `failed` with the answers it got,
  and the next run continues it.
- `auto`: rule where `<think>` exists, else llm.
- `answer` (math only, no model): the trace word for word as the thought; the solution is the final answer
  the math scorer reads from it (a box, a "final answer is" statement, or, for a response that finished
  normally, an "answer is" statement or the last expression), written as \\boxed{}. The real-model demo uses it: a 135M model cannot rewrite a trace.
  Records keep `answer_rule`, where the answer was found.
Worked solutions of `reformat.as_given_sources` are converted word for word (`as_given`, id `<pid>#given`).
"""

from __future__ import annotations

import re
from collections import Counter

from skyt1.curation.common import api_config, is_error, progress, sum_usage, usd
from skyt1.curation.sharegpt import as_given_trace, code_blocks, make_trace, solution_of, structure_problem
from skyt1.data import prompts
from skyt1.data.sources import load_source
from skyt1.engines.base import Request
from skyt1.protocol import PhaseRun, run_phase
from skyt1.recipe import Recipe
from skyt1.scoring.text import last_boxed
from skyt1.store import RunDir

NAME = "reformat"
INSTRUCTION = prompts.TEMPLATES["reformat/rewrite"]
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
    """(trace, where) for `answer` mode: the response as the thought, the final answer the math scorer reads
    from it boxed as the solution. `where`: "boxed" (the scorer read a box), "prose" (a statement or, for a
    response that finished normally, the last expression), "none" (trace None)."""
    from skyt1.scoring.math import extract

    response = record.get("response") or ""
    answer, rule = extract(response, finish_reason=record.get("finish_reason"))
    if answer is None:
        return None, "none"
    return make_trace(response, f"The final answer is $\\boxed{{{answer}}}$."), "boxed" if rule == "boxed" else "prose"


def _method(mode: str, record: dict) -> str:
    if mode == "auto":
        return "rule" if "<think>" in (record.get("response") or "") else "llm"
    return mode


def _prompt(record: dict) -> str:
    if record["domain"] == "math":
        answer = last_boxed(record.get("response")) or "(as in the worked answer)"
        rule = prompts.TEMPLATES["reformat/rule-math"].render(answer=answer)
    else:
        rule = prompts.TEMPLATES["reformat/rule-code" if record["domain"] == "code" else "reformat/rule-other"].render()
    return INSTRUCTION.render(domain_rule=rule, question=record["question"], response=record["response"])


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


def _llm(recipe: Recipe, pending: list[dict], answered: dict[str, int], w, rw, fw, counts: Counter) -> None:
    """Rewrite `pending` with the API model, up to `max_attempts` model answers each (answer k is drawn
    with seed `recipe.seed + k`, however the answers were spread over runs). A trace whose every answer was
    invalid is rejected for good. An API failure (after the engine's retries) is not an answer: the trace
    goes to `failed` with its answer count, and the next run of the same command continues it."""
    from skyt1.engines import api_engine, sampling_from_api

    cfg = recipe.reformat
    usage: dict[str, Counter] = {r["id"]: Counter() for r in pending}
    engine = api_engine(cfg.api)
    try:
        while pending:
            by_id = {r["id"]: r for r in pending}
            requests = (Request(r["id"], [{"role": "user", "content": _prompt(r)}],
                                sampling_from_api(cfg.api, seed=recipe.seed + answered.get(r["id"], 0)))
                        for r in pending)
            retry = []
            tries = {answered.get(r["id"], 0) for r in pending}
            desc = "reformat" + (f" (answer {min(tries) + 1})" if tries != {0} else "")
            for c in progress(engine.generate(requests), len(pending), desc):
                rec = by_id[c.id]
                usage[c.id].update({"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens})
                if is_error(c.finish_reason):
                    usage[c.id]["api_failures"] += 1
                    fw.write({**rec, "reformat_method": "llm", "reason": f"api {c.finish_reason}",
                              "answers": answered.get(c.id, 0), "usage": dict(usage[c.id])})
                    continue
                answered[c.id] = answered.get(c.id, 0) + 1
                usage[c.id]["attempts"] += 1
                reason = check(c.text, rec)
                if reason is None:
                    w.write({**rec, "trace": c.text, "reformat_method": "llm", "usage": dict(usage[c.id])})
                    counts["llm"] += 1
                elif answered[c.id] >= cfg.max_attempts:
                    rw.write({**rec, "reformat_method": "llm", "reason": reason, "answers": answered[c.id],
                              "usage": dict(usage[c.id])})
                else:
                    retry.append(rec)
            pending = retry
    finally:
        engine.close()


def run(recipe: Recipe, run: RunDir, *, force: bool = False) -> dict:
    return run_phase(NAME, recipe, run, _reformat, force=force)


def _reformat(p: PhaseRun) -> dict:
    recipe, ph, src_ph = p.recipe, p.dir, p.upstream("distill")
    done = ph.ids("records") | ph.ids("rejected")
    answered = {r["id"]: int(r.get("answers") or 0) for r in ph.records("failed", latest=True)}
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
            _llm(recipe, llm_pending, answered, w, rw, fw, counts)
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
    config = {"mode": recipe.reformat.mode, "max_attempts": recipe.reformat.max_attempts,
              "api": api_config(recipe.reformat.api), "as_given_sources": recipe.reformat.as_given_sources}
    return p.finish(pending=n_in - len(records) - len(rejected), what="record(s)", counts=counts, config=config,
                    cost_usd=usd(recipe.reformat.api, prompt, completion))


def _reason_kind(reason: str) -> str:
    """Group reasons for the manifest (the full text stays on each rejected record)."""
    for prefix, kind in (("final answer changed", "final answer changed"),
                         ("marker", "markers missing or repeated"), ("solution section has", "code block count")):
        if reason.startswith(prefix):
            return kind
    return reason
