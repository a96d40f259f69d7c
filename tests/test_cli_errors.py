"""Errors a user can hit end every command with one line (what went wrong, what to do), a non-zero exit and
no traceback; `skyt1 -v` adds the traceback. Each case runs the real `skyt1` executable; the read-only run
directory and the full disk are real too (a bubblewrap mount namespace with a read-only bind or a tiny tmpfs)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from skyt1.store import RunDir

from .curation.conftest import ScriptedEngine, base_recipe
from .curation.test_phases import teacher_reply

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny.yaml"
SKYT1 = str(Path(sys.executable).parent / "skyt1")
BWRAP = shutil.which("bwrap")


def skyt1(*args: str, wrap: list[str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*(wrap or []), SKYT1, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed with a one-line error that contains every needle, and printed no traceback."""
    both = proc.stdout + proc.stderr
    assert proc.returncode not in (0, None), both[-2000:]
    assert "Traceback" not in both, both[-3000:]
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last.startswith("Error: "), proc.stderr[-2000:]
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"
    return last


@pytest.fixture
def teacher():
    from skyt1.engines.server import start_server

    with start_server(ScriptedEngine(teacher_reply)) as server:
        yield server


def _recipe(tmp_path: Path, url: str) -> Path:
    d = base_recipe()
    d["distill"]["engine"] = {"backend": "openai", "model": "scripted", "base_url": url, "concurrency": 2}
    d["distill"]["flush_every"] = 2
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_a_phase_error_under_reproduce_local(tmp_path):
    proc = skyt1("reproduce", "--recipe", str(TINY), "--local", "--run-dir", str(tmp_path / "run"),
                 "--phases", "reformat", "--yes")
    one_line_error(proc, "run/distill is not complete: run `skyt1 distill` with the same --run-dir first")


def test_a_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "run").write_text("not a directory")
    one_line_error(skyt1("label", "--recipe", str(TINY), "--run-dir", str(tmp_path / "run")),
                   f"{tmp_path / 'run'}: is a file, not a directory")
    verbose = skyt1("-v", "label", "--recipe", str(TINY), "--run-dir", str(tmp_path / "run"))
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr  # -v shows where it came from


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed (`make system-deps`)")
def test_a_read_only_run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    proc = skyt1("label", "--recipe", str(TINY), "--run-dir", str(run),
                 wrap=[BWRAP, "--dev-bind", "/", "/", "--ro-bind", str(run), str(run), "--"])
    one_line_error(proc, f"{run}/label/_LOCK.json: cannot write: Read-only file system")


def _full_disk(mount: Path, size: int) -> list[str]:
    """A bubblewrap namespace in which `mount` is a tmpfs of `size` bytes."""
    mount.mkdir()
    return [BWRAP, "--dev-bind", "/", "/", "--size", str(size), "--tmpfs", str(mount), "--"]


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed (`make system-deps`)")
def test_disk_full_in_distill_and_eval(tmp_path, teacher):
    recipe = _recipe(tmp_path, teacher.url)
    disk = tmp_path / "disk"
    proc = skyt1("distill", "--recipe", str(recipe), "--run-dir", str(disk / "run"), wrap=_full_disk(disk, 24 << 10))
    one_line_error(proc, "No space left on device; free some disk space, then re-run the same command (it resumes)")
    assert "/run/distill/" in proc.stderr.splitlines()[-1]  # names the file it could not write

    disk = tmp_path / "disk2"
    proc = skyt1("eval", "--benchmarks", "math500", "--model", "scripted", "--backend", "openai", "--base-url",
                 teacher.url, "--limit", "30", "--n", "2", "--data-dir", str(ROOT.parent / "shared" / "data"),
                 "--output-dir", str(disk / "out"), "-q", wrap=_full_disk(disk, 40 << 10))
    one_line_error(proc, "No space left on device")
    assert "/out/" in proc.stderr.splitlines()[-1]


def test_score_a_non_utf8_row_an_output_in_a_missing_folder_and_the_input_as_output(tmp_path):
    rows = tmp_path / "in.jsonl"
    rows.write_bytes(json.dumps({"id": "a", "response": "\\boxed{2}", "reference": "2"}).encode() + b"\n"
                     + b'{"id": "b", "response": "\xff", "reference": "1"}\n')
    out = tmp_path / "new" / "folder" / "out.jsonl"
    proc = skyt1("score", "--scorer", "math", "--input", str(rows), "--output", str(out))
    one_line_error(proc, "1 invalid row(s) were written with status invalid_input")
    assert f"{rows}:2: invalid row: not UTF-8 text" in proc.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r.get("id"), r["status"]) for r in scored] == [("a", "passed"), (None, "invalid_input")]

    proc = skyt1("score", "--scorer", "math", "--input", str(rows), "--output", str(rows))
    assert proc.returncode == 2 and "is the input file" in proc.stderr and "Traceback" not in proc.stderr
    assert rows.read_bytes().endswith(b'"\xff", "reference": "1"}\n')  # untouched


def test_serve_on_a_busy_port_and_a_missing_model(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.time()
        proc = skyt1("serve", "--model", str(tmp_path / "no-model"), "--port", str(port))
        one_line_error(proc, f"127.0.0.1:{port}: Address already in use", "--port")
        assert time.time() - t0 < 60  # refused before loading anything
    one_line_error(skyt1("serve", "--model", str(tmp_path / "no-model"), "--port", "0"),
                   f"cannot load model '{tmp_path / 'no-model'}'")


@pytest.mark.parametrize("line, what", [("[1, 2]", "a JSON list"), ('{"response": "x"}', "without a string 'id'")])
def test_malformed_lines_in_an_upstream_shard(tmp_path, line, what):
    run = RunDir(tmp_path / "run")
    ph = run.phase("distill")
    ph.backend.write_bytes("distill/records/part-000-x.jsonl", b'{"id": "a#0", "domain": "math"}\n' + line.encode())
    ph.write_manifest(recipe_digest="x", inputs={}, counts={}, started_at=0.0, outputs={"records": "x"})
    one_line_error(skyt1("reformat", "--recipe", str(TINY), "--run-dir", run.uri),
                   "distill/records/part-000-x.jsonl:2: malformed record", what)


def test_a_malformed_line_in_a_benchmark_file_and_in_eval_samples(tmp_path, teacher):
    data = tmp_path / "data" / "math500"
    data.mkdir(parents=True)
    good = (ROOT.parent / "shared" / "data" / "math500" / "test.jsonl").read_text().splitlines()[:3]
    (data / "test.jsonl").write_text("\n".join([*good, "[1, 2]"]) + "\n")
    args = ["eval", "--benchmarks", "math500", "--model", "scripted", "--backend", "openai", "--base-url",
            teacher.url, "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out"), "-q"]
    one_line_error(skyt1(*args), f"{data / 'test.jsonl'}: line 4 is a JSON list, not an object")

    (data / "test.jsonl").write_text("\n".join(good) + "\n")
    assert skyt1(*args).returncode == 0
    shard = next((tmp_path / "out" / "math500").glob("part-*.jsonl"))
    shard.write_text(shard.read_text() + '["not", "a", "sample"]\n')
    one_line_error(skyt1(*args), f"{shard.name}:4: malformed record (a JSON list")


def test_a_done_file_that_is_not_an_object(tmp_path):
    run = RunDir(tmp_path / "run")
    run.phase("distill").backend.write_bytes("distill/_DONE.json", b"[]")
    one_line_error(skyt1("reformat", "--recipe", str(TINY), "--run-dir", run.uri),
                   "distill/_DONE.json: expected a JSON object, found a list")
