import csv
import json
from collections import Counter

import pytest

from skyt1.data.benchmarks import load_task, load_tasks, parse_name, shuffle_options
from skyt1.data.hub import DatasetUnavailable

# name -> (problems from ../shared/data, first problem id, its target)
LOCAL = {
    "aime24": (30, "aime24/60", "204"),
    "aime25": (30, "aime25/I-1", "70"),
    "amc23": (40, "amc23/0", "27"),
    "math500": (500, "math500/test/precalculus/807.json", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    "gsm8k": (1319, "gsm8k/0", "18"),
    "minerva": (272, "minerva/0", "1.6"),
    "olympiadbench": (675, "olympiadbench/1606", "2"),
    "humaneval": (164, "humaneval/0", None),
    "mbpp": (500, "mbpp/11", None),
}


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_shared_data_loads_as_laid_out(name, data_dir):
    count, first_id, target = LOCAL[name]
    task = load_task(name, data_dir=data_dir)
    assert len(task.problems) == count
    assert len({p.id for p in task.problems}) == count
    p = task.problems[0]
    assert p.id == first_id
    if target is not None:
        assert p.target == target and p.scorer == "math"
    assert task.dataset["source"] == "local" and len(task.dataset["fingerprint"]) == 16


def test_code_targets_are_score_test_dicts(data_dir):
    he = load_task("humaneval", data_dir=data_dir, limit=1).problems[0]
    assert he.scorer == "code"
    assert he.target["kind"] == "assert" and he.target["entry_point"] == "has_close_elements"
    mb = load_task("mbpp", data_dir=data_dir, limit=1).problems[0]
    assert mb.target == {"kind": "assert", "entry_point": None, "setup_code": None,
                         "test_code": 'assert remove_Occ("hello","l") == "heo"\nassert remove_Occ("abcda","a") == "bcd"\n'
                                      'assert remove_Occ("PHP","P") == "H"'}


def test_aliases_limit_and_env_data_dir(data_dir, monkeypatch):
    monkeypatch.setenv("SKYT1_DATA_DIR", str(data_dir))
    tasks, skipped = load_tasks(["aime", "AIME24", "math500"], limit=3)
    assert [t.name for t in tasks] == ["aime24", "math500"] and not skipped
    assert all(len(t.problems) == 3 for t in tasks)
    assert tasks[1].problems[0].difficulty == "2"  # MATH level
    tasks, _ = load_tasks(["aime", "math500"], limit=3, limits={"math500": 5})  # per-benchmark override
    assert [len(t.problems) for t in tasks] == [3, 5]


def test_minerva_target_is_the_boxed_answer_not_the_solution(data_dir):
    for p in load_task("minerva", data_dir=data_dir).problems:
        assert "\\boxed" not in p.target and len(p.target) < 300


def test_olympiadbench_stringified_python_fields(tmp_path):
    row = {"id": 7, "question": "Find $x$.", "final_answer": "['3', '4']", "is_multiple_answer": "True",
           "context": "None", "unit": "None", "answer_type": "Tuple", "solution": "[]"}
    (tmp_path / "olympiadbench").mkdir()
    (tmp_path / "olympiadbench" / "test.jsonl").write_text(json.dumps(row) + "\n")
    p = load_task("olympiadbench", data_dir=tmp_path).problems[0]
    assert p.target == "3, 4"
    assert "None" not in p.messages[-1]["content"]


def test_names():
    assert parse_name("gpqa").name == "gpqa_diamond"
    assert parse_name("livecodebench").version == "release_v2"
    s = parse_name("livecodebench_hard@release_v3")
    assert (s.base, s.difficulty, s.version, s.name) == ("livecodebench", "hard", "release_v3",
                                                         "livecodebench_hard@release_v3")
    with pytest.raises(ValueError, match="unknown benchmark 'aime23'"):
        parse_name("aime23")
    with pytest.raises(ValueError, match="only livecodebench"):
        parse_name("math500@release_v2")
    with pytest.raises(ValueError, match="unknown LiveCodeBench version"):
        parse_name("livecodebench@v9x")


def test_missing_local_file_says_what_to_do(tmp_path):
    with pytest.raises(DatasetUnavailable, match="does not exist; put the benchmark file there"):
        load_task("math500", data_dir=tmp_path)


def test_gpqa_gated_offline_message():
    # HF_HUB_OFFLINE=1 (tests/conftest.py): the hub cannot be reached, as without access.
    with pytest.raises(DatasetUnavailable) as e:
        load_task("gpqa")
    msg = str(e.value)
    assert "accept its terms at https://huggingface.co/datasets/Idavidrein/gpqa" in msg
    assert "HF_TOKEN" in msg and "--data-dir" in msg and "--skip-unavailable" in msg


def test_skip_unavailable_reports_gpqa(data_dir):
    with pytest.raises(DatasetUnavailable):
        load_tasks(["aime24", "gpqa"], data_dir=data_dir, limit=1)
    tasks, skipped = load_tasks(["aime24", "gpqa"], data_dir=data_dir, limit=1, skip_unavailable=True)
    assert [t.name for t in tasks] == ["aime24"]
    assert "HF_TOKEN" in skipped["gpqa_diamond"]


def _gpqa_rows(n):
    return [{"Record ID": f"rec{i}", "Question": f"Question {i}?", "Correct Answer": f"right {i}",
             "Incorrect Answer 1": f"wrong1 {i}", "Incorrect Answer 2": f"wrong2 {i}",
             "Incorrect Answer 3": f"wrong3 {i}", "Writer's Difficulty Estimate": "Hard graduate level"}
            for i in range(n)]


def test_gpqa_options_shuffled_fixed_and_balanced(tmp_path):
    rows = _gpqa_rows(400)
    (tmp_path / "gpqa_diamond").mkdir()
    with open(tmp_path / "gpqa_diamond" / "gpqa_diamond.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    task = load_task("gpqa", data_dir=tmp_path)
    again = load_task("gpqa", data_dir=tmp_path)
    assert [p.messages for p in task.problems] == [p.messages for p in again.problems]  # fixed seed
    letters = Counter(p.target for p in task.problems)
    assert set(letters) == set("ABCD")
    assert all(70 <= c <= 130 for c in letters.values()), letters  # ~100 each, never all "D"
    for p in task.problems[:20]:
        text = p.messages[-1]["content"]
        i = p.id.split("rec")[1]
        assert f"({p.target}) right {i}" in text  # the gold letter points at the correct answer
        assert p.score_kw == {"n_options": 4} and p.scorer == "choice"
        assert "(A, B, C, or D)" in text
    options, gold = shuffle_options("rec1", "c", ["w1", "w2", "w3"])
    assert options[gold] == "c" and sorted(options) == ["c", "w1", "w2", "w3"]


def test_targets_work_with_the_real_scorers(data_dir, tmp_path):
    from skyt1.scoring import score

    row = json.loads((data_dir / "humaneval" / "HumanEval.jsonl").read_text().splitlines()[0])
    he = load_task("humaneval", data_dir=data_dir, limit=1).problems[0]
    full = row["prompt"] + row["canonical_solution"]  # the prompt asks for the function with its imports
    assert score("code", f"```python\n{full}\n```", he.target)["correct"] is True
    wrong = full.replace("return True", "return False", 1)
    assert score("code", f"```python\n{wrong}\n```", he.target)["status"] == "wrong_answer"
    mb = load_task("mbpp", data_dir=data_dir, limit=1).problems[0]
    assert score("code", "```python\ndef remove_Occ(s, c):\n    return s\n```", mb.target)["correct"] is False
    math = load_task("aime24", data_dir=data_dir, limit=1).problems[0]
    assert score("math", "so the answer is \\boxed{204}", math.target)["correct"] is True
    choice = _choice_problem()
    assert score("choice", f"The answer is \\boxed{{{choice.target}}}", choice.target, **choice.score_kw)["correct"]


def _choice_problem():
    from skyt1.data.benchmarks import _choice

    return _choice("q", "Which?", ["w", "x", "y", "z"], 2)
