"""The thought/solution trace format shared by reformat, filter and assemble (user turns: skyt1.data.prompts)."""

from __future__ import annotations

import re

BEGIN_THOUGHT, END_THOUGHT = "<|begin_of_thought|>", "<|end_of_thought|>"
BEGIN_SOLUTION, END_SOLUTION = "<|begin_of_solution|>", "<|end_of_solution|>"
MARKERS = (BEGIN_THOUGHT, END_THOUGHT, BEGIN_SOLUTION, END_SOLUTION)
CODE_BLOCK = re.compile(r"```[^\n`]*\n(.*?)```", re.S)

def make_trace(thought: str, solution: str) -> str:
    return f"{BEGIN_THOUGHT}\n\n{thought.strip()}\n\n{END_THOUGHT}\n\n{BEGIN_SOLUTION}\n\n{solution.strip()}\n\n{END_SOLUTION}"


def structure_problem(trace: str) -> str | None:
    """Why `trace` is not a well-formed thought/solution trace, or None when it is."""
    for m in MARKERS:
        n = trace.count(m)
        if n != 1:
            return f"marker {m} appears {n} times (expected once)"
    positions = [trace.index(m) for m in MARKERS]
    if positions != sorted(positions):
        return "markers out of order"
    if not solution_of(trace).strip():
        return "empty solution section"
    return None


def solution_of(trace: str) -> str:
    """The text of the solution section ("" when missing)."""
    start = trace.find(BEGIN_SOLUTION)
    end = trace.find(END_SOLUTION, start + 1)
    return trace[start + len(BEGIN_SOLUTION) : end].strip() if start >= 0 and end >= 0 else ""


def code_blocks(text: str) -> list[str]:
    return CODE_BLOCK.findall(text)


def as_given_trace(text: str, domain: str) -> str:
    """A worked solution (or a trace already in the format) as a thought/solution trace, word for word.

    Math: the last paragraph (the one holding the final answer) becomes the solution. Code: the last code
    block becomes the solution, everything before it the thought."""
    if all(m in text for m in MARKERS):
        return text
    if domain == "code":
        matches = list(CODE_BLOCK.finditer(text))
        if matches:
            last = matches[-1]
            return make_trace(text[: last.start()].strip() or "Write the program.", last.group(0))
    parts = [p for p in text.strip().split("\n\n") if p.strip()]
    thought = "\n\n".join(parts[:-1]) if len(parts) > 1 else parts[0]
    return make_trace(thought, parts[-1])
