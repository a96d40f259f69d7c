"""Every prompt skyt1 sends, in one place: system prompts, the user-turn templates shared by the teacher
(distill), the training rows (assemble) and evaluation, and the instructions of the API phases (label,
reformat).

Prompt wording moved reported MATH500 by 4-7 points in the reference implementation, so every prompt has
an id and a version, the hash of its exact text (`Template.digest`). Each phase's manifest records the ids
and versions it used (the report lists them), and they are part of the phase's digest: editing a prompt
re-runs exactly the phases that send it.

The model is trained and evaluated on the same user turns unless a recipe says otherwise: `prompts.user`
picks the template set for distill, assemble and eval (`eval.prompt_mode` may override it for eval), and
`prompts.system` the system prompt of the training rows and of the trained model's evaluation.

User-turn sets:
- `skyt1`: the user turns Sky-T1 used (math: "Return your final response within \\boxed{}." before the
  problem; GPQA: the letter inside \\boxed{}; APPS/TACO/LiveCodeBench: the "executable Python function"
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

# The teacher's system prompt in the published distillation (QwQ-32B-Preview's own).
QWQ_TEACHER_SYSTEM_PROMPT = ("You are a helpful and harmless assistant. You are Qwen developed by Alibaba. "
                             "You should think step-by-step.")

# Named system prompts a recipe can choose (`prompts.system`, `eval.system_prompt`).
SYSTEM_PROMPTS: dict[str, str | None] = {"sky-t1": SKYT1_SYSTEM_PROMPT, "qwen-cot": QWEN_COT_PROMPT, "none": None}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def system_prompt(name: str) -> str | None:
    """A named system prompt (`prompts.system` in a recipe); None for "none"."""
    if name not in SYSTEM_PROMPTS:
        raise ValueError(f"unknown system prompt {name!r}; choose one of {', '.join(SYSTEM_PROMPTS)}")
    return SYSTEM_PROMPTS[name]


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

LABEL_INSTRUCTION = """You grade how hard competition mathematics problems are, using the Art of Problem Solving \
(AoPS) difficulty scale from 1 to 10:
1: easy middle-school contest problems (early AMC 8);
2-3: harder AMC 8 and early AMC 10/12 problems;
4: later AMC 10/12 problems; 5: hard AMC 12 and easy AIME problems;
6: middle AIME problems; 7: hard AIME and easy national olympiad problems;
8: national olympiad problems (USAMO/USAJMO); 9: hard olympiad problems (IMO level);
10: the hardest olympiad problems, rarely solved.

Read the problem and its reference solution, think briefly about which contest level it matches, and end \
your reply with the rating in double square brackets, for example [[5]].

Problem:
{problem}

Reference solution:
{solution}"""

REFORMAT_INSTRUCTION = """Rewrite the worked answer below into exactly two sections, using these four markers once each:

<|begin_of_thought|>
the reasoning: keep the author's exploration, checks and corrections close to word for word, with steps \
separated by blank lines
<|end_of_thought|>

<|begin_of_solution|>
one clean final solution: the key steps that lead to the result, then the result itself
<|end_of_solution|>

Rules:
- Do not solve the problem again and do not change the final result.
{domain_rule}
- Output only the two sections, nothing before or after them.

Problem:
{question}

Worked answer to rewrite:
{response}"""

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
        Template("skyt1/plain", "{problem}"),
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
        Template("default/plain", "{problem}"),
        # -------- system prompts (by name) and the instructions of the API phases
        *(Template(f"system/{name}", text.replace("{", "{{").replace("}", "}}"))
          for name, text in SYSTEM_PROMPTS.items() if text is not None),
        Template("label/difficulty", LABEL_INSTRUCTION),
        Template("reformat/rewrite", REFORMAT_INSTRUCTION),
        Template("reformat/rule-math",
                 "- The solution section must end with the same final answer written as \\boxed{{...}}: {answer}"),
        Template("reformat/rule-code",
                 "- The solution section must contain exactly one Python code block (```python ... ```), the final "
                 "program, copied unchanged from the worked answer."),
        Template("reformat/rule-other", "- Keep the final answer exactly as the worked answer states it."),
    )
}

MODES = ("skyt1", "default")


def template(mode: str, kind: str) -> Template:
    """The template of a prompt mode for one kind of problem (math, choice, code_stdin, code_call,
    code_complete, plain)."""
    if mode not in MODES:
        raise ValueError(f"unknown prompt mode {mode!r}; choose one of {', '.join(MODES)}")
    return TEMPLATES[f"{mode}/{kind}"]


def versions(*prefixes: str) -> dict[str, str]:
    """{template id: version} of every template whose id starts with one of `prefixes` (e.g. "skyt1/")."""
    return {t.id: t.digest for t in TEMPLATES.values() if t.id.startswith(prefixes)}


def problem_kind(problem: dict) -> str:
    """Which user-turn template a training problem (a `skyt1.data.sources` record) takes."""
    if problem["domain"] == "math":
        return "math"
    if problem["domain"] == "code":
        return "code_call" if (problem.get("tests") or {}).get("kind") == "call" else "code_stdin"
    return "plain"


def user_turn(problem: dict, mode: str) -> str:
    """The user message of a training problem: the same template evaluation renders for its kind, so the
    teacher, the training rows and the benchmarks see one wording."""
    fields = {"problem": problem["question"].strip(), "starter_code": (problem.get("starter_code") or "").rstrip()}
    return template(mode, problem_kind(problem)).render(**fields).rstrip()


def format_options(options: list[str]) -> str:
    return "\n".join(f"({chr(65 + i)}) {opt}" for i, opt in enumerate(options))
