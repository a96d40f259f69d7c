"""What filter and eval keep of a verdict (`verdict_of`), and eval's record of the isolation code ran under."""

import json
from concurrent.futures import Future

from skyt1.scoring.registry import verdict_of

from .conftest import fenced, read_jsonl


def _done(value) -> Future:
    future = Future()
    future.set_result(value)
    return future


def test_kept_fields_carry_the_extraction_rule_and_the_isolation():
    math = {"correct": True, "extracted": "4", "status": "passed", "passed": 1, "total": 1, "extraction": "boxed"}
    code = {"correct": False, "extracted": "x", "status": "timeout", "passed": 0, "total": 3, "isolation": "bwrap",
            "process_limit": "cgroup"}
    assert verdict_of(_done(math)) == math
    assert verdict_of(_done(code)) == {k: v for k, v in code.items() if k != "process_limit"}
    failed = Future()
    failed.set_exception(RuntimeError("boom"))
    assert verdict_of(failed)["status"].startswith("scoring_error: RuntimeError")


def test_eval_samples_and_summary_record_the_isolation(data, tmp_path):
    from skyt1.data.benchmarks import load_task
    from skyt1.evaluation.runner import Scoring, evaluate
    from skyt1.store import output_dir

    task = load_task("humaneval", data_dir=data, limit=2)
    rows = read_jsonl(data / "humaneval" / "HumanEval.jsonl")[:2]  # the task's two problems, in order
    folder = tmp_path / "humaneval"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"benchmark": "humaneval"}))
    samples = [{"id": f"{p.id}#0", "benchmark": "humaneval", "problem_id": p.id, "sample_index": 0,
                "response": fenced(row["prompt"] + row["canonical_solution"]), "finish_reason": "stop"}
               for p, row in zip(task.problems, rows, strict=True)]
    with output_dir(tmp_path).writer("humaneval") as w:  # the samples as eval writes them: shards in the store
        w.write_many(samples)
    summary = evaluate(None, [task], output_dir=tmp_path, rescore=True, scoring=Scoring(workers=1), progress=False)
    records = read_jsonl(folder / "samples.jsonl")
    assert [(r["correct"], r["isolation"]) for r in records] == [(True, "bwrap")] * 2
    assert summary["benchmarks"]["humaneval"]["isolation"] == ["bwrap"]
    assert "Code ran under isolation: bwrap." in (tmp_path / "summary.md").read_text()
