"""The scorer kinds, verdict statuses and the one verdict shape, in one place.

A verdict is a dict: `correct, extracted, status, passed, total` (`VERDICT_FIELDS`, what every caller
keeps), plus, where they apply, `extraction` (which rule read a math or choice answer, see
`skyt1.scoring.math.RULES`) and `isolation` (which sandbox ran code: "bwrap" or "rlimits"). Filter and eval
keep a verdict through `verdict_of(future)`; `skyt1 score` writes the same fields.
"""

from __future__ import annotations

STATUSES = ("passed", "wrong_answer", "runtime_error", "timeout", "memory_limit", "compile_error",
            "no_answer", "no_code", "invalid_input")
KINDS = ("math", "choice", "code")
MATH_TIMEOUT_S = 10.0  # per answer; the code default (per test) is skyt1.scoring.code.Limits
VERDICT_FIELDS = ("correct", "extracted", "status", "passed", "total")  # what filter and eval keep of a verdict
PROVENANCE_FIELDS = ("extraction", "isolation")  # kept too, when the scorer sets them


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown scorer {kind!r}; expected one of {', '.join(KINDS)}")


def verdict(correct: bool, extracted: str | None, status: str, *, passed: int | None = None, total: int = 1,
            **provenance) -> dict:
    """A verdict of a one-answer scorer (math, choice); `provenance` sets `extraction`/`isolation`."""
    unknown = set(provenance) - set(PROVENANCE_FIELDS) - {"error"}
    if unknown:
        raise TypeError(f"unknown verdict field(s): {', '.join(sorted(unknown))}")
    return {"correct": correct, "extracted": extracted, "status": status,
            "passed": int(correct) if passed is None else passed, "total": total,
            **{k: v for k, v in provenance.items() if v is not None}}


def invalid(reason: str) -> dict:
    return {"correct": False, "extracted": None, "status": "invalid_input", "passed": 0, "total": 0,
            "error": reason}


def verdict_of(future) -> dict:
    """The kept fields of a scoring future's verdict; a scorer crash is this item's failure (status
    `scoring_error: ...`), never the caller's: `--rescore`/a re-run of filter scores it again."""
    try:
        v = future.result()
    except Exception as e:  # noqa: BLE001
        return {"correct": False, "extracted": None, "status": f"scoring_error: {type(e).__name__}: {e}"[:300],
                "passed": 0, "total": 0}
    return {k: v.get(k) for k in VERDICT_FIELDS} | {k: v[k] for k in PROVENANCE_FIELDS if v.get(k) is not None}


def score_in_thread(kind: str, response, target, *, timeout_s=None, memory_mb=None, **kw) -> dict:
    """Choice and code verdicts (code blocks on sandbox subprocesses, so threads parallelise it)."""
    if kind == "choice":
        from skyt1.scoring.choice import check_choice

        return check_choice(response, target, **kw)
    if kind == "code":
        from skyt1.scoring.code import score_code

        return score_code(response, target, timeout_s=timeout_s, memory_mb=memory_mb, **kw)
    raise ValueError(f"{kind!r} is not scored in a thread")
