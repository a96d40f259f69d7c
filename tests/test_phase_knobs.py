"""Every recipe field, changed alone, re-runs exactly the phases that read it (their digests change, no other
phase's does); tuning knobs re-run nothing; a phase that reads a knob it does not declare is caught; and a
finished phase never silently keeps results computed under other settings. Fast: digests and plans only
(the real reads are traced in every test that runs a phase, under SKYT1_STRICT_KNOBS)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from skyt1 import phases
from skyt1.cli import cli
from skyt1.protocol import PhaseError, open_phase, plan
from skyt1.recipe import Recipe, load_recipe, trace_reads
from skyt1.store import RunDir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = [ROOT / "recipes" / "tiny.yaml", ROOT / "recipes" / "sky-t1-32b-preview.yaml", ROOT / "recipes" / "demo.yaml"]
# Fields no phase reads: where the run goes and what it may cost (read by `cost`, `launch`, `reproduce`),
# and words for people. The report shows the whole recipe, so they re-run the report alone.
NOT_PHASE_KNOBS = ("name", "description", "budget_usd", "cloud", "cost")


def leaves(data: Any, path: str = "") -> list[str]:
    """Dotted paths of every value a user can set: scalars, lists of scalars, and mapping entries."""
    if isinstance(data, dict) and data:
        return [p for k, v in data.items() for p in leaves(v, f"{path}.{k}" if path else str(k))]
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        return [p for i, v in enumerate(data) for p in leaves(v, f"{path}.{i}")]
    return [path]


def _get(data: dict, path: str) -> Any:
    return phases._get(data, path)


def _set(data: dict, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value


def _candidates(value: Any, source: str) -> list[Any]:
    """Other values to try for a field, most plausible first (the first one the schema accepts is used)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1 if value > 1 else 2]
    if isinstance(value, float):
        return [value / 2 if 0 < value <= 1 else value + 1.5, value + 0.05, value - 1]
    if isinstance(value, str):
        return [*_LITERAL_SWAPS.get(value, []), value + "-x", "x", "1", source]
    if isinstance(value, list):
        return [value[:-1], [*value, "gsm8k"], [source], [{"infra": "aws"}]] if value else [
            [source], ["x"], [{"infra": "aws"}], ["aime24"]]
    if isinstance(value, dict):
        return [{"aime24": 3}, {"x": 1}, {"aws": 2.0}, {"a": "b"}, {"label": {"cpus": "2"}}]
    return [1, 0.5, source, "x", True, "aime24", "default", ["x"], {"infra": "aws"}]  # None: any the schema takes


_LITERAL_SWAPS = {"vllm": ["hf"], "hf": ["openai"], "openai": ["hf"], "llm": ["rule"], "auto": ["llm", "none"], "rule": ["llm"], "answer": ["rule"],
                  "full": ["lora"], "freeze": ["full"], "smollm2": ["qwen25"], "cosine": ["linear"], "zero3_offload": ["zero3"], "none": ["zero2", "qwen-cot", "wandb"],
                  "skyt1": ["default"], "sky-t1": ["qwen-cot"], "qwen-cot": ["sky-t1"], "bfloat16": ["float16"], "float32": ["bfloat16"],
                  "s3": ["gcs"], "math": ["code"], "code": ["math"], "science": ["math"], "demo": ["jsonl"], "numina": ["jsonl"],
                  "apps": ["taco"], "taco": ["apps"], "still2": ["jsonl"], "train": ["test"], "test": ["train"]}


def _rename_source(data: dict, old: str, new: str) -> None:
    """A source's name is its identity: renaming it renames every reference to it too."""
    for where in ("label.sources", "distill.sources", "reformat.as_given_sources"):
        names = _get(data, where)
        _set(data, where, [new if n == old else n for n in names])
    if data["assemble"].get("science_source") == old:
        data["assemble"]["science_source"] = new
    expected = data["cost"]["expected_problems"]
    if old in expected:
        expected[new] = expected.pop(old)


def mutations(recipe: Recipe) -> list[tuple[str, Recipe]]:
    """(path, the recipe with that one field changed) for every field of `recipe`."""
    base = recipe.model_dump(mode="json")
    out = []
    for path in leaves(base):
        for value in _candidates(_get(base, path), base["sources"][0]["name"]):
            data = copy.deepcopy(base)
            _set(data, path, value)
            if path.startswith("sources.") and path.endswith(".name"):
                _rename_source(data, _get(base, path), value)
            try:
                changed = Recipe.model_validate(data)
            except ValidationError:
                continue
            if changed.model_dump(mode="json") != base:
                out.append((path, changed))
                break
        else:
            pytest.fail(f"no valid other value found for {path} = {_get(base, path)!r}")
    return out


def readers(recipe: Recipe, path: str) -> set[str]:
    """The phases whose declared knobs (not tuning knobs) cover `path`."""
    data = recipe.model_dump(mode="json")
    found = set()
    for spec in phases.PHASES:
        knobs = {p for pattern in spec.knobs for p in phases.expand(pattern, data)}
        tuning = {p for pattern in spec.tuning for p in phases.expand(pattern, data)}
        if (phases.covered(path, knobs) or any(k.startswith(path + ".") for k in knobs)) \
                and not phases.covered(path, tuning):
            found.add(spec.name)
    return found


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_changing_any_single_field_reruns_exactly_the_phases_that_read_it(path):
    recipe = load_recipe(path)
    before = {p: phases.config_digest(recipe, p) for p in phases.NAMES}
    tried = mutations(recipe)
    assert len(tried) > 150
    dead = []
    for field, changed in tried:
        after = {p: phases.config_digest(changed, p) for p in phases.NAMES}
        rerun = {p for p in phases.NAMES if after[p] != before[p]}
        expected = readers(recipe, field) | readers(changed, field)
        assert rerun == expected, f"{field}: digests of {sorted(rerun)} changed, the table says {sorted(expected)}"
        if rerun <= {"report"} and not field.startswith(NOT_PHASE_KNOBS) and not _tuning(recipe, field):
            dead.append(field)
    assert dead == [], f"fields no phase reads (dead knobs): {dead}"


def _tuning(recipe: Recipe, field: str) -> bool:
    data = recipe.model_dump(mode="json")
    return any(phases.covered(field, {p for t in spec.tuning for p in phases.expand(t, data)})
               for spec in phases.PHASES)


def test_tuning_knobs_change_no_digest_and_a_phase_resumes_across_them(tmp_path):
    recipe = load_recipe(RECIPES[0])
    tuned = load_recipe(RECIPES[0], {"distill.engine.batch_size": 2, "distill.flush_every": 3, "filter.workers": 1,
                                     "label.api.concurrency": 1, "reformat.api.base_url": "http://127.0.0.1:9/v1",
                                     "train.preprocessing_num_workers": 4, "eval.engine.concurrency": 2})
    assert all(phases.config_digest(recipe, p) == phases.config_digest(tuned, p) for p in phases.NAMES if p != "report")
    run = RunDir(tmp_path / "run")
    _half_written(recipe, run, "label")
    assert [(s["phase"], s["action"]) for s in plan(tuned, run, ["label"])] == [("label", "resume")]


def _half_written(recipe: Recipe, run: RunDir, name: str) -> None:
    """A phase started under `recipe` and killed after writing a record."""
    with open_phase(name, recipe, run) as p, p.dir.writer() as w:
        w.write({"id": "demo_math/00000", "difficulty": 3})


def test_a_finished_or_half_done_phase_refuses_other_settings_and_names_them(tmp_path):
    recipe = load_recipe(RECIPES[0])
    run = RunDir(tmp_path / "run")
    _half_written(recipe, run, "label")
    other = load_recipe(RECIPES[0], {"label.api.temperature": 1.3, "label.api.max_tokens": 8})
    assert plan(other, run, ["label"])[0]["action"] == "refuse"
    with pytest.raises(PhaseError) as err:
        with open_phase("label", other, run):
            pass
    msg = str(err.value)
    assert "label.api.max_tokens: 32 -> 8" in msg and "label.api.temperature: 0.7 -> 1.3" in msg
    assert "Pass --force" in msg and "_STARTED.json" in msg
    assert run.phase("label").ids() == {"demo_math/00000"}  # nothing discarded by the refusal
    with open_phase("label", other, run, force=True) as p:
        assert p.dir.ids() == set()  # --force starts over


def test_distill_on_a_finished_run_with_another_temperature_refuses_before_any_work(tmp_path):
    """The reliability probe: `skyt1 distill --set distill.sampling.temperature=1.3 --set
    distill.sampling.max_tokens=8` on a finished run used to exit 0 and keep every trace sampled at 0.7."""
    recipe = load_recipe(RECIPES[0])
    run = RunDir(tmp_path / "run")
    with open_phase("distill", recipe, run) as p:
        with p.dir.writer() as w:
            w.write({"id": "demo_math/00000#0", "response": "sampled at T=0.7"})
        p.finish(counts={"out": 1})
    res = CliRunner().invoke(cli, ["distill", "--recipe", str(RECIPES[0]), "--run-dir", run.uri,
                                   "--set", "distill.sampling.temperature=1.3", "--set", "distill.sampling.max_tokens=8"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "distill.sampling.max_tokens: 48 -> 8" in res.output and "distill.sampling.temperature: 0.7 -> 1.3" in res.output
    assert list(run.phase("distill").records()) == [{"id": "demo_math/00000#0", "response": "sampled at T=0.7"}]


@pytest.mark.parametrize("field, value, phase", [
    # distill wrote its user turns with the math prefix of assemble, outside its digest: changing the
    # prompts now re-runs distill (the knob lives in `prompts`, shared with assemble and eval).
    ("prompts.user", "default", "distill"),
    # eval scored with filter's timeouts and limits, outside its digest.
    ("filter.code_timeout_s", 9.0, "eval"),
    ("filter.memory_mb", 2048, "eval"),
])
def test_knobs_a_phase_read_from_another_section_are_in_its_digest(field, value, phase):
    recipe = load_recipe(RECIPES[0])
    changed = load_recipe(RECIPES[0], {field: value})
    assert phases.config_digest(recipe, phase) != phases.config_digest(changed, phase)


def test_a_read_the_table_does_not_declare_is_caught(tmp_path, monkeypatch):
    recipe = load_recipe(RECIPES[0])
    with trace_reads(recipe) as reads:
        recipe.distill.sampling.n, recipe.source("demo_code").count, recipe.resolve_path("x")
    assert reads == {"distill.sampling.n", "sources.1.count"}  # a lookup by name reads no other source
    run = RunDir(tmp_path / "run")
    with pytest.raises(PhaseError, match=r"phase filter read recipe knob\(s\) \['assemble.seed'\]"):
        with open_phase("filter", recipe, run, needs=()) as p:
            recipe.assemble.seed  # noqa: B018 - the undeclared read
            p.finish(counts={})
    monkeypatch.delenv("SKYT1_STRICT_KNOBS")
    with open_phase("filter", recipe, run, needs=(), force=True) as p:  # outside tests: logged, not fatal
        recipe.assemble.seed  # noqa: B018
        assert p.finish(counts={})["reads"] == ["assemble.seed"]


def test_removed_knobs_say_what_became_of_them(tmp_path):
    path = tmp_path / "r.yaml"
    text = (ROOT / "recipes" / "tiny.yaml").read_text().replace(
        "  decontam_benchmarks:", "  system_prompt: sky-t1\n  math_user_prefix: 'Return it boxed. '\n  decontam_benchmarks:")
    path.write_text(text)
    res = CliRunner().invoke(cli, ["recipe", "validate", str(path)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "assemble.math_user_prefix: removed: user turns now come from the versioned templates" in res.output
    assert "assemble.system_prompt: removed: the training system prompt is now `prompts.system`" in res.output


def test_plan_is_a_dry_run(tmp_path):
    recipe = load_recipe(RECIPES[0])
    run = RunDir(tmp_path / "run")
    res = CliRunner().invoke(cli, ["plan", "--recipe", str(RECIPES[0]), "--run-dir", run.uri])
    assert res.exit_code == 0, res.output
    assert [line.split()[:2] for line in res.output.splitlines()][:3] == [["label", "run"], ["distill", "run"],
                                                                        ["reformat", "run"]]
    assert not (tmp_path / "run").exists()  # nothing written
    _half_written(recipe, run, "label")
    res = CliRunner().invoke(cli, ["plan", "--recipe", str(RECIPES[0]), "--run-dir", run.uri,
                                   "--set", "seed=3", "--phases", "label,distill"])
    assert res.exit_code == 1 and re.search(r"^label\s+refuse", res.output, re.M) and "seed: 0 -> 3" in res.output
    assert "label would not run" in res.output
