"""Training sources read from local copies laid out with the hub datasets' own columns: NuminaMath-CoT
(`source`, `problem`, `solution`), TACO (`question`, `input_output`, `difficulty`, ...) and STILL-2
(`question`, `combined_text`, `domain`). Selection rules and quarantine, never the hub."""

from __future__ import annotations

import json

from skyt1.data.sources import load_source

from .conftest import base_recipe


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _recipe(write_recipe, *sources):
    d = base_recipe()
    d["sources"] = list(sources)
    d["label"]["sources"], d["distill"]["sources"] = [], []
    recipe, _ = write_recipe(d)
    return recipe


def test_numina_subset_boxed_answers_difficulty_bounds_and_window(tmp_path, write_recipe):
    rows = [
        {"source": "math", "problem": "What is 2+3?", "solution": "Add them: $\\boxed{5}$."},
        {"source": "olympiads", "problem": "Other subset.", "solution": "$\\boxed{1}$"},
        {"source": "math", "problem": "Prove it.", "solution": "A proof without a final answer."},
        {"source": "math", "problem": "What is 10/4?", "solution": "So $\\boxed{\\frac{5}{2}}$"},
        {"source": "math", "problem": "", "solution": "$\\boxed{0}$"},
        {"source": "math", "problem": "What is 7*6?", "solution": "$\\boxed{42}$"},
    ]
    src = {"name": "numina_math", "dataset": "numina", "domain": "math", "subset": "math", "require_boxed": True,
           "difficulty_min": 4, "difficulty_max": 9, "local_path": _jsonl(tmp_path / "numina.jsonl", rows)}
    recipe = _recipe(write_recipe, src)

    unbounded = load_source(recipe, "numina_math")  # no labels given: bounds are not applied
    assert [(p["question"], p["reference"]) for p in unbounded.problems] == [
        ("What is 2+3?", "5"), ("What is 10/4?", "\\frac{5}{2}"), ("What is 7*6?", "42")]
    assert unbounded.skipped == {"no boxed answer": 1}
    assert [q["reason"] for q in unbounded.quarantine] == ["no problem text"]  # kept with its reason

    ids = [p["id"] for p in unbounded.problems]
    labels = {ids[0]: 3, ids[1]: 6}  # too easy, in bounds, unlabeled
    bounded = load_source(recipe, "numina_math", labels)
    assert [p["id"] for p in bounded.problems] == [ids[1]]
    assert bounded.skipped["unlabeled"] == 1

    recipe.sources[0].start, recipe.sources[0].end = 0, 2  # a row window of the subset (the first 20k, say)
    assert [p["question"] for p in load_source(recipe, "numina_math").problems] == ["What is 2+3?"]


def test_taco_difficulty_selection_tests_and_quarantine(tmp_path, write_recipe):
    def row(question, difficulty, io):
        return {"question": question, "solutions": "[]", "starter_code": "", "difficulty": difficulty,
                "input_output": io, "raw_tags": "[]", "name": None, "source": "codeforces", "tags": "[]",
                "skill_types": "[]", "url": "", "Expected Auxiliary Space": None, "time_limit": "1 second",
                "date": None, "picture_num": "0", "memory_limit": "256 megabytes", "Expected Time Complexity": None}

    stdio = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})
    call = json.dumps({"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]})
    rows = [row("Sum two numbers.", "MEDIUM", stdio), row("Too easy.", "EASY", stdio),
            row("Add in a function.", "MEDIUM", call), row("Broken tests.", "MEDIUM", "{not json"),
            row("No tests.", "MEDIUM", json.dumps({"inputs": [], "outputs": []}))]
    src = {"name": "taco_train_medium", "dataset": "taco", "domain": "code", "difficulties": ["MEDIUM"],
           "local_path": _jsonl(tmp_path / "taco.jsonl", rows)}
    loaded = load_source(_recipe(write_recipe, src), "taco_train_medium")
    assert [(p["id"], p["tests"]["kind"]) for p in loaded.problems] == [
        ("taco_train_medium/0", "stdio"), ("taco_train_medium/2", "call")]
    assert loaded.problems[0]["tests"] == {"kind": "stdio", "inputs": ["1 2\n"], "outputs": ["3\n"]}
    assert loaded.skipped == {"difficulty not selected": 1}
    assert sorted(q["id"] for q in loaded.quarantine) == ["taco_train_medium/3", "taco_train_medium/4"]
    assert all(q["reason"].startswith("unusable input_output") for q in loaded.quarantine)


def test_still2_keeps_every_domain_but_code_as_given(tmp_path, write_recipe):
    rows = [{"question": "Why is the sky blue?", "combined_text": "<|begin_of_thought|>...", "domain": "physics"},
            {"question": "Write a sort.", "combined_text": "...", "domain": "code"},
            {"question": "A knight and a knave...", "combined_text": "...", "domain": "puzzle"},
            {"question": "Missing text.", "combined_text": "", "domain": "chemistry"}]
    src = {"name": "still2", "dataset": "still2", "domain": "science",
           "local_path": _jsonl(tmp_path / "still2.jsonl", rows)}
    loaded = load_source(_recipe(write_recipe, src), "still2")
    assert [(p["question"], p["solution"]) for p in loaded.problems] == [
        ("Why is the sky blue?", "<|begin_of_thought|>..."), ("A knight and a knave...", "...")]
    assert loaded.skipped == {"code domain": 1} and [q["id"] for q in loaded.quarantine] == ["still2/3"]
