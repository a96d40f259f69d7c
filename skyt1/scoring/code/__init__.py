"""Code scoring: extract the program from a response and run the tests in the sandbox."""

from __future__ import annotations

from skyt1.scoring.code.extract import extract_code
from skyt1.scoring.code.runners import InvalidTests, build_job, run_tests
from skyt1.scoring.code.sandbox import (
    Limits,
    SandboxError,
    SandboxUnavailable,
    bwrap_available,
    choose_isolation,
)

__all__ = ["Limits", "SandboxError", "SandboxUnavailable", "bwrap_available", "choose_isolation", "extract_code",
           "score_code"]


def score_code(response: str, tests: dict, *, timeout_s: float | None = None, memory_mb: int | None = None,
               full_run: bool = False, isolation: str = "auto", allow_unsandboxed: bool = False,
               output_bytes: int | None = None) -> dict:
    """The verdict of one response. Stops at the first failing test unless `full_run`. `isolation`:
    "bwrap" or "rlimits" as chosen by `choose_isolation`, or "auto"/"none" to choose here."""
    defaults = Limits()
    limits = Limits(timeout_s=timeout_s or defaults.timeout_s, memory_mb=memory_mb or defaults.memory_mb,
                    output_bytes=output_bytes or defaults.output_bytes)
    if isolation not in ("bwrap", "rlimits"):
        isolation = choose_isolation(isolation, allow_unsandboxed=allow_unsandboxed)
    code = extract_code(response) if isinstance(response, str) else None
    try:
        if code is None:
            total = len(build_job("", tests)[1])  # validates the tests too
            return {"correct": False, "extracted": None, "status": "no_code", "passed": 0, "total": total,
                    "isolation": isolation}
        verdict = run_tests(code, tests, limits, isolation=isolation, full_run=full_run)
    except InvalidTests as e:
        return {"correct": False, "extracted": code, "status": "invalid_input", "passed": 0, "total": 0,
                "isolation": isolation, "error": str(e)}
    return {"extracted": code, **verdict}
