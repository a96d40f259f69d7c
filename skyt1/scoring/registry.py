"""The scorer kinds and verdict statuses, in one place."""

from __future__ import annotations

STATUSES = ("passed", "wrong_answer", "runtime_error", "timeout", "memory_limit", "compile_error",
            "no_answer", "no_code", "invalid_input")
KINDS = ("math", "choice", "code")
MATH_TIMEOUT_S = 10.0  # per answer; the code default (per test) is skyt1.scoring.code.Limits


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown scorer {kind!r}; expected one of {', '.join(KINDS)}")


VERDICT_FIELDS = ("correct", "extracted", "status", "passed", "total")  # what filter and eval keep of a verdict


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
    return {k: v.get(k) for k in VERDICT_FIELDS}


def score_in_thread(kind: str, response, target, *, timeout_s=None, memory_mb=None, **kw) -> dict:
    """Choice and code verdicts (code blocks on sandbox subprocesses, so threads parallelise it)."""
    if kind == "choice":
        from skyt1.scoring.choice import check_choice

        return check_choice(response, target, **kw)
    if kind == "code":
        from skyt1.scoring.code import score_code

        return score_code(response, target, timeout_s=timeout_s, memory_mb=memory_mb, **kw)
    raise ValueError(f"{kind!r} is not scored in a thread")
