"""Math answers: extract the final answer, then decide equivalence with Math-Verify.

Extraction (from the final section, see `skyt1.scoring.text.final_section`): the last `\\boxed{}` or
`\\fbox{}`; else the last "final answer is ..." statement; else, when the caller names a benchmark-specific
`answer_pattern` (a regex whose first group is the answer, e.g. r"^A:\\s*(.+)$" for GSM8K's model
solutions), its last match. There is no "last number in the text" fallback: no final answer means wrong.

Equivalence: identical text; else, when both sides are plain integers (or integer-valued decimals),
integer comparison ("025" = "25", "27.0" = "27"); else Math-Verify (sets, intervals, tuples, matrices,
units, percentages written with a % sign). There is no x100 or /100 tolerance and no text mangling.
Math-Verify's own timeouts use signals, so `check_math` must run in a process's main thread: the
scoring pool runs it in worker processes with a hard per-item timeout on top.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from skyt1.scoring.text import final_section, last_boxed

_FINAL_ANSWER = re.compile(r"final answer is\s*:?\s*(.+)", re.IGNORECASE)
_INTEGERISH = re.compile(r"^[+-]?\d+(\.0*)?$")


def _clean(answer: str) -> str | None:
    answer = answer.strip().rstrip(".").strip()
    while len(answer) >= 2 and answer[0] == answer[-1] == "$":
        answer = answer[1:-1].strip().rstrip(".").strip()
    return answer or None


def extract_math_answer(response: str, answer_pattern: str | None = None) -> str | None:
    """The final answer of a response, or None when it gives none."""
    if not isinstance(response, str):
        return None
    section = final_section(response)
    if section is None:
        return None
    boxed = last_boxed(section)
    if boxed is not None:
        return _clean(boxed)
    statements = _FINAL_ANSWER.findall(section)
    if statements:
        text = statements[-1].split("\n")[0]
        inner = last_boxed(text)
        return _clean(inner if inner is not None else re.sub(r"\s*I hope it is correct\.?$", "", text))
    if answer_pattern:
        matches = re.findall(answer_pattern, section, flags=re.MULTILINE)
        if matches:
            last = matches[-1]
            return _clean(last[0] if isinstance(last, tuple) else last)
    return None


def _integer(text: str) -> int | None:
    text = text.replace(" ", "")
    if not _INTEGERISH.match(text):
        return None
    try:
        return int(Decimal(text))
    except InvalidOperation:
        return None


def answers_equal(reference: str, answer: str, *, timeout_s: float = 5.0) -> bool:
    """Equivalence of two answer strings. Call from a process's main thread (Math-Verify uses signals)."""
    if " ".join(reference.split()) == " ".join(answer.split()):
        return True
    ref_int, ans_int = _integer(reference), _integer(answer)
    if ref_int is not None and ans_int is not None:
        return ref_int == ans_int
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    seconds = max(1, int(timeout_s))
    config = [LatexExtractionConfig(), ExprExtractionConfig()]
    gold = parse(f"\\boxed{{{reference}}}", extraction_config=config, parsing_timeout=seconds)
    pred = parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=seconds)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=seconds))


def check_math(response: str, reference: str, *, timeout_s: float = 5.0, answer_pattern: str | None = None) -> dict:
    """The math verdict for one response (no process isolation: see the pool)."""
    if not isinstance(response, str) or not isinstance(reference, str | int | float) or str(reference).strip() == "":
        return verdict(False, None, "invalid_input")
    answer = extract_math_answer(response, answer_pattern)
    if answer is None:
        return verdict(False, None, "no_answer")
    correct = answers_equal(str(reference).strip(), answer, timeout_s=timeout_s)
    return verdict(correct, answer, "passed" if correct else "wrong_answer")


def verdict(correct: bool, extracted: str | None, status: str) -> dict:
    return {"correct": correct, "extracted": extracted, "status": status, "passed": int(correct), "total": 1}
