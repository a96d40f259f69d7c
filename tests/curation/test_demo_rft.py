"""The real demo's curation path on a scripted teacher: arithmetic problems held out from training,
`reformat.mode: answer` (stated answers boxed into a solution section), filter, and the report's sections
that show what rejection sampling kept and what training changed."""

from __future__ import annotations

import json
import math

import pytest

from skyt1 import report_demo
from skyt1.curation import distill, reformat
from skyt1.curation import filter as filter_phase
from skyt1.curation.sharegpt import solution_of
from skyt1.data.demo import ARITH_EVAL_COUNT, arith_eval_problems, arith_problems
from skyt1.recipe import load_recipe
from skyt1.store import RunDir

from .conftest import REPO, base_recipe
from .test_phases import openai_teacher


def test_arith_training_problems_never_repeat_a_held_out_question():
    held_out = arith_eval_problems()
    assert len(held_out) == ARITH_EVAL_COUNT == len({r["question"] for r in held_out})
    train = arith_problems(400, seed=0)
    assert not {r["question"] for r in train} & {r["question"] for r in held_out}
    assert arith_problems(50, seed=3) == arith_problems(50, seed=3) != arith_problems(50, seed=4)
    for r in held_out[:20] + train[:20]:
        assert r["solution"].endswith(f"$\\boxed{{{r['answer']}}}$.")
        assert int(r["answer"]) == eval(_expression(r))  # the answer is the arithmetic the question asks


def _expression(row: dict) -> str:
    import re

    a, b = (int(x) for x in re.findall(r"\d+", row["question"])[:2]) if row["kind"] != "double" else (
        int(re.findall(r"\d+", row["question"])[0]), 2)
    return f"{a}*{b}" if row["kind"] in ("product", "groups", "double") else f"{a}+{b}"


def test_demo_recipe_loads_and_holds_out_its_eval_set():
    recipe = load_recipe(REPO / "recipes" / "demo.yaml")
    assert recipe.reformat.mode == "answer" and recipe.prompts.system == "qwen-cot"
    assert "demo_arith" in recipe.eval.benchmarks and "demo_arith" in recipe.assemble.decontam_benchmarks
    assert recipe.distill.engine.backend == "vllm" and recipe.eval.engine.backend == "vllm"


def _answer(messages: list[dict]) -> str:
    """A teacher that answers arithmetic in a box, in prose, wrongly, or not at all, by problem."""
    question = messages[-1]["content"]
    row = next(r for r in arith_problems(10) if r["question"] in question)
    n = int(row["key"])
    right = row["answer"]
    return [f"I add them: the result is $\\boxed{{{right}}}$.",
            f"Counting up, I get {right}. The final answer is {right}.",
            f"Counting up, I get {int(right) + 1}. The final answer is {int(right) + 1}.",
            "I am not sure how to do this."][n % 4]


@pytest.fixture
def rft_run(tmp_path, serve, write_recipe):
    teacher = serve(_answer)
    d = openai_teacher(base_recipe(), teacher.url)
    d["sources"] = [{"name": "demo_arith", "dataset": "demo", "domain": "math", "subset": "arith", "count": 10}]
    d["label"]["sources"] = []
    d["distill"].update(sources=["demo_arith"], sampling={"temperature": 0.7, "top_p": 1.0, "max_tokens": 24,
                                                          "n": 1, "seed": 0})
    d["reformat"] = {"mode": "answer"}
    recipe, _ = write_recipe(d)
    run = RunDir(tmp_path / "run")
    distill.run(recipe, run)
    return recipe, run


def test_answer_mode_boxes_the_stated_answer_and_filter_keeps_the_right_ones(rft_run):
    recipe, run = rft_run
    m = reformat.run(recipe, run)
    assert m["cost_usd"] == 0 and m["counts"]["methods"] == {"answer": 8}
    assert m["counts"]["answer_rules"] == {"boxed": 3, "prose": 5, "none": 2}
    assert m["counts"]["rejected"] == {reformat.NO_STATED_ANSWER: 2}
    for r in run.phase("reformat").records():
        assert r["trace"].startswith("<|begin_of_thought|>\n\n" + r["response"].strip())  # the trace, word for word
        assert solution_of(r["trace"]).startswith("The final answer is $\\boxed{")
    f = filter_phase.run(recipe, run)
    assert f["counts"]["out"] == 6  # 3 boxed + 3 prose answers that were right
    assert f["counts"]["rejected"] == {"wrong_answer": 2}


def test_report_sections_show_what_was_kept_and_examples(rft_run):
    recipe, run = rft_run
    reformat.run(recipe, run)
    filter_phase.run(recipe, run)
    kept = report_demo.rejection_section(run)
    text, table = kept.blocks
    rows = {r[0]: r[1:] for r in table.rows}
    assert rows["stated in prose only"] == ["3", "2", "0", "5"]
    assert rows["in a \\boxed{}"] == ["3", "0", "0", "3"]
    assert rows["no final answer"] == ["0", "0", "2", "2"]
    assert "3 of those stated it only in prose" in text.text
    ex = report_demo.examples_section(run)
    captions = [b.summary for b in ex.blocks]
    assert [c.split(" (")[0] for c in captions[::2]] == ["kept: answer stated in prose", "kept",
                                                         "rejected: wrong answer"]
    assert all(c.endswith(": teacher sample") for c in captions[::2])
    assert all(c.endswith(": after reformat") for c in captions[1::2])
    assert ex.blocks[1].text.startswith("<|begin_of_thought|>")


def _samples(folder, correct: list[list[bool]]):
    (folder / "demo_arith").mkdir(parents=True)
    rows = [{"id": f"p{i}#{k}", "problem_id": f"p{i}", "correct": c, "verdict": {"status": "passed" if c else
             "no_answer", "extraction": "boxed" if c else None}}
            for i, per in enumerate(correct) for k, c in enumerate(per)]
    (folder / "demo_arith" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')


def test_effect_section_pairs_the_same_problems(tmp_path):
    run = RunDir(tmp_path)
    base = [[False]] * 6 + [[True]] * 4
    trained = [[True]] * 8 + [[False]] * 2
    _samples(tmp_path / "base_eval", base)
    _samples(tmp_path / "eval", trained)
    sec = report_demo.effect_section(run)
    c = report_demo.compare(report_demo.eval_samples(tmp_path / "base_eval")["demo_arith"],
                            report_demo.eval_samples(tmp_path / "eval")["demo_arith"])
    assert c["base"][:1] == (0.4,) and c["trained"][:1] == (0.8,)
    diffs = [1] * 6 + [0, 0, -1, -1]  # trained minus base, problem by problem
    mean = sum(diffs) / 10
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 9 / 10)
    assert c["diff"][0] == pytest.approx(0.4) and c["diff"][1] == pytest.approx(se)
    assert c["z"] == pytest.approx(0.4 / se)
    chart, table, *_ = sec.blocks
    row = table.rows[0]
    assert row[:4] == ["demo_arith", "40.0 ± 16.3", "80.0 ± 13.3", "+40.0 ± 26.7"] and row[5] == "no"
    assert "demo_arith base" in chart.svg and "demo_arith trained" in chart.svg


def test_report_puts_the_effect_after_the_stand_ins(tmp_path):
    from skyt1.report import collect, render_html, render_markdown

    _samples(tmp_path / "base_eval", [[False]] * 30 + [[True]] * 10)
    _samples(tmp_path / "eval", [[True]] * 30 + [[False]] * 10)
    data = collect(RunDir(tmp_path))
    md, html = render_markdown(data), render_html(data)
    assert md.index("## Local stand-ins") < md.index("## What the recipe did") < md.index("## Phases")
    assert "| demo_arith | 25.0 ± 6.9 | 75.0 ± 6.9 | +50.0 ± 13.9 | 3.6 | yes | 40 |" in md
    assert 'id="effect"' in html or "What the recipe did" in html


def test_no_sections_without_a_base_eval(tmp_path):
    assert report_demo.collect(RunDir(tmp_path)) == []
