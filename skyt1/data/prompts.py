"""Prompts: system prompts per model family and per-benchmark user templates, each with an id and a hash.

Prompt wording moved reported MATH500 by 4-7 points in the reference implementation, so every result
records which template produced it (`template.id`) and a hash of its exact text (`template.digest`).

Two modes:
- `skyt1`: the user turns the Sky-T1 evaluation used (math: "Return your final response within \\boxed{}."
  before the problem; GPQA: the letter inside \\boxed{}; LiveCodeBench: the "executable Python function"
  instructions for stdin and for call-based problems).
- `default`: plain instructions that ask for the answer in \\boxed{} / a single code block.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# The Sky-T1 system prompt (derived from STILL-2): asks for a long thought section and a clean solution
# section, each between the exact markers the SFT data uses. Written here in our own words; the markers
# and the structure are what the model was trained on.
SKYT1_SYSTEM_PROMPT = (
    "As an assistant, your job is to examine each question in depth through a systematic, extended "
    "thinking process before you give a final solution that is precise and accurate. This calls for a "
    "full cycle of analysis, summarizing, exploration, reassessment, reflection, backtracking and "
    "iteration, so that the reasoning you arrive at is well considered. Organize your response into two "
    "main sections: Thought and Solution. In the Thought section, lay out your reasoning in this format: "
    "<|begin_of_thought|> {thought with steps separated with '\\n\\n'} <|end_of_thought|> Every step should "
    "carry detailed considerations, such as analyzing the question, summarizing relevant findings, "
    "brainstorming new ideas, checking whether the current steps are correct, fixing any errors, and "
    "revisiting earlier steps. In the Solution section, drawing on the attempts, explorations and "
    "reflections of the Thought section, present systematically the final solution you judge to be "
    "correct. The solution should stay logical, accurate and concise, and give the necessary steps that "
    "lead to the conclusion, in this format: <|begin_of_solution|> {final formatted, precise, and clear "
    "solution} <|end_of_solution|> Now, solve the following question by following the guidelines above:"
)

QWEN_COT_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def system_prompt_for(model: str) -> str | None:
    """The system prompt a model family was evaluated with: Sky-T1 models get the Sky-T1 prompt,
    Qwen/QwQ models the Qwen CoT prompt, anything else none."""
    name = model.lower().replace("_", "-")
    if "sky-t1" in name or "skyt1" in name:
        return SKYT1_SYSTEM_PROMPT
    if "qwen" in name or "qwq" in name:
        return QWEN_COT_PROMPT
    return None


@dataclass(frozen=True)
class Template:
    """A user-turn template; `{...}` fields are filled from the row (str.format)."""

    id: str
    text: str

    @property
    def digest(self) -> str:
        return digest(self.text)

    def render(self, **fields) -> str:
        return self.text.format(**fields)


BOXED = "Return your final response within \\boxed{{}}. "

TEMPLATES: dict[str, Template] = {
    t.id: t
    for t in (
        # -------- skyt1 mode (the Sky-T1 evaluation prompts)
        Template("skyt1/math", BOXED + "{problem}"),
        Template(
            "skyt1/choice",
            "Return your final response within \\boxed{{}} and only include the letter choice ({letters}) as "
            "your final response. {problem}\n{options}",
        ),
        Template(
            "skyt1/code_stdin",
            "Generate an executable Python function generated from the given prompt. The function should take "
            "stdin as input and print the output. Simply call the function after the definition.{problem}",
        ),
        Template(
            "skyt1/code_call",
            "Generate an executable Python function generated from the given prompt. Return the function body "
            "without invoking it at the final solution.{problem}\n\n{starter_code}",
        ),
        Template(
            "skyt1/code_complete",
            "Complete the following Python function. Return the complete function, with its imports, in a "
            "single ```python code block.\n\n{problem}",
        ),
        # -------- default mode
        Template("default/math", "{problem}\n\n" + QWEN_COT_PROMPT.replace("{}", "{{}}")),
        Template(
            "default/choice",
            "Answer the following multiple-choice question. Think step by step, then give only the letter of "
            "the correct option ({letters}) inside \\boxed{{}}.\n\n{problem}\n\n{options}",
        ),
        Template(
            "default/code_stdin",
            "Solve the following programming problem in Python. The program reads from standard input and "
            "writes to standard output. Give the complete program in a single ```python code block.\n\n{problem}",
        ),
        Template(
            "default/code_call",
            "Solve the following programming problem in Python. Complete the starter code below and give the "
            "complete solution in a single ```python code block.\n\n{problem}\n\n```python\n{starter_code}\n```",
        ),
        Template(
            "default/code_complete",
            "Complete the following Python function. Give the complete function, with its imports, in a "
            "single ```python code block.\n\n{problem}",
        ),
    )
}

MODES = ("skyt1", "default")


def template(mode: str, kind: str) -> Template:
    """The template of a prompt mode for one kind of problem (math, choice, code_stdin, code_call, code_complete)."""
    if mode not in MODES:
        raise ValueError(f"unknown prompt mode {mode!r}; choose one of {', '.join(MODES)}")
    return TEMPLATES[f"{mode}/{kind}"]


def format_options(options: list[str]) -> str:
    return "\n".join(f"({chr(65 + i)}) {opt}" for i, opt in enumerate(options))
