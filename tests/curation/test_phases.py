"""Curation phases end to end on loopback servers and the tiny model (offline)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from skyt1.curation import assemble, distill, label, reformat
from skyt1.curation.label import parse_difficulty
from skyt1.data.demo import code_problems, math_problems
from skyt1.data.sources import load_source
from skyt1.engines.server import FaultPlan
from skyt1.protocol import PhaseError
from skyt1.store import RunDir

from .conftest import DATA, SECRET, base_recipe, drop_answer_rewrite, good_rewrite


def grep_secret(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and SECRET in p.read_text(errors="ignore")]


def teacher_reply(messages: list[dict]) -> str:
    """A teacher that answers demo problems with their worked solution (math) or reference code."""
    q = messages[-1]["content"]
    for row in math_problems(12) + code_problems(4):
        if row["question"] in q:
            return "Let me think about this.\n\n" + row["solution"]
    return "I do not know."


def openai_teacher(d: dict, url: str) -> dict:
    d["distill"]["engine"] = {"backend": "openai", "model": "scripted", "base_url": url, "concurrency": 4,
                              "max_retries": 3}
    return d


# ---------------------------------------------------------------------------------------------- label

def test_parse_difficulty():
    assert parse_difficulty("reasoning... [[7]]") == 7
    assert parse_difficulty("first [[2]] then [[6.5]]") == 6.5
    assert parse_difficulty("rating: [4]") == 4
    assert parse_difficulty("[[11]]") is None
    assert parse_difficulty("no rating here") is None


def test_label_rotates_keys_survives_429_500_and_counts_cost(tmp_path, serve, write_recipe):
    keys = [SECRET, SECRET + "B", SECRET + "C"]
    replies = iter(["hmm [[3]]", "maybe [5]", "I cannot say"] * 10)
    server = serve(lambda m: next(replies), faults=FaultPlan(fail_first=3, statuses=(429, 500)), api_keys=keys)
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")
    d = base_recipe(api_url=server.url)
    d["label"]["api"]["keys_file"] = str(tmp_path / "keys.txt")
    d["label"]["api"]["concurrency"] = 1
    recipe, _ = write_recipe(d)
    run = RunDir(tmp_path / "run")
    m = label.run(recipe, run)
    assert m["counts"]["in"] == m["counts"]["out"] == 12
    assert m["counts"]["labeled"] + m["counts"]["unlabeled"] == 12 and m["counts"]["unlabeled"] >= 1
    assert m["cost_usd"] > 0 and m["counts"]["prompt_tokens"] > 0
    statuses = [e["status"] for e in server.log if e["path"].endswith("/chat/completions")]
    assert statuses.count(429) + statuses.count(500) == 3 and statuses.count(200) == 12
    used = [e["authorization"] for e in server.log if e["path"].endswith("/chat/completions")]
    assert {u.removeprefix("Bearer ") for u in used} == set(keys)  # every key really used
    assert label.run(recipe, run) == m  # complete: skipped
    assert grep_secret(tmp_path / "run") == []


def test_label_failures_stay_pending_and_are_retried(tmp_path, serve, write_recipe):
    server = serve(lambda m: "[[2]]", faults=FaultPlan(fail_matching="Compute", statuses=(500,)))
    d = base_recipe(api_url=server.url)
    d["label"]["api"]["max_retries"] = 1
    recipe, _ = write_recipe(d)
    run = RunDir(tmp_path / "run")
    m = label.run(recipe, run)
    assert m["complete"] is False and m["counts"]["rejected"]["failed"] == 4  # "Compute" in 4 questions or solutions
    assert run.phase("label").manifest() is None and run.phase("label").count("failed") == 4
    ok = serve(lambda m: "[[2]]")
    recipe2, _ = write_recipe(base_recipe(api_url=ok.url), "r2.yaml")
    m2 = label.run(recipe2, run)
    assert m2["counts"]["out"] == 12 and run.phase("label").manifest() is not None


def test_label_from_published(tmp_path, write_recipe):
    rows = [{"problem": p["question"], "gpt_difficulty_parsed": 3} for p in math_problems(12)[:10]]
    (tmp_path / "pub.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    d = base_recipe()
    d["label"]["published_local_path"] = str(tmp_path / "pub.jsonl")
    recipe, _ = write_recipe(d)
    m = label.run(recipe, RunDir(tmp_path / "run"), from_published=True)
    assert m["counts"]["labeled"] == 10 and m["counts"]["unlabeled"] == 2 and m["cost_usd"] == 0


# --------------------------------------------------------------------------------------------- sources

def test_apps_source_and_malformed_rows_quarantined(tmp_path, write_recipe):
    bad = tmp_path / "bad.jsonl"
    good = json.loads((DATA / "apps_coderl/apps_coderl_train5.derived.jsonl").read_text().splitlines()[0])
    bad.write_text("\n".join(json.dumps(r) for r in [
        good | {"problem_id": 900, "input_output": "{not json"},
        good | {"problem_id": 901, "question": ""},
        good | {"problem_id": 902, "input_output": json.dumps({"inputs": ["1"], "outputs": []})},
    ]))
    d = base_recipe()
    d["sources"] += [
        {"name": "apps", "dataset": "apps", "domain": "code", "local_path": str(DATA / "apps_coderl/apps_coderl_train5.derived.jsonl")},
        {"name": "apps_bad", "dataset": "apps", "domain": "code", "local_path": str(bad)},
    ]
    recipe, _ = write_recipe(d)
    loaded = load_source(recipe, "apps")
    kinds = {p["id"]: p["tests"]["kind"] for p in loaded.problems}
    assert kinds == {"apps/1": "stdio", "apps/111": "stdio", "apps/2287": "stdio", "apps/2404": "call", "apps/4184": "call"}
    bad_loaded = load_source(recipe, "apps_bad")
    assert not bad_loaded.problems
    assert [q["id"] for q in bad_loaded.quarantine] == ["apps_bad/900", "apps_bad/901", "apps_bad/902"]
    assert all(q["reason"] for q in bad_loaded.quarantine)


def test_demo_problems_are_deterministic_and_answers_boxed():
    assert math_problems(30, seed=3) == math_problems(30, seed=3) != math_problems(30, seed=4)
    for row in math_problems(30):
        assert row["solution"].endswith(f"\\boxed{{{row['answer']}}}$.")


# --------------------------------------------------------------------------------------------- distill

def test_distill_shards_split_without_overlap(tmp_path, serve, write_recipe):
    server = serve(teacher_reply)
    recipe, _ = write_recipe(openai_teacher(base_recipe(), server.url))
    run = RunDir(tmp_path / "run")
    first = distill.run(recipe, run, shard="0/2")
    assert first["complete"] is False
    ids_first = run.phase("distill").ids()
    second = distill.run(recipe, run, shard="1/2")
    ids_all = run.phase("distill").ids()
    assert second["counts"]["out"] == 32 and len(ids_all) == 32 and 0 < len(ids_first) < 32
    whole = RunDir(tmp_path / "whole")
    distill.run(recipe, whole)
    assert [r for r in run.phase("distill").records()] == [r for r in whole.phase("distill").records()]
    with pytest.raises(PhaseError, match="I/N"):
        distill.run(recipe, run, shard="3")


def _cli(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "skyt1"), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_when_shards(proc: subprocess.Popen, stream_dir: Path, at_least: int = 1, timeout: float = 120) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if len(list(stream_dir.glob("part-*.ids"))) >= at_least:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


@pytest.mark.parametrize("teacher", ["openai", pytest.param("hf", marks=pytest.mark.slow)])
def test_distill_sigkill_then_resume_equals_uninterrupted(tmp_path, teacher, request, serve, write_recipe):
    if teacher == "hf":  # the tiny model on transformers, as the tiny recipe runs it
        d = base_recipe(request.getfixturevalue("tiny_model"))
        d["distill"]["sampling"]["max_tokens"] = 32
        d["distill"]["engine"]["batch_size"] = 4
    else:  # an OpenAI-compatible teacher server (as vLLM serves QwQ), answering slowly
        server = serve(teacher_reply, faults=FaultPlan(slow_rate=1.0, delay_s=0.05))
        d = openai_teacher(base_recipe(), server.url)
        d["distill"]["engine"]["concurrency"] = 2
    d["sources"][0]["count"] = 30
    _, path = write_recipe(d)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = ["distill", "--recipe", str(path), "--run-dir"]
    killed = _kill_when_shards(_cli(args + [str(tmp_path / "a")], env), tmp_path / "a/distill/records")
    assert killed, "the phase finished before it could be killed; make the job bigger"
    partial = RunDir(tmp_path / "a").phase("distill").ids()
    assert 0 < len(partial) < 68
    for target in ("a", "b"):
        p = _cli(args + [str(tmp_path / target)], env)
        assert p.wait() == 0, p.stderr.read()
    a, b = RunDir(tmp_path / "a").phase("distill"), RunDir(tmp_path / "b").phase("distill")
    ra, rb = list(a.records()), list(b.records())
    assert [r["id"] for r in ra] == [r["id"] for r in rb] and len(ra) == 68
    sidecar_ids = [x for f in (tmp_path / "a/distill/records").glob("*.ids") for x in f.read_text().split("\n")
                   if not x.startswith("#")]
    assert len(sidecar_ids) == len(set(sidecar_ids)) == 68  # nothing written twice
    assert ra == rb


# -------------------------------------------------------------------------------------------- reformat

def _distilled(tmp_path, serve, write_recipe, reformat_reply, faults=None, **reformat_opts):
    teacher = serve(teacher_reply)
    rewriter = serve(reformat_reply, faults=faults)
    d = openai_teacher(base_recipe(api_url=rewriter.url), teacher.url)
    d["reformat"].update(reformat_opts)
    recipe, path = write_recipe(d)
    run = RunDir(tmp_path / "run")
    distill.run(recipe, run)
    return recipe, path, run, rewriter


def test_reformat_llm_validates_and_rejects_dropped_answers(tmp_path, serve, write_recipe):
    def reply(messages):  # drop the final answer for "Solve" problems, rewrite the others faithfully
        return drop_answer_rewrite(messages) if "Solve for" in messages[-1]["content"] else good_rewrite(messages)

    recipe, _, run, server = _distilled(tmp_path, serve, write_recipe, reply,
                                        faults=FaultPlan(fail_first=2, statuses=(429, 500)))
    m = reformat.run(recipe, run)
    ph = run.phase("reformat")
    rejected = list(ph.records("rejected"))
    assert m["counts"]["out"] + len(rejected) == 32
    assert {r["question"].startswith("Solve for") for r in rejected} == {True} and len(rejected) == 4
    assert all("final answer missing" in r["reason"] for r in rejected)
    assert all(r["usage"]["attempts"] == 2 for r in rejected)  # retried up to max_attempts
    for r in ph.records():
        assert r["reformat_method"] == "llm" and r["trace"].index("<|begin_of_thought|>") == 0
    assert m["cost_usd"] > 0
    assert grep_secret(tmp_path / "run") == []


def test_reformat_api_failures_are_retried_by_the_next_run(tmp_path, serve, write_recipe):
    recipe, _, run, _ = _distilled(tmp_path, serve, write_recipe, good_rewrite,
                                   faults=FaultPlan(fail_matching="Solve for", statuses=(500,)))
    recipe.reformat.api.max_retries = 1
    partial = reformat.run(recipe, run)
    ph = run.phase("reformat")
    assert partial["complete"] is False and ph.manifest() is None  # downstream phases refuse to start
    failed = ph.ids("failed")
    assert len(failed) == 4 and not failed & ph.ids("rejected")  # an outage is not a verdict on the trace
    recipe.reformat.api.base_url = serve(good_rewrite).url  # the API is back
    m = reformat.run(recipe, run)
    assert m["counts"]["out"] == 32 and m["counts"]["rejected"] == {} and failed <= ph.ids("records")


def test_reformat_counts_only_model_answers_as_attempts(tmp_path, serve, write_recipe):
    """An API failure is not an attempt: against a server that fails some requests, every trace still gets
    `max_attempts` real rewrites before it is rejected, in this run or the next."""
    recipe, _, run, server = _distilled(tmp_path, serve, write_recipe, lambda m: "No sections, sorry.",
                                        faults=FaultPlan(fail_first=6, statuses=(500,)), max_attempts=2)
    recipe.reformat.api.max_retries = 0
    recipe.reformat.api.concurrency = 1
    first = reformat.run(recipe, run)
    assert first["complete"] is False  # the traces whose request failed wait for the next run
    reformat.run(recipe, run)
    ph = run.phase("reformat")
    rejected = list(ph.records("rejected"))
    assert len(rejected) == 32 and all(r["answers"] == 2 for r in rejected)
    answered: dict[str, int] = {}
    for entry in server.log:
        if entry["path"].endswith("/chat/completions") and entry["status"] == 200:
            question = entry["body"]["messages"][-1]["content"].split("Problem:\n", 1)[1].split("\n\nWorked")[0]
            answered[question] = answered.get(question, 0) + 1
    assert sorted(set(answered.values())) == [4]  # each question has 2 samples, each got 2 real rewrites


def test_reformat_rule_and_as_given(tmp_path, serve, write_recipe):
    think = serve(lambda m: "<think>\nwork it out\n</think>\nThe answer is $\\boxed{7}$.")
    d = openai_teacher(base_recipe(), think.url)
    d["reformat"].update({"mode": "auto", "as_given_sources": ["demo_math", "demo_code"]})
    recipe, _ = write_recipe(d)
    run = RunDir(tmp_path / "run")
    distill.run(recipe, run)
    m = reformat.run(recipe, run)
    assert m["counts"]["methods"] == {"rule": 24, "as_given": 16}  # demo_code answers have no code block
    assert m["counts"]["rejected"] == {"code block count": 8}
    given = [r for r in run.phase("reformat").records() if r["reformat_method"] == "as_given"]
    assert all(r["id"].endswith("#given") for r in given) and m["cost_usd"] == 0


def test_reformat_sigkill_then_resume_equals_uninterrupted(tmp_path, serve, write_recipe):
    recipe, path, run, server = _distilled(tmp_path, serve, write_recipe, good_rewrite,
                                           faults=FaultPlan(slow_rate=1.0, delay_s=0.15))
    d = yaml.safe_load(path.read_text())
    d["reformat"]["api"]["concurrency"] = 1
    path.write_text(yaml.safe_dump(d))
    import shutil

    shutil.copytree(tmp_path / "run", tmp_path / "other")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # reformat flushes every 32 records; kill once the first shard of rejected/records exists is too late,
    # so watch the distinct-problem progress: kill after ~1/3 of the requests reached the server.
    proc = _cli(["reformat", "--recipe", str(path), "--run-dir", str(tmp_path / "run")], env)
    while proc.poll() is None and len(server.log) < 10:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run.phase("reformat").manifest() is None
    for target in ("run", "other"):
        p = _cli(["reformat", "--recipe", str(path), "--run-dir", str(tmp_path / target)], env)
        assert p.wait() == 0, p.stderr.read()
    a, b = RunDir(tmp_path / "run").phase("reformat"), RunDir(tmp_path / "other").phase("reformat")
    strip = lambda rs: [{k: v for k, v in r.items() if k != "usage"} for r in rs]  # noqa: E731
    assert strip(a.records()) == strip(b.records()) and len(list(a.records())) == 32


# -------------------------------------------------------------------------------------------- assemble

def _filter_stub(run: RunDir, rows: list[dict]) -> None:
    """Write `rows` as a complete filter phase (assemble's input) without scoring them."""
    ph = run.phase("filter")
    with ph.writer("records") as w:
        w.write_many(rows)
    ph.write_manifest(recipe_digest="x", inputs={}, counts={}, started_at=time.time())


def _row(pid: str, question: str, domain: str = "math") -> dict:
    return {"id": f"{pid}#0", "problem_id": pid, "domain": domain, "question": question, "reference": "1",
            "tests": None, "starter_code": None, "reformat_method": "llm",
            "trace": "<|begin_of_thought|>\n\nt\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n"
                     "$\\boxed{1}$\n\n<|end_of_solution|>"}


def test_assemble_dedups_decontaminates_and_writes_llamafactory_files(tmp_path, write_recipe):
    math500 = json.loads((DATA / "math500/test.jsonl").read_text().splitlines()[17])["problem"]
    base_q = ("A farmer has a rectangular field whose length is three times its width and whose perimeter is "
              "one hundred and twenty meters. What is the area of the field in square meters?")
    rows = [_row("s/planted", "Here is a nice problem. " + math500),
            _row("s/a", base_q), _row("s/b", base_q.upper() + "  "),  # exact duplicate after normalisation
            _row("s/c", base_q.replace("square meters?", "square meters ?!") + " Explain."),  # near duplicate
            _row("s/d", "Find the sum of all positive divisors of 360 that are perfect squares, then add seven.")]
    rows += [_row(f"s/e{i}", f"Compute the product of {i} and {i + 3} and then subtract the number {i}.")
             for i in range(6)]
    rows.append(_row("c/1", "Write a program that reads two integers and prints their sum.", "code"))
    d = base_recipe()
    d["assemble"]["mixture"] = {"math": 5, "code": 3, "science": 0}
    recipe, _ = write_recipe(d)
    run = RunDir(tmp_path / "run")
    _filter_stub(run, rows)
    m = assemble.run(recipe, run)
    ph = run.phase("assemble")
    removed = {r["problem_id"]: r for r in ph.records("removed")}
    assert removed["s/planted"]["reason"] == "benchmark contamination"
    assert removed["s/planted"]["benchmark"] == "math500" and len(removed["s/planted"]["ngram"].split()) == 8
    assert removed["s/b"]["reason"] == "exact duplicate" and removed["s/b"]["duplicate_of"] == "s/a"
    assert removed["s/c"]["reason"] == "near duplicate" and removed["s/c"]["duplicate_of"] == "s/a"
    assert set(removed) == {"s/planted", "s/b", "s/c"}
    train = json.loads(ph.read_text("train.json"))
    stats = ph.read_json("stats.json")
    assert len(train) == 6 and stats["mixture"]["math"]["selected"] == 5
    assert stats["mixture"]["code"] == {"target": 3, "available": 1, "selected": 1, "shortfall": 2}
    assert stats["tokens"]["method"].startswith("estimate")
    from skyt1.data.prompts import SKYT1_SYSTEM_PROMPT

    row = train[0]
    assert row["system"] == SKYT1_SYSTEM_PROMPT and [t["from"] for t in row["conversations"]] == ["user", "assistant"]
    maths = [r for r in train if "Write a program" not in r["conversations"][0]["value"]]
    assert all(r["conversations"][0]["value"].startswith("Return your final response within \\boxed{}. ")
               for r in maths)
    info = ph.read_json("dataset_info.json")[recipe.assemble.dataset_name]
    assert info["formatting"] == "sharegpt" and info["columns"] == {"messages": "conversations", "system": "system"}
    assert m["counts"]["out"] == 6
    # deterministic: same inputs, same file
    first = ph.read_text("train.json")
    assemble.run(recipe, run, force=True)
    assert ph.read_text("train.json") == first


def test_assemble_reports_unavailable_benchmarks(tmp_path, write_recipe):
    d = base_recipe()
    d["assemble"]["decontam_benchmarks"] = ["math500", "gpqa_diamond", "livecodebench"]
    recipe, _ = write_recipe(d)
    run = RunDir(tmp_path / "run")
    _filter_stub(run, [_row("s/a", "What is one plus one?")])
    assemble.run(recipe, run)
    stats = run.phase("assemble").read_json("stats.json")
    assert "gpqa_diamond" in stats["decontamination"]["skipped"]
    assert stats["decontamination"]["benchmarks"]["livecodebench"] > 1000


# ---------------------------------------------------------------------------------------------- filter

def _reformat_stub(run: RunDir, rows: list[dict]) -> None:
    ph = run.phase("reformat")
    with ph.writer("records") as w:
        w.write_many(rows)
    ph.write_manifest(recipe_digest="x", inputs={}, counts={}, started_at=time.time())


def _trace(solution: str) -> str:
    return ("<|begin_of_thought|>\n\nthinking\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n"
            f"{solution}\n\n<|end_of_solution|>")


def test_filter_rejects_crashing_and_timing_out_code_and_wrong_math(tmp_path, write_recipe):
    from skyt1.curation import filter as filter_phase

    tests = {"kind": "stdio", "inputs": ["2 3\n", "10 5\n"], "outputs": ["5\n", "15\n"]}
    code = {"good": "a, b = map(int, input().split())\nprint(a + b)",
            "crash": "a, b = map(int, input().split())\nraise SystemExit(print(a / 0))",
            "loop": "while True:\n    pass", "wrong": "print(5)"}
    rows = [{"id": f"c/1#{i}", "problem_id": "c/1", "sample_index": i, "domain": "code", "question": "add",
             "tests": tests, "reference": None, "reformat_method": "llm",
             "trace": _trace(f"```python\n{src}\n```")} for i, src in enumerate(code.values())]
    rows += [{"id": f"m/1#{i}", "problem_id": "m/1", "sample_index": i, "domain": "math", "question": "q",
              "reference": "\\frac{1}{2}", "tests": None, "reformat_method": "llm",
              "trace": _trace(f"So $\\boxed{{{ans}}}$")} for i, ans in enumerate(["0.5", "1/2", "50", "2"])]
    rows.append({"id": "m/2#0", "problem_id": "m/2", "sample_index": 0, "domain": "math", "question": "q",
                 "reference": None, "tests": None, "trace": _trace("x")})
    d = base_recipe()
    d["filter"].update({"code_timeout_s": 1, "max_correct_per_problem": 1})
    recipe, _ = write_recipe(d)
    run = RunDir(tmp_path / "run")
    _reformat_stub(run, rows)
    m = filter_phase.run(recipe, run)
    ph = run.phase("filter")
    kept = {r["id"] for r in ph.records()}
    assert kept == {"c/1#0", "m/1#0"}
    rejected = {r["id"]: r["reason"] for r in ph.records("rejected")}
    assert rejected["m/1#1"] == "over max_correct_per_problem=1"  # 1/2 is also correct
    for sid in ("c/1#1", "c/1#2", "c/1#3", "m/1#2", "m/1#3"):
        assert sid in rejected and "over max" not in rejected[sid]
    assert "timeout" in rejected["c/1#2"].lower()
    assert [q["id"] for q in ph.records("quarantine")] == ["m/2#0"]
    assert m["counts"]["in"] == 9 and m["counts"]["out"] == 2
    assert m["counts"]["isolation"] == {"bwrap": 4} and m["counts"]["extraction"] == {"boxed": 1}
    assert {r["verdict"].get("isolation") for r in ph.records("verdicts") if r["domain"] == "code"} == {"bwrap"}
