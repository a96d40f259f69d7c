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
                       "extracted": "025", "status": "passed", "passed": 1, "total": 1, "extraction": "boxed"}
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


def test_score_code_stops_at_the_first_failure_unless_full_run(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    tests = {"kind": "stdio", "inputs": ["1\n", "2\n", "3\n"], "outputs": ["1\n", "4\n", "3\n"]}
    _write(src, [json.dumps({"id": 1, "response": fenced("print(input())"), "tests": tests})])
    result = CliRunner().invoke(cli, ["score", "--scorer", "code", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 0 and "code isolation: bwrap" in result.output
    assert [(r["passed"], r["total"], r["isolation"]) for r in _rows(out)] == [(1, 3, "bwrap")]
    result = CliRunner().invoke(cli, ["score", "--scorer", "code", "--input", str(src), "--output", str(out),
                                      "--full-run"])
    assert result.exit_code == 0 and [(r["passed"], r["total"]) for r in _rows(out)] == [(2, 3)]


def test_score_math_reads_prose_only_from_finished_rows(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(src, [json.dumps({"id": i, "response": "so she has 12 apples.", "reference": "12", "finish_reason": fr})
                 for i, fr in enumerate(["stop", "length"])])
    assert CliRunner().invoke(cli, ["score", "--scorer", "math", "--input", str(src), "--output", str(out)]).exit_code == 0
    assert [(r["status"], r.get("extraction")) for r in _rows(out)] == [("passed", "last_expression"),
                                                                       ("no_answer", None)]


def test_score_code_on_a_cloud_node_without_bwrap_needs_the_flag(tmp_path, monkeypatch):
    from skyt1.scoring.code import sandbox

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("SKYPILOT_TASK_ID", "sky-managed-2026_x_1")
    monkeypatch.setattr(sandbox, "_warned", True)
    sandbox.bwrap_available.cache_clear()
    try:
        src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        tests = {"kind": "stdio", "inputs": ["1\n"], "outputs": ["1\n"]}
        _write(src, [json.dumps({"id": 1, "response": fenced("print(input())"), "tests": tests})])
        args = ["score", "--scorer", "code", "--input", str(src), "--output", str(out)]
        refused = CliRunner().invoke(cli, args)
        assert refused.exit_code != 0 and "--allow-unsandboxed" in refused.output and not out.exists()
        assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1
        allowed = CliRunner().invoke(cli, [*args, "--allow-unsandboxed"])
        assert allowed.exit_code == 0 and "code isolation: rlimits" in allowed.output
        assert _rows(out)[0]["isolation"] == "rlimits" and _rows(out)[0]["correct"]
    finally:
        sandbox.bwrap_available.cache_clear()
