"""The program in a model response: the last fenced code block of its final section."""

from __future__ import annotations

import re

from skyt1.scoring.text import final_section

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3"}


def extract_code(response: str) -> str | None:
    """Last ```python block (else the last untagged ``` block) of the final section; None if there is none.
    An unclosed fence (a truncated response) does not count."""
    section = final_section(response) if isinstance(response, str) else None
    if section is None:
        return None
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(section)]
    for wanted in (_PYTHON_TAGS, {""}):
        chosen = [code for tag, code in blocks if tag in wanted]
        if chosen and chosen[-1].strip():
            return chosen[-1]
    return None
