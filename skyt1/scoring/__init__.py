"""Scoring you can trust: math answers, multiple-choice letters and sandboxed code.

    score(kind, response, target, *, timeout_s=None, memory_mb=None, **kw) -> verdict dict
    ScoringPool(workers=None, timeout_s=None, memory_mb=None).submit(kind, response, target, **kw) -> Future

kind "math": target is the reference answer (kw: answer_pattern, finish_reason); "choice": the gold letter
(kw: n_options, default 4); "code": a tests dict (see skyt1.scoring.code.runners; kw: full_run, isolation,
allow_unsandboxed). A verdict has `correct, extracted, status, passed, total`, plus `extraction` (math,
choice: the rule that read the answer) or `isolation` (code); statuses are in `STATUSES`.
"""

from __future__ import annotations

import atexit
import threading

from skyt1.scoring.choice import extract_choice
from skyt1.scoring.code.extract import extract_code
from skyt1.scoring.math import extract_math_answer
from skyt1.scoring.pool import ScoringPool
from skyt1.scoring.registry import KINDS, STATUSES, check_kind

__all__ = ["KINDS", "STATUSES", "ScoringPool", "extract_choice", "extract_code", "extract_math_answer", "score"]

_default_pool: ScoringPool | None = None
_default_lock = threading.Lock()


def _shared_pool() -> ScoringPool:
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            _default_pool = ScoringPool()
            atexit.register(_default_pool.close)
        return _default_pool


def score(kind: str, response, target, *, timeout_s: float | None = None, memory_mb: int | None = None,
          **kw) -> dict:
    """Score one response (blocking). Math goes through a shared pool of worker processes."""
    check_kind(kind)
    return _shared_pool().submit(kind, response, target, timeout_s=timeout_s, memory_mb=memory_mb, **kw).result()
