"""LiveCodeBench from raw files: compressed private tests, public tests, versions and difficulties."""

import base64
import json
import pickle
import zlib

import pytest

from skyt1.data import livecodebench as lcb
from skyt1.data.benchmarks import load_task
from skyt1.data.hub import DatasetUnavailable


def _compress(cases: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def _stdin_row(qid, difficulty, compressed=True):
    private = [{"input": "3 4\n", "output": "7\n", "testtype": "stdin"},
               {"input": "10 -2\n", "output": "8\n", "testtype": "stdin"}]
    return {
        "question_title": f"sum {qid}", "question_content": "Read two integers and print their sum.",
        "platform": "atcoder", "question_id": qid, "contest_id": "abc1", "contest_date": "2023-08-01T00:00:00",
        "starter_code": "", "difficulty": difficulty,
        "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
        "private_test_cases": _compress(private) if compressed else json.dumps(private),
        "metadata": "{}",
    }


def _functional_row(qid, difficulty):
    return {
        "question_title": "two sum", "question_content": "Return the sum of a list and an offset.",
        "platform": "leetcode", "question_id": qid, "contest_id": "weekly-1", "contest_date": "2023-09-01T00:00:00",
        "starter_code": "class Solution:\n    def total(self, nums: List[int], k: int) -> int:\n        ",
        "difficulty": difficulty,
        "public_test_cases": json.dumps([{"input": "[1, 2]\n3", "output": "6", "testtype": "functional"}]),
        "private_test_cases": _compress([{"input": "[]\n0", "output": "0", "testtype": "functional"},
                                         {"input": "[5]\n-5", "output": "0", "testtype": "functional"}]),
        "metadata": json.dumps({"func_name": "total"}),
    }


@pytest.fixture
def lcb_dir(tmp_path):
    base = tmp_path / "livecodebench"
    base.mkdir()
    (base / "test.jsonl").write_text("\n".join(json.dumps(r) for r in (
        _stdin_row("abc1_a", "easy"), _functional_row("lc100", "medium"), _stdin_row("abc1_b", "hard", False))) + "\n")
    (base / "test2.jsonl").write_text(json.dumps(_stdin_row("abc2_a", "easy")) + "\n")
    return tmp_path


def test_private_tests_are_decoded_and_joined_with_public(lcb_dir):
    task = load_task("livecodebench@release_v1", data_dir=lcb_dir)
    assert task.name == "livecodebench@release_v1"
    assert [p.id for p in task.problems] == ["livecodebench@release_v1/abc1_a", "livecodebench@release_v1/lc100",
                                             "livecodebench@release_v1/abc1_b"]
    stdin, functional, plain = task.problems
    assert stdin.target == {"kind": "stdio", "inputs": ["1 2\n", "3 4\n", "10 -2\n"], "outputs": ["3\n", "7\n", "8\n"]}
    assert plain.target == stdin.target  # private tests stored as plain JSON
    assert functional.target == {"kind": "call", "fn_name": "total", "inputs": [[[1, 2], 3], [[], 0], [[5], -5]],
                                 "outputs": [6, 0, 0]}
    assert [p.difficulty for p in task.problems] == ["easy", "medium", "hard"]
    assert "class Solution" in functional.messages[-1]["content"]
    assert set(task.prompt["templates"]) == {"skyt1/code_stdin", "skyt1/code_call"}
    assert task.dataset["version"] == "release_v1"


def test_versions_and_difficulty_variants(lcb_dir):
    assert len(load_task("livecodebench", data_dir=lcb_dir).problems) == 4  # release_v2 = test + test2
    assert [p.id for p in load_task("livecodebench_easy", data_dir=lcb_dir).problems] == [
        "livecodebench_easy/abc1_a", "livecodebench_easy/abc2_a"]
    assert [p.id for p in load_task("livecodebench@v2", data_dir=lcb_dir).problems] == ["livecodebench@v2/abc2_a"]
    with pytest.raises(DatasetUnavailable, match="test3.jsonl"):
        load_task("livecodebench@release_v3", data_dir=lcb_dir)
    assert lcb.version_files("release_v3") == ["test.jsonl", "test2.jsonl", "test3.jsonl"]
    assert lcb.version_files("v2_v3") == ["test2.jsonl", "test3.jsonl"]
    with pytest.raises(ValueError, match="out of range"):
        lcb.version_files("release_v9")


def test_corrupt_private_tests_fail_clearly(lcb_dir):
    row = _stdin_row("bad", "easy")
    row["private_test_cases"] = "not-base64-nor-json!"
    (lcb_dir / "livecodebench" / "test.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetUnavailable, match="row 0 is malformed.*neither JSON nor base64"):
        load_task("livecodebench@release_v1", data_dir=lcb_dir)


def test_shared_data_livecodebench_has_no_tests(data_dir):
    # ../shared/data/livecodebench holds model outputs only: the error must say where the test files come from.
    with pytest.raises(DatasetUnavailable, match="code_generation_lite"):
        load_task("livecodebench", data_dir=data_dir)


def test_decoded_tests_run_in_the_code_scorer(lcb_dir):
    from skyt1.scoring import score

    stdin, functional, _ = load_task("livecodebench@release_v1", data_dir=lcb_dir).problems
    good_stdin = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    bad_stdin = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"
    good_call = ("```python\nclass Solution:\n    def total(self, nums, k):\n        return sum(nums) + k\n```")
    assert score("code", good_stdin, stdin.target)["correct"] is True
    assert score("code", bad_stdin, stdin.target)["correct"] is False
    verdict = score("code", good_call, functional.target)
    assert verdict["correct"] is True and verdict["total"] == 3
