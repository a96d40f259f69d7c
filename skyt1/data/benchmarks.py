"""Benchmarks: each one is a dataset, a prompt and a scorer (inspect_ai style).

`load_task(name, ...)` turns a benchmark's rows into `Problem`s: an id (`<benchmark>/<row key>`), the chat
messages, the target the scorer compares against, the scorer kind (`math`, `choice`, `code`), the scorer's
keyword arguments and a difficulty (where the dataset has one). Rows come from the HF hub, or from
`data_dir` (`--data-dir`, env `SKYT1_DATA_DIR`) laid out like `../shared/data`, never both.

Names: aime24 aime25 amc23 math500 gpqa_diamond livecodebench[_easy|_medium|_hard][@release_vN]
olympiadbench minerva gsm8k mmlu mmlu_pro arc_c humaneval mbpp; aliases aime=aime24, gpqa=gpqa_diamond.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyt1.data import demo, prompts
from skyt1.data import livecodebench as lcb
from skyt1.data.hub import DatasetUnavailable, load_hub, read_local
from skyt1.scoring.text import last_boxed

ALIASES = {"aime": "aime24", "gpqa": "gpqa_diamond", "lcb": "livecodebench", "arc": "arc_c", "minerva_math": "minerva"}
GPQA_SEED = 0  # options are shuffled per question with this seed: fixed across runs and models


@dataclass(frozen=True)
class Problem:
    id: str
    messages: list[dict]
    target: Any
    scorer: str  # math | choice | code
    score_kw: dict = field(default_factory=dict)
    difficulty: str | None = None


@dataclass
class Task:
    name: str  # canonical name, also the results folder
    problems: list[Problem]
    dataset: dict  # hub id, revision or local path, row count, fingerprint
    prompt: dict  # mode, template ids and hashes, system prompt hash


@dataclass(frozen=True)
class Item:
    """One row, made benchmark-neutral: what the prompt template needs and what the scorer needs."""

    key: str
    kind: str  # template kind: math | choice | code_stdin | code_call | code_complete
    fields: dict
    target: Any
    score_kw: dict = field(default_factory=dict)
    difficulty: str | None = None


@dataclass(frozen=True)
class Hub:
    hub_id: str
    config: str | None = None
    split: str = "test"
    revision: str | None = None
    data_files: str | list[str] | None = None
    builder: str | None = None


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub: Hub | None  # None: rows are generated, never downloaded
    local: str  # path under the data dir
    adapt: Callable[[dict, int], Item | None]  # None drops the row (e.g. AIME rows from other years)
    scorer: str
    gated: bool = False
    generate: Callable[[], list[dict]] | None = None

    def load_rows(self, data_dir: str | Path | None) -> tuple[list[dict], dict]:
        if self.generate is not None:
            return self.generate(), {"source": "generated", "generator": f"skyt1.data.demo.{self.generate.__name__}"}
        if data_dir is not None:
            path = Path(data_dir).expanduser() / self.local
            if not path.exists():
                raise DatasetUnavailable(
                    f"{self.name}: {path} does not exist; put the benchmark file there "
                    f"(hub: https://huggingface.co/datasets/{self.hub.hub_id}) or drop --data-dir to read the hub"
                    + (_GATED_HINT.format(hub=self.hub.hub_id) if self.gated else "")
                )
            return read_local(path), {"source": "local", "path": str(path.resolve())}
        h = self.hub
        try:
            if self.name == "aime25":
                rows = _aime25_hub(h)
            else:
                rows = load_hub(h.hub_id, config=h.config, split=h.split, revision=h.revision,
                                data_files=h.data_files, builder=h.builder)
        except DatasetUnavailable as e:
            if self.gated:
                raise DatasetUnavailable(f"{self.name}: {e}" + _GATED_HINT.format(hub=h.hub_id)) from None
            raise
        return rows, {"source": "hub", "hub_id": h.hub_id, "config": h.config, "split": h.split,
                      "revision": h.revision or "main"}


_GATED_HINT = (
    ". {hub} is gated: accept its terms at https://huggingface.co/datasets/{hub}, then `export HF_TOKEN=...` "
    "(a token of the account that accepted), or pass a local copy with --data-dir DIR (file DIR/gpqa_diamond/"
    "gpqa_diamond.csv), or leave the benchmark out / pass --skip-unavailable"
)


def _aime25_hub(h: Hub) -> list[dict]:
    rows = []
    for part in ("I", "II"):
        for i, r in enumerate(load_hub(h.hub_id, config=f"AIME2025-{part}", split="test", revision=h.revision), 1):
            rows.append({"id": f"{part}-{i}", "problem": r["question"], "answer": r["answer"]})
    return rows


# ------------------------------------------------------------------------------------------ row adapters


def _number(value) -> str:
    """Integers as plain digits ("025" -> "25", 27.0 -> "27"); anything else as given."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return str(int(text)) if re.fullmatch(r"\d+", text) else text


def _pyval(value):
    """Some copies store Python literals as strings ("['2']", "False", "None")."""
    if isinstance(value, str) and value[:1] in "[({'\"" or value in ("True", "False", "None"):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _math(key, problem, answer, difficulty=None) -> Item:
    return Item(str(key), "math", {"problem": problem}, answer, {}, None if difficulty is None else str(difficulty))


def _year_filter(year: str):
    def adapt(r: dict, i: int) -> Item | None:
        if r.get("url") and year not in r["url"]:
            return None
        return _math(r.get("id", i), r.get("problem") or r["question"], _number(r["answer"]))

    return adapt


def _demo_math(r, i):
    return _math(r["key"], r["question"], r["answer"], r["kind"])


def _math500(r, i):
    return _math(r["unique_id"], r["problem"], r["answer"], r.get("level"))


def _aime25(r, i):
    return _math(r.get("id", i), r.get("problem") or r["question"], _number(r["answer"]))


def _gsm8k(r, i):
    answer = r["answer"].split("####")[-1].strip().replace(",", "")
    return _math(i, r["question"], answer)


def _minerva(r, i):
    answer = r.get("answer") or last_boxed(r["solution"])  # never the whole solution text
    if answer is None:
        raise ValueError(f"minerva row {i}: no answer field and no \\boxed{{}} in the solution")
    return _math(r.get("idx", i), r.get("problem") or r["question"], answer)


def _olympiad(r, i):
    answers = _pyval(r["final_answer"])
    answers = answers if isinstance(answers, list) else [answers]
    context = _pyval(r.get("context"))
    problem = f"{context}\n\n{r['question']}" if context else r["question"]
    unit = _pyval(r.get("unit"))
    if unit:
        problem += f"\n\nGive the answer in {unit}."
    return _math(r.get("id", i), problem, ", ".join(str(a).strip("$ ") for a in answers))


def letters_phrase(n: int) -> str:
    letters = [chr(65 + k) for k in range(n)]
    return ", ".join(letters[:-1]) + ", or " + letters[-1]


def _choice(key, question, options, gold_index, difficulty=None) -> Item:
    n = len(options)
    fields = {"problem": question.strip(), "options": prompts.format_options(options), "letters": letters_phrase(n)}
    return Item(str(key), "choice", fields, chr(65 + gold_index), {"n_options": n}, difficulty)


def shuffle_options(key: str, correct: str, incorrect: list[str], seed: int = GPQA_SEED) -> tuple[list[str], int]:
    """Options in a fixed per-question order (seeded by the question key), and the gold option's index."""
    options = [correct, *incorrect]
    order = list(range(len(options)))
    random.Random(int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest(), 16)).shuffle(order)
    return [options[k].strip() for k in order], order.index(0)


def _gpqa(r, i):
    key = r.get("Record ID") or str(i)
    incorrect = [r[f"Incorrect Answer {k}"] for k in (1, 2, 3)]
    options, gold = shuffle_options(key, r["Correct Answer"], incorrect)
    return _choice(key, r["Question"], options, gold, r.get("Writer's Difficulty Estimate"))


def _mmlu(r, i):
    return _choice(f"{r.get('subject', 'all')}/{i}", r["question"], list(r["choices"]), int(r["answer"]))


def _mmlu_pro(r, i):
    return _choice(r.get("question_id", i), r["question"], list(r["options"]), int(r["answer_index"]),
                   r.get("category"))


def _arc(r, i):
    labels = list(r["choices"]["label"])
    return _choice(r.get("id", i), r["question"], list(r["choices"]["text"]), labels.index(r["answerKey"]))


def _humaneval(r, i):
    # HumanEval scores prompt + completion: the prompt's imports (e.g. `from typing import List`) run before
    # the program, so a complete function that leaves them out is still judged on its behaviour.
    imports = "\n".join(line for line in r["prompt"].splitlines() if line.startswith(("import ", "from ")))
    tests = {"kind": "assert", "test_code": r["test"], "entry_point": r["entry_point"], "setup_code": None,
             "prelude_code": imports or None}
    return Item(r["task_id"].split("/")[-1], "code_complete", {"problem": r["prompt"].strip()}, tests)


def _mbpp(r, i):
    if not 11 <= int(r["task_id"]) <= 510:  # the test split; 1-10 are few-shot prompts, 511+ train/validation
        return None
    problem = r.get("text") or r["prompt"]
    problem += "\nYour code should pass these tests:\n" + "\n".join(r["test_list"])
    tests = {"kind": "assert", "test_code": "\n".join(r["test_list"]), "entry_point": None,
             "setup_code": r.get("test_setup_code") or None}
    return Item(str(r["task_id"]), "code_complete", {"problem": problem}, tests)


def _livecodebench(r, i):
    tests = lcb.tests_of(r)
    starter = (r.get("starter_code") or "").strip()
    kind = "code_call" if starter else "code_stdin"
    fields = {"problem": r["question_content"], "starter_code": starter}
    return Item(r["question_id"], kind, fields, tests, {}, r.get("difficulty"))


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("aime24", Hub("AI-MO/aimo-validation-aime", split="train"), "aime24/test.jsonl",
                  _year_filter("2024"), "math"),
        Benchmark("aime25", Hub("opencompass/AIME2025"), "aime25/aime25.json", _aime25, "math"),
        Benchmark("amc23", Hub("AI-MO/aimo-validation-amc", split="train"), "amc23/test.jsonl",
                  _year_filter("2023"), "math"),
        Benchmark("math500", Hub("HuggingFaceH4/MATH-500"), "math500/test.jsonl", _math500, "math"),
        Benchmark("gpqa_diamond", Hub("Idavidrein/gpqa", config="gpqa_diamond", split="train"),
                  "gpqa_diamond/gpqa_diamond.csv", _gpqa, "choice", gated=True),
        Benchmark("olympiadbench", Hub("Hothan/OlympiadBench", config="OE_TO_maths_en_COMP", split="train"),
                  "olympiadbench/test.jsonl", _olympiad, "math"),
        Benchmark("minerva", Hub("math-ai/minervamath"), "minerva_math/test.jsonl", _minerva, "math"),
        Benchmark("gsm8k", Hub("openai/gsm8k", config="main"), "gsm8k/test.jsonl", _gsm8k, "math"),
        Benchmark("mmlu", Hub("cais/mmlu", config="all"), "mmlu/test.jsonl", _mmlu, "choice"),
        Benchmark("mmlu_pro", Hub("TIGER-Lab/MMLU-Pro"), "mmlu_pro/test.jsonl", _mmlu_pro, "choice"),
        Benchmark("arc_c", Hub("allenai/ai2_arc", config="ARC-Challenge"), "arc_c/test.jsonl", _arc, "choice"),
        Benchmark("humaneval", Hub("openai/openai_humaneval"), "humaneval/HumanEval.jsonl", _humaneval, "code"),
        Benchmark("mbpp", Hub("google-research-datasets/mbpp", config="full"), "mbpp/mbpp.jsonl", _mbpp, "code"),
        Benchmark("livecodebench", Hub(lcb.HUB_ID, split="train"), "livecodebench", _livecodebench, "code"),
        # Held-out problems generated by skyt1 itself (another seed than training): the demo's offline benchmark.
        Benchmark("demo_math", None, "", _demo_math, "math", generate=demo.math_eval_problems),
        # The real-model demo's held-out set: one-step arithmetic a 135M model sometimes gets right.
        Benchmark("demo_arith", None, "", _demo_math, "math", generate=demo.arith_eval_problems),
    )
}


# ------------------------------------------------------------------------------------------ names


@dataclass(frozen=True)
class Spec:
    """A parsed benchmark name: `livecodebench_hard@release_v3` -> base, difficulty, version."""

    base: str
    difficulty: str | None = None
    version: str | None = None

    @property
    def name(self) -> str:
        name = self.base + (f"_{self.difficulty}" if self.difficulty else "")
        if self.version and self.version != lcb.DEFAULT_VERSION:
            name += f"@{self.version}"
        return name


def parse_name(name: str) -> Spec:
    raw = name.strip().lower()
    base, _, version = raw.partition("@")
    base = ALIASES.get(base, base)
    difficulty = None
    for d in lcb.DIFFICULTIES:
        if base in (f"livecodebench_{d}", f"lcb_{d}"):
            base, difficulty = "livecodebench", d
    if base not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(available())}")
    if version and base != "livecodebench":
        raise ValueError(f"{name!r}: only livecodebench takes a release version (@release_vN)")
    if base == "livecodebench":
        version = version or lcb.DEFAULT_VERSION
        lcb.version_files(version)  # validates
    return Spec(base, difficulty, version or None)


def available() -> list[str]:
    names = sorted(BENCHMARKS)
    names += [f"livecodebench_{d}" for d in lcb.DIFFICULTIES]
    return names + [f"{a} (= {b})" for a, b in sorted(ALIASES.items())]


def resolve_data_dir(data_dir: str | Path | None) -> str | None:
    return str(data_dir) if data_dir else os.environ.get("SKYT1_DATA_DIR") or None


# ------------------------------------------------------------------------------------------ tasks


def fingerprint(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def load_task(
    name: str,
    *,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    prompt_mode: str = "skyt1",
    system_prompt: str | None = None,
) -> Task:
    """Rows -> problems with rendered messages. `system_prompt` None means no system turn."""
    spec = parse_name(name)
    bench = BENCHMARKS[spec.base]
    data_dir = resolve_data_dir(data_dir)
    if spec.base == "livecodebench":
        rows = lcb.load_rows(spec.version, data_dir)
        source = ({"source": "local", "path": str(Path(data_dir).expanduser().resolve() / "livecodebench")}
                  if data_dir else {"source": "hub", "hub_id": lcb.HUB_ID, "revision": bench.hub.revision or "main"})
        source["version"] = spec.version
    else:
        rows, source = bench.load_rows(data_dir)
    problems: list[Problem] = []
    templates: dict[str, str] = {}
    seen: set[str] = set()
    for i, row in enumerate(rows):
        try:
            item = bench.adapt(row, i)
        except (KeyError, ValueError, TypeError) as e:
            raise DatasetUnavailable(f"{spec.name}: row {i} is malformed ({type(e).__name__}: {e})") from None
        if item is None or (spec.difficulty and item.difficulty != spec.difficulty):
            continue
        pid = f"{spec.name}/{item.key}"
        if pid in seen:
            raise DatasetUnavailable(f"{spec.name}: two rows share the id {item.key!r}")
        seen.add(pid)
        tpl = prompts.template(prompt_mode, item.kind)
        templates[tpl.id] = tpl.digest
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": tpl.render(**item.fields)})
        problems.append(Problem(pid, messages, item.target, bench.scorer, item.score_kw, item.difficulty))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise DatasetUnavailable(f"{spec.name}: no problems in {source.get('path') or source.get('hub_id')}")
    dataset = {**source, "rows": len(rows), "fingerprint": fingerprint(rows)}
    prompt = {
        "mode": prompt_mode,
        "templates": templates,
        "system_prompt_digest": prompts.digest(system_prompt) if system_prompt else None,
    }
    return Task(spec.name, problems, dataset, prompt)


def load_tasks(
    names: list[str],
    *,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    limits: dict[str, int] | None = None,
    prompt_mode: str = "skyt1",
    system_prompt: str | None = None,
    skip_unavailable: bool = False,
) -> tuple[list[Task], dict[str, str]]:
    """Every requested benchmark, loaded before any generation starts. A benchmark that cannot be loaded
    (gated, offline, missing file) fails the whole call, or with `skip_unavailable` is returned in
    `skipped` with the reason and what to do. `limits` overrides `limit` per benchmark name."""
    tasks, skipped, seen = [], {}, set()
    for name in names:
        spec = parse_name(name)
        if spec.name in seen:
            continue
        seen.add(spec.name)
        try:
            tasks.append(load_task(name, data_dir=data_dir, limit=(limits or {}).get(spec.name, limit),
                                   prompt_mode=prompt_mode,
                                   system_prompt=system_prompt))
        except DatasetUnavailable as e:
            if not skip_unavailable:
                raise
            skipped[spec.name] = str(e)
    return tasks, skipped
