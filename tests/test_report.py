"""The run report, on a synthetic run directory written with the store API (no other phase needed),
checked as text and as rendered by a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from skyt1 import report
from skyt1.cli import cli
from skyt1.recipe import load_recipe
from skyt1.store import RunDir

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

LOSS = [(1, 2.75), (2, 2.5), (3, 2.0), (4, 1.625), (5, 1.25), (6, 1.0)]


def _manifest(run: RunDir, phase: str, counts: dict, config: dict, wall: float, cost: float | None = 0.0) -> None:
    run.phase(phase).write_manifest(recipe_digest=f"d-{phase}", inputs={}, counts=counts,
                                    started_at=time.time() - wall, config=config, cost_usd=cost)


@pytest.fixture
def recipe(tmp_path):
    # A base model that is not a local directory, whatever demo runs this checkout holds: lengths are words.
    return load_recipe(ROOT / "recipes" / "tiny.yaml", {"train.base_model": str(tmp_path / "no-such-model")})


@pytest.fixture
def synthetic_run(tmp_path, recipe) -> RunDir:
    run = RunDir(tmp_path / "run")
    api = recipe.label.api.model_dump(mode="json")
    _manifest(run, "label", {"in": 24, "labeled": 20, "unlabeled": 4}, {"api": api}, 3.0)

    with run.phase("distill").writer("records", flush_every=5) as w:
        for i in range(30):
            w.write({"id": f"demo_math/{i // 2}#{i % 2}", "completion_tokens": 10 + 3 * i, "response": "x"})
    _manifest(run, "distill", {"in": 15, "out": 30},
              {"engine": recipe.distill.engine.model_dump(mode="json")}, 42.0)

    with run.phase("reformat").writer("rejected") as w:
        w.write({"id": "demo_math/3#0", "reason": "no_solution_section"})
    _manifest(run, "reformat", {"in": 30, "out": 29, "rejected": 1},
              {"api": recipe.reformat.api.model_dump(mode="json")}, 5.0)

    with run.phase("filter").writer("rejected") as w:
        for i in range(7):
            w.write({"id": f"demo_math/{i}#1", "verdict": {"status": "wrong_answer"}})
        for i in range(3):
            w.write({"id": f"demo_code/{i}#0", "verdict": {"status": "timeout"}})
    _manifest(run, "filter", {"in": 29, "out": 19, "rejected": 10}, {}, 11.0)

    with run.phase("assemble").writer("removed") as w:
        w.write({"id": "demo_math/9#0", "reason": "decontaminated", "benchmark": "math500"})
    run.phase("assemble").write_text("train.json", json.dumps([
        {"system": "sys", "conversations": [{"from": "user", "value": "q " * n}, {"from": "assistant", "value": "a"}]}
        for n in (40, 55, 61, 70, 90, 120)]))
    run.phase("assemble").write_json("stats.json", {"tokens": {"count": 6, "cutoff_len": 64, "over_cutoff": 2}})
    _manifest(run, "assemble", {"rows": 18, "removed": {"decontaminated": 1, "near_duplicate": 2}}, {}, 0.5)

    run.phase("train").write_text("loss.jsonl", "".join(
        json.dumps({"step": s, "loss": loss, "lr": 1e-3}) + "\n" for s, loss in LOSS) + '{"step": 7, "lo')
    _manifest(run, "train", {"steps": 6, "rows": 18},
              recipe.train.model_dump(mode="json"), 95.0, cost=1.5)

    # The layout `skyt1 eval` writes: fractions, per-benchmark "scores".
    run.phase("eval").write_json("summary.json", {
        "complete": True,
        "benchmarks": {
            "aime24": {"complete": True, "missing_samples": 0, "scores": {
                "problems": 8, "n": 2, "accuracy": 0.125, "stderr": 0.0625, "pass_at_k": {"pass@1": 0.125}}},
            "math500": {"complete": True, "missing_samples": 0, "scores": {
                "problems": 8, "n": 2, "accuracy": 0.4375, "stderr": 0.09, "pass_at_k": {"pass@2": 0.5}}},
        },
        "skipped": {"gpqa_diamond": "gated: accept its terms and set HF_TOKEN"},
        "configs": {"aime24": {"engine": {"backend": "hf", "model": "trained"}}},
    })
    _manifest(run, "eval", {"samples": 32}, {"engine": {"backend": "hf", "model": "trained"}}, 30.0)
    return run


def test_markdown_has_every_section_and_number(synthetic_run, recipe):
    manifest = report.run(recipe, synthetic_run)
    assert manifest["counts"]["phases_complete"] == 7 and manifest["counts"]["phases_not_run"] == 0
    md = synthetic_run.phase("report").read_text("report.md")
    for heading in ("## Local stand-ins", "## Phases", "## Rejections by reason", "## Token lengths",
                    "## Training loss", "## Evaluation", "## Configuration"):
        assert heading in md
    assert "| distill | complete | 15 | 30 | - | - | 42.0 s | $0.00 |" in md
    assert "| filter | complete | 29 | 19 | 10 | - | 11.0 s | $0.00 |" in md
    assert "| assemble | complete | - | - | 3 | rows=18 | 0.5 s | $0.00 |" in md
    assert "| train | complete | - | - | - | rows=18, steps=6 | 95.0 s | $1.50 |" in md
    assert "- gpqa_diamond: skipped (gated: accept its terms and set HF_TOKEN)" in md
    assert "2 of 6 training rows are longer than cutoff_len 64 and are truncated in training." in md
    # Rejections: filter counted from its stream, assemble from its manifest's breakdown.
    assert "| filter | wrong_answer | 7 |" in md and "| filter | timeout | 3 |" in md
    assert "| assemble | near_duplicate | 2 |" in md
    assert "| reformat | no_solution_section | 1 |" in md
    # The half-written last loss line is skipped, the rest is the curve.
    assert "6 logged steps; loss 2.7500 at step 1 -> 1.0000 at step 6." in md
    assert "| aime24 | 12.5 | 6.2 | 2 | 8 |" in md and "| math500 | 43.8 | 9.0 | 2 | 8 |" in md
    assert "teacher traces (distill, completion tokens): 30 rows, min 10" in md
    # Counted like assemble counts (whitespace words: the synthetic base model is not a local directory).
    assert "training rows (assemble, whitespace words): 6 rows, min 42," in md
    assert f"digest {recipe.digest()}" in md and '"name": "tiny"' in md
    # Honest about the stand-ins, taken from the recorded configuration.
    assert "http://127.0.0.1:8765/v1" in md and "stood in for the OpenAI API" in md
    assert "stood in for vLLM" in md and "training without DeepSpeed" in md
    assert "stood in for NuminaMath" in md


def test_report_phase_skips_until_an_upstream_manifest_changes(synthetic_run, recipe):
    first = report.run(recipe, synthetic_run)
    assert report.run(recipe, synthetic_run)["finished_at"] == first["finished_at"]
    _manifest(synthetic_run, "eval", {"samples": 64}, {}, 31.0)
    again = report.run(recipe, synthetic_run)
    assert again["finished_at"] != first["finished_at"]
    assert "samples=64" in synthetic_run.phase("report").read_text("report.md")
    assert report.run(recipe, synthetic_run, force=True)["finished_at"] != again["finished_at"]


def test_missing_phases_are_not_run_and_partial_ones_incomplete(tmp_path, recipe):
    run = RunDir(tmp_path / "partial")
    _manifest(run, "label", {"in": 3}, {}, 1.0)
    with run.phase("distill").writer("records") as w:
        w.write({"id": "a#0", "completion_tokens": 5})
        w.write({"id": "a#1"})
    # A trainer killed mid-run: JSONL logs that are not record streams (no ids) must not break the report.
    run.phase("train").write_text("checkpoints/trainer_log.jsonl", '{"current_steps": 1, "loss": 2.0}\n')
    manifest = report.run(recipe, run)
    assert manifest["counts"] == {"phases_complete": 1, "phases_incomplete": 2, "phases_not_run": 4,
                                  "standins": manifest["counts"]["standins"]}
    md = run.phase("report").read_text("report.md")
    assert "| distill | incomplete | - | 2 so far | - | no manifest yet |" in md
    assert "| train | incomplete | - | 0 so far | - | no manifest yet |" in md
    for phase in ("reformat", "filter", "assemble", "eval"):
        assert f"| {phase} | not run | - | - | - | - | - | - |" in md
    assert "_Training not run._" in md and "_Evaluation not run._" in md


def test_cli_on_a_mistyped_path_an_empty_run_and_a_saved_recipe(tmp_path, synthetic_run):
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "no such run directory" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "nothing").exists()  # a typo creates nothing

    empty = RunDir(tmp_path / "empty")
    empty.phase("label").write_json("_STARTED.json", {})
    res = CliRunner().invoke(cli, ["report", empty.uri])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "empty" / "report" / "report.md").read_text()
    assert "Nothing has run yet" in md and md.count("| not run |") == 6

    res = CliRunner().invoke(cli, ["report", synthetic_run.uri, "--recipe", str(ROOT / "recipes" / "tiny.yaml")])
    assert res.exit_code == 0, res.output
    assert synthetic_run.phase("report").manifest() is not None
    # Later renders without --recipe still show the recipe the report phase saw.
    res = CliRunner().invoke(cli, ["report", synthetic_run.uri])
    assert res.exit_code == 0 and "report.html" in res.output
    saved = load_recipe(ROOT / "recipes" / "tiny.yaml")
    assert f"digest {saved.digest()}" in synthetic_run.phase("report").read_text("report.md")


def test_cli_bad_run_dir_says_what_to_do():
    res = CliRunner().invoke(cli, ["report", "gs://bucket/run"])
    assert res.exit_code != 0 and "unsupported run directory" in res.output


def test_html_is_self_contained(synthetic_run, recipe):
    report.run(recipe, synthetic_run)
    html = synthetic_run.phase("report").read_text("report.html")
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs == []
    assert html.count("<svg") == 5  # rejections, two token histograms, loss, eval


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.stack: list[str] = []
        self.text: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if self.stack and data.strip():
            self.text.setdefault(self.stack[-1], []).append(data.strip())


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make system-deps` installs it)")
def test_rendered_in_headless_chromium(synthetic_run, recipe, tmp_path):
    report.run(recipe, synthetic_run)
    page = synthetic_run.local_path("report/report.html").as_uri()
    proc = _chromium(tmp_path, "--dump-dom", page)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    assert dom.text["h1"] == ["skyt1 run report"]
    assert dom.text["h2"] == ["Local stand-ins", "Phases", "Rejections by reason", "Token lengths",
                              "Training loss", "Evaluation", "Prompts", "Configuration"]
    cells = dom.text["td"]
    for shown in ("30", "42.0 s", "rows=18, steps=6", "$1.50", "wrong_answer", "12.5", "43.8", "6.2", "pass@2=0.5"):
        assert shown in cells, shown
    assert dom.tags["svg"] == 5 and dom.tags["rect"] >= 20 and dom.tags["circle"] == len(LOSS)
    assert any("stood in for vLLM" in li for li in dom.text["li"])

    shot = tmp_path / "report.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,2400", "--hide-scrollbars", page)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1100, 2400)
    # The chart colour is on screen: the SVG bars and lines were drawn, not just parsed.
    colours = img.getcolors(maxcolors=1 << 20)
    accent = next((n for n, rgb in colours if rgb == (0x2F, 0x6D, 0xB5)), 0)
    assert accent > 2000
