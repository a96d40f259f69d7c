"""Multiple-choice answers: the letter from the final answer, never a stray article or pronoun.

Sources, in order of trust (from the final section, see `skyt1.scoring.text.final_section`):
  1. the last `\\boxed{X}` (also `\\boxed{\\text{(X)}}`, `\\boxed{X. text}`; the letter may be lower case)
  2. the last "answer is (X)" / "answer is X" / "Answer: X": an upper-case letter, or any letter in
     parentheses; an unparenthesised letter must end the statement (punctuation or end of line), so
     "the answer is I think B" does not yield I and "the answer is a bit unclear" yields nothing.
A letter outside the first n_options letters is ignored. No letter means no answer (wrong).
"""

from __future__ import annotations

import re
import string

from skyt1.scoring.registry import verdict
from skyt1.scoring.text import final_section, last_boxed

_STATEMENT = re.compile(
    r"answer(?:\s+is)?\s*(?:is\s*)?[:：]?\s*(?:\*\*)?\s*(?:\(([A-Za-z])\)|\b([A-Z])\b(?=\s*(?:[.,;:!)\]*]|\*\*|$)))",
    re.IGNORECASE | re.MULTILINE,
)


def _letters(n_options: int) -> str:
    return string.ascii_uppercase[:n_options]


def _boxed_letter(content: str, letters: str) -> str | None:
    content = re.sub(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1", content).strip()
    match = re.fullmatch(r"\(?([A-Za-z])\)?(?:[.:)]?\s.*|[.:)])?", content, flags=re.DOTALL)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    return None


def extract_choice(response: str, n_options: int = 4) -> str | None:
    if not isinstance(response, str):
        return None
    section = final_section(response)
    if section is None:
        return None
    letters = _letters(n_options)
    return _extract(section, letters)[0]


def _extract(section: str, letters: str) -> tuple[str | None, str | None]:
    """(letter, rule): rule "boxed" or "answer_is"."""
    boxed = last_boxed(section)
    if boxed is not None:
        letter = _boxed_letter(boxed, letters)
        if letter:
            return letter, "boxed"
    found = None
    for match in _STATEMENT.finditer(section):
        paren, bare = match.group(1), match.group(2)
        # "answer" matched case-insensitively; a bare letter must really be upper case
        letter = paren.upper() if paren else (bare if bare and bare.isupper() else None)
        if letter and letter in letters:
            found = letter
    return found, "answer_is" if found else None


def check_choice(response: str, reference: str, *, n_options: int = 4) -> dict:
    if not isinstance(n_options, int) or not 2 <= n_options <= 26:
        return verdict(False, None, "invalid_input")
    gold = reference.strip().strip("()").upper() if isinstance(reference, str) else None
    if not gold or gold not in _letters(n_options) or not isinstance(response, str):
        return verdict(False, None, "invalid_input")
    section = final_section(response)
    letter, rule = _extract(section, _letters(n_options)) if section is not None else (None, None)
    if letter is None:
        return verdict(False, None, "no_answer")
    return verdict(letter == gold, letter, "passed" if letter == gold else "wrong_answer", extraction=rule)
