import json

from click.testing import CliRunner

from skyt1.cli import cli

from .conftest import fenced


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_math_with_bad_rows(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(src, [
        json.dumps({"id": "a", "response": "so \\boxed{025}", "reference": "25"}),
        "{not json",
        json.dumps({"id": "c", "response": "no reference"}),
        json.dumps({"id": "d", "response": "I think 25", "reference": "25"}),
        json.dumps({"id": "e", "response": "\\boxed{50}", "reference": "0.5"}),
    ])
    result = CliRunner().invoke(cli, ["score", "--scorer", "math", "--input", str(src), "--output", str(out),
                                      "--workers", "2"])
    assert result.exit_code != 0
    assert "in.jsonl:2: invalid row: malformed JSON" in result.output
    assert "in.jsonl:3: invalid row: missing field(s): reference" in result.output
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["passed", "invalid_input", "invalid_input", "no_answer", "wrong_answer"]
    assert rows[0] == {"id": "a", "response": "so \\boxed{025}", "reference": "25", "correct": True,
                       "extracted": "025", "status": "passed", "passed": 1, "total": 1}
    assert rows[1]["line"] == 2 and rows[2]["id"] == "c"


def test_score_code_and_choice(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    tests = {"kind": "stdio", "inputs": ["1 2\n"], "outputs": ["3\n"]}
    _write(src, [json.dumps({"id": 1, "response": fenced("print(sum(map(int, input().split())))"), "tests": tests}),
                 json.dumps({"id": 2, "response": fenced("print(4)"), "tests": tests})])
    result = CliRunner().invoke(cli, ["score", "--scorer", "code", "--input", str(src), "--output", str(out),
                                      "--timeout", "3", "--memory-mb", "512"])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert [(r["correct"], r["status"], r["isolation"]) for r in rows] == [
        (True, "passed", "bwrap"), (False, "wrong_answer", "bwrap")]
    _write(src, [json.dumps({"id": 1, "response": "The answer is (I).", "reference": "I", "n_options": 10})])
    result = CliRunner().invoke(cli, ["score", "--scorer", "choice", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 0 and _rows(out)[0]["correct"] is True
