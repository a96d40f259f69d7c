"""Where a response's final answer lives, shared by the math, choice and code scorers."""

from __future__ import annotations

import re

BEGIN_SOLUTION, END_SOLUTION = "<|begin_of_solution|>", "<|end_of_solution|>"
BEGIN_THOUGHT = "<|begin_of_thought|>"
RUN_ON = "<|im_start|>"  # a model that went on to write the next chat turn: its answer came before


def final_section(response: str) -> str | None:
    """The part of a response that holds its final answer, or None when there is none.

    Sky-T1 format: the `<|begin_of_solution|>` section (a thought section without one is truncated).
    Reasoning-model format: the text after the last `</think>` (an unclosed `<think>` is truncated).
    Anything else: the whole response.
    Text from a `<|im_start|>` on (a run-on into the next chat turn) is not part of it.
    """
    response = response.split(RUN_ON, 1)[0]
    if BEGIN_SOLUTION in response:
        return response.rsplit(BEGIN_SOLUTION, 1)[1].split(END_SOLUTION, 1)[0]
    if BEGIN_THOUGHT in response:
        return None
    if "</think>" in response:
        return response.rsplit("</think>", 1)[1]
    if "<think>" in response:
        return None
    return response


def last_boxed(text: str | None) -> str | None:
    """Contents of the last `\\boxed{...}` / `\\fbox{...}` with balanced braces (or of a brace-less
    `\\boxed 5`), or None."""
    if not text:
        return None
    for match in reversed(list(re.finditer(r"\\(?:boxed|fbox)(?![a-zA-Z])\s*(\{)?", text))):
        if match.group(1) is None:  # `\boxed 5`: the token after the space
            rest = text[match.end():].split()
            if rest:
                return rest[0].rstrip("$.")
            continue
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[match.end():i - 1].strip()
    return None
