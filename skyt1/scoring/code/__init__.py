"""Code scoring: extract the program from a response and run the tests in the sandbox."""

from __future__ import annotations

from skyt1.scoring.code.extract import extract_code
from skyt1.scoring.code.runners import InvalidTests, run_tests
from skyt1.scoring.code.sandbox import Limits, SandboxError, bwrap_available

__all__ = ["Limits", "SandboxError", "bwrap_available", "extract_code", "score_code"]


def score_code(response: str, tests: dict, *, timeout_s: float | None = None, memory_mb: int | None = None,
               early_stop: bool = False, isolation: str = "auto", output_bytes: int | None = None) -> dict:
    defaults = Limits()
    limits = Limits(timeout_s=timeout_s or defaults.timeout_s, memory_mb=memory_mb or defaults.memory_mb,
                    output_bytes=output_bytes or defaults.output_bytes)
    code = extract_code(response) if isinstance(response, str) else None
    try:
        if code is None:
            from skyt1.scoring.code.runners import build_job

            total = len(build_job("", tests)[1])  # validates the tests too
            return {"correct": False, "extracted": None, "status": "no_code", "passed": 0, "total": total}
        verdict = run_tests(code, tests, limits, early_stop=early_stop, isolation=isolation)
    except InvalidTests as e:
        return {"correct": False, "extracted": code, "status": "invalid_input", "passed": 0, "total": 0,
                "error": str(e)}
    return {"extracted": code, **verdict}
