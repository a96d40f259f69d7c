"""Math answers: extract the final answer, then decide equivalence with Math-Verify.

Extraction works on the final section (see `skyt1.scoring.text.final_section`); the verdict records which
rule read the answer (`extraction`):
  boxed         the last group of `\\boxed{}`/`\\fbox{}`: boxes joined only by "and", "or", commas, spacing
                or labels ("\\boxed{-2} and \\boxed{1}" reads "-2, 1"; an earlier box elsewhere does not join)
  final_answer  the last "final answer is X" or Minerva's "Final Answer: ..." statement, when it comes after
                the last box; X is its math span, or the text up to the end of the sentence ("I hope it is
                correct. Note: ..." is not part of it); "Final Answer: The largest $n$ is 34." reads 34
  pattern       the caller's benchmark-specific `answer_pattern` (e.g. GSM8K's "A: <n>" lines)
Only for a response that FINISHED NORMALLY (finish_reason "stop"), because a number in an unfinished trace
is not an answer:
  answer_is     the last "answer is X" / "Answer: X" where X is a math span or a number
  last_expression  the last math span, or the last number (fractions, percentages) after it
No rule -> no answer (wrong).

Equivalence: identical text; else, when both sides are plain integers (or integer-valued decimals, or
numbers written with thousands separators such as 14{,}916 or 12,000,023), integer comparison; else
Math-Verify (sets, intervals, tuples, matrices, relations, units, percentages written with a % sign).
There is no x100 or /100 tolerance and no text mangling. Math-Verify's own timeouts use signals, so
`check_math` must run in a process's main thread: the scoring pool runs it in worker processes with a
hard per-item timeout on top.
"""

from __future__ import annotations

import bisect
import re
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from skyt1.scoring.registry import verdict
from skyt1.scoring.text import final_section

RULES = ("boxed", "final_answer", "pattern", "answer_is", "last_expression")
FINISHED = "stop"  # the finish reason of a response that ended on its own

_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])\s*")
# What may stand between two boxes of one answer: spacing, punctuation, math delimiters, "and"/"or",
# \text{...} holding only such words, and labels such as "y_2 =" or "(b)".
_JOINER = re.compile(
    r"(?:\s|[,;.]|\$|\\[()\[\]]|\\(?:quad|qquad|,|;|:|!)|\\text\s*\{[^{}]*\}|\band\b|\bor\b|\bfor\b|\bpart\b"
    r"|\([a-z]\)|[a-zA-Z](?:_\{?\w+\}?)?\s*=)*", re.IGNORECASE)
_JOINER_TEXT_WORDS = {"and", "or", "for", "part", ""}
_MAX_JOIN_GAP = 120  # boxes of one answer sit close together
_FINAL = re.compile(r"final answer(?:\s+is\s*:?|\s*:)\s*", re.IGNORECASE)
_FINAL_IS = re.compile(r"final answer\s+is\s*:?\s*", re.IGNORECASE)
_ANSWER_IS = re.compile(r"\banswer\b\s*(?:is\b|:|=)?\s*:?\s*", re.IGNORECASE)
# math delimiters; an escaped \$ is a dollar sign, not a delimiter
_DELIMITER = re.compile(r"(?<!\\)\$\$|(?<!\\)\$|\\\(|\\\)|\\\[|\\\]")
_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_INLINE = {"$", "\\("}  # inline math may not span lines; display math may
_NUMBER = re.compile(r"-?(?:\\[dt]?frac\{\d+\}\{\d+\}|\d+(?:[,.]\d+)*(?:\s*/\s*\d+)?)%?")
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n|\s+I hope|<\|")
_INTEGERISH = re.compile(r"^[+-]?\d+(\.0*)?$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_WORDS = re.compile(r"(?<!\\)\b[a-zA-Z]{3,}\b")


def _clean(answer: str) -> str | None:
    answer = answer.strip().rstrip(".").strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        while len(answer) > len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
            answer = answer[len(left):-len(right)].strip().rstrip(".").strip()
    if answer.endswith("\\") and not answer.endswith("\\\\"):
        answer = answer[:-1].strip()  # "185\" (a stray backslash)
    return answer or None


class _Span(NamedTuple):
    start: int
    end: int
    content: str


def _math_spans(text: str) -> tuple[list[_Span], int | None]:
    """The math spans of `text` in order (one linear pass), and where the first delimiter stands that
    opens no well-formed span (None when every one does)."""
    spans, broken, opened = [], None, None
    for match in _DELIMITER.finditer(text):
        token = match.group(0)
        if opened is None:
            opened = match if token in _CLOSER else None
            continue
        if token != _CLOSER[opened.group(0)]:
            continue
        content = text[opened.end():match.start()]
        if opened.group(0) in _INLINE and "\n" in content:
            broken = opened.start() if broken is None else broken
            opened = match if token == "$" else None
            continue
        spans.append(_Span(opened.start(), match.end(), content))
        opened = None
    if opened is not None and broken is None:
        broken = opened.start()
    return spans, broken


def _brace_pairs(text: str) -> dict[int, int]:
    """Position of each "{" -> position of its matching "}" (one linear pass)."""
    pairs, stack = {}, []
    for match in re.finditer(r"[{}]", text):
        if match.group(0) == "{":
            stack.append(match.start())
        elif stack:
            pairs[stack.pop()] = match.start()
    return pairs


def _box_at(text: str, match: re.Match, pairs: dict[int, int]) -> tuple[str, int] | None:
    """(contents, end) of the box starting at `match`, braces balanced; or a brace-less `\\boxed 5`."""
    i = match.end()
    if i < len(text) and text[i] == "{":
        j = pairs.get(i)
        return (text[i + 1:j].strip(), j + 1) if j is not None else None
    token = re.match(r"[^\s$]+", text[i:i + 200])
    return (token.group(0).rstrip("."), i + token.end()) if token else None


def _joins(gap: str) -> bool:
    if len(gap) > _MAX_JOIN_GAP or _JOINER.fullmatch(gap) is None:
        return False
    texts = re.findall(r"\\text\s*\{([^{}]*)\}", gap)
    return all(set(re.split(r"[^a-zA-Z()]+", t.lower())) <= _JOINER_TEXT_WORDS | {"(a)", "(b)", "(c)"} for t in texts)


def _last_box_group(text: str) -> tuple[str, int, int] | None:
    """(answer, start, end) of the last group of boxes, or None."""
    matches = list(_BOX.finditer(text))
    if not matches:
        return None
    pairs = _brace_pairs(text)
    boxes = []
    for match in matches:
        found = _box_at(text, match, pairs)
        if found is not None and found[0]:
            boxes.append((found[0], match.start(), found[1]))
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if box[2] > group[0][1] or not _joins(text[box[2]:group[0][1]]):
            break
        group.insert(0, box)
    return ", ".join(b[0] for b in group), group[0][1], group[-1][2]


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _statement_answer(text: str, pos: int, spans: dict[int, _Span]) -> str | None:
    """The answer that starts at `pos` (just after a marker): a box in its sentence, else the math span it
    opens with, else the text up to the end of the sentence."""
    pos = _skip_space(text, pos)
    end = _SENTENCE_END.search(text, pos)
    sentence = text[pos:end.start() if end else len(text)]
    group = _last_box_group(sentence + " ")
    if group is not None:
        return _clean(group[0])
    if pos in spans:
        return _clean(spans[pos].content)
    return _clean(sentence)


def _final_statement(section: str, spans: dict[int, _Span]) -> tuple[str, int] | None:
    """(answer, start) of the last "final answer is ..." / "Final Answer: ..." statement."""
    matches = list(_FINAL.finditer(section))
    if not matches:
        return None
    match = matches[-1]
    pos = match.end()
    end = _SENTENCE_END.search(section, pos)
    sentence = section[pos:end.start() if end else len(section)]
    inner = _FINAL_IS.search(sentence)
    if inner:  # Minerva: "Final Answer: The final answer is X. I hope it is correct."
        pos += inner.end()
    elif not _FINAL_IS.match(section, match.start()) and _skip_space(section, pos) not in spans \
            and not _BOX.match(section, _skip_space(section, pos)):
        # "Final Answer: The largest $n$ is 34." -> what comes after the sentence's last "is"
        tail = re.split(r"\s(?:is|are|was|equals)\s", sentence)
        answer = _clean(tail[-1]) if len(tail) > 1 else _last_expression(sentence)
        return (answer, match.start()) if answer else None
    answer = _statement_answer(section, pos, spans)
    return (answer, match.start()) if answer else None


def _last_expression(text: str) -> str | None:
    """The last math span, or the last number when it comes later (or the span is prose). A number after a
    math delimiter that opens no well-formed span (inline math broken over lines) is not read."""
    spans, broken = _math_spans(text)
    starts = [s.start for s in spans]

    def readable(number: re.Match) -> bool:
        if broken is None or number.end() <= broken:
            return True
        i = bisect.bisect_right(starts, number.start()) - 1
        return i >= 0 and number.start() < spans[i].end  # inside a well-formed span

    number = next((m for m in reversed(list(_NUMBER.finditer(text))) if readable(m)), None)
    span = spans[-1] if spans else None
    if span is not None:
        prose = _WORDS.search(re.sub(r"\\[a-zA-Z]+(?:\{[a-zA-Z*]*\})?", " ", span.content)) is not None
        if not prose and (number is None or number.start() < span.end):
            return _clean(span.content)
    return _clean(number.group(0)) if number else None


def _answer_statement(section: str, spans: dict[int, _Span]) -> str | None:
    """The last "answer is X" / "Answer: X" whose X is a math span or a number."""
    for match in reversed(list(_ANSWER_IS.finditer(section))):
        if match.end() in spans:
            return _clean(spans[match.end()].content)
        number = _NUMBER.match(section, match.end())
        if number:
            return _clean(number.group(0))
    return None


def extract(response: str, answer_pattern: str | None = None, finish_reason: str | None = None
            ) -> tuple[str | None, str | None]:
    """(answer, rule) of a response; (None, None) when it gives no final answer."""
    if not isinstance(response, str):
        return None, None
    section = final_section(response)
    if section is None:
        return None, None
    spans = None
    if _FINAL.search(section):
        spans = {span.start: span for span in _math_spans(section)[0]}
    group = _last_box_group(section)
    statement = _final_statement(section, spans) if spans is not None else None
    if statement is not None and (group is None or statement[1] > group[2]):
        return statement[0], "final_answer"
    if group is not None:
        return _clean(group[0]), "boxed"
    if answer_pattern:
        matches = re.findall(answer_pattern, section, flags=re.MULTILINE)
        if matches:
            last = matches[-1]
            return _clean(last[0] if isinstance(last, tuple) else last), "pattern"
    if finish_reason != FINISHED:
        return None, None
    if spans is None:
        spans = {span.start: span for span in _math_spans(section)[0]}
    answer = _answer_statement(section, spans)
    if answer:
        return answer, "answer_is"
    answer = _last_expression(section)
    return (answer, "last_expression") if answer else (None, None)


def extract_math_answer(response: str, answer_pattern: str | None = None, finish_reason: str | None = None
                        ) -> str | None:
    """The final answer of a response, or None when it gives none."""
    return extract(response, answer_pattern, finish_reason)[0]


def reference_answer(reference) -> str | None:
    """A reference as an answer: numbers as text, math delimiters dropped, and the boxed answer of a
    reference that is a worked solution."""
    text = str(reference).strip()
    if _BOX.search(text):
        group = _last_box_group(text)
        if group is not None:
            return _clean(group[0])
    return _clean(text)


def _integer(text: str) -> int | None:
    text = re.sub(r"\{,\}|\\[!,;: ]", lambda m: "," if m.group(0) == "{,}" else "", text)
    if _THOUSANDS.match(text):  # 14{,}916, 12,000,023 (but "32, 349" is two numbers)
        text = text.replace(",", "")
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


def check_math(response: str, reference: str, *, timeout_s: float = 5.0, answer_pattern: str | None = None,
               finish_reason: str | None = None) -> dict:
    """The math verdict for one response (no process isolation: see the pool)."""
    if not isinstance(response, str) or not isinstance(reference, str | int | float) or str(reference).strip() == "":
        return verdict(False, None, "invalid_input")
    gold = reference_answer(reference)
    if gold is None:
        return verdict(False, None, "invalid_input")
    answer, rule = extract(response, answer_pattern, finish_reason)
    if answer is None:
        return verdict(False, None, "no_answer")
    correct = answers_equal(gold, answer, timeout_s=timeout_s)
    return verdict(correct, answer, "passed" if correct else "wrong_answer", extraction=rule)
