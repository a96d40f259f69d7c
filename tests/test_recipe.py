"""Recipes: both shipped recipes validate, the published one encodes the Sky-T1 recipe exactly, and every
mistake a user can make is named with its file, field path and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from skyt1.cli import cli
from skyt1.recipe import Recipe, RecipeError, load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
PUBLISHED = RECIPES / "sky-t1-32b-preview.yaml"


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    r = load_recipe(path)
    assert isinstance(r, Recipe) and r.path == str(path.resolve())
    assert {"sky-t1-32b-preview.yaml", "tiny.yaml"} <= {p.name for p in RECIPES.glob("*.yaml")}


def test_published_recipe_encodes_sky_t1_exactly():
    r = load_recipe(PUBLISHED)
    t = r.train
    assert t.per_device_train_batch_size * t.gradient_accumulation_steps * t.gpus_per_node * t.num_nodes == 96
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.gpus_per_node) == (1, 12, 8)
    assert (t.base_model, t.finetuning_type, t.template) == ("Qwen/Qwen2.5-32B-Instruct", "full", "qwen25")
    assert (t.learning_rate, t.num_train_epochs, t.lr_scheduler_type, t.warmup_ratio) == (1e-5, 3, "cosine", 0.1)
    assert (t.cutoff_len, t.deepspeed, t.save_steps, t.bf16) == (16384, "zero3_offload", 100, True)

    src = {s.name: s for s in r.sources}
    numina = {s.subset: (s.difficulty_min, s.difficulty_max, s.start, s.end, s.require_boxed)
              for s in src.values() if s.dataset == "numina"}
    assert numina == {"math": (4, 9, 0, None, True), "amc_aime": (1, 9, 0, None, True),
                      "olympiads": (9, 9, 0, 20000, True)}
    assert all(s.hub_id == "AI-MO/NuminaMath-CoT" and s.domain == "math" for s in src.values() if s.dataset == "numina")
    code = {(s.dataset, s.split, tuple(s.difficulties or ())) for s in src.values() if s.domain == "code"}
    assert code == {("apps", "test", ()), ("taco", "train", ("MEDIUM",)), ("taco", "test", ())}
    science = [s for s in src.values() if s.domain == "science"]
    assert [(s.dataset, s.hub_id) for s in science] == [("still2", "RUC-AIBOX/long_form_thought_data_5k")]
    assert r.assemble.science_source == science[0].name and science[0].name not in r.distill.sources
    assert r.assemble.mixture == {"math": 10000, "code": 5000, "science": 1000}

    d = r.distill
    assert (d.engine.model, d.sampling.max_tokens) == ("Qwen/QwQ-32B-Preview", 16384)
    assert d.system_prompt == ("You are a helpful and harmless assistant. You are Qwen developed by Alibaba. "
                               "You should think step-by-step.")
    assert set(d.sources) == {s.name for s in src.values() if s.domain in ("math", "code")}
    assert (r.reformat.api.model, r.reformat.api.temperature, r.reformat.api.max_tokens) == ("gpt-4o-mini", 0.7, 16384)
    assert (r.label.api.model, r.label.api.temperature) == ("gpt-4o-mini", 0.7)
    assert (r.eval.sampling.temperature, r.eval.sampling.top_p, r.eval.sampling.max_tokens) == (0.6, 0.95, 32768)


def test_cli_validate_prints_a_summary():
    res = invoke("recipe", "validate", str(PUBLISHED))
    assert res.exit_code == 0, res.output
    assert "global batch 96" in res.output and "lr 1e-05" in res.output and "zero3_offload" in res.output
    assert "Qwen/QwQ-32B-Preview" in res.output and "is a valid recipe" in res.output


def write(tmp_path, text: str) -> Path:
    base = yaml.safe_load(PUBLISHED.read_text())
    base.update(yaml.safe_load(text))
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_typo_in_a_field_name_names_file_path_and_says_unknown(tmp_path):
    path = write(tmp_path, "train: {learnig_rate: 1.0e-5}")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert str(path) in msg and "train.learnig_rate: unknown field" in msg
    res = invoke("recipe", "validate", str(path))
    assert res.exit_code != 0 and "train.learnig_rate: unknown field" in res.output


def test_wrong_type_names_the_path_and_the_expectation(tmp_path):
    path = write(tmp_path, "train: {learning_rate: fast}\nsources: [{name: a, dataset: numina, domain: poetry}]\n"
                           "distill: {engine: {model: m}, sources: [a]}")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert "train.learning_rate: Input should be a valid number" in msg and "(got 'fast')" in msg
    assert "sources.0.domain: Input should be 'math', 'code' or 'science'" in msg


def test_missing_required_field_and_unknown_source_reference(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\n")
    with pytest.raises(RecipeError, match="distill: required field is missing"):
        load_recipe(path)
    path.write_text("name: x\ndistill: {engine: {model: m}, sources: [nope]}\n")
    with pytest.raises(RecipeError, match=r"distill.sources names unknown sources \['nope'\]"):
        load_recipe(path)


def test_missing_file_bad_yaml_and_non_mapping(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain: {learning_rate: [1, 2}\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml: not valid YAML"):
        load_recipe(bad)
    for text, what in (("", "empty"), ("- a\n- b\n", "a list")):
        bad.write_text(text)
        with pytest.raises(RecipeError, match=f"must be a YAML mapping of fields, but the file is {what}"):
            load_recipe(bad)
    with pytest.raises(RecipeError, match="cannot read the recipe file"):
        load_recipe(tmp_path)
    res = invoke("recipe", "validate", str(tmp_path / "absent.yaml"))
    assert res.exit_code == 1 and "no such recipe file" in res.output


def test_set_overrides(tmp_path):
    r = load_recipe(PUBLISHED, {"train.max_steps": 5, "sources.2.end": 100, "eval.engine.model": "ckpt"})
    assert (r.train.max_steps, r.sources[2].end, r.eval.engine.model) == (5, 100, "ckpt")
    res = invoke("recipe", "show", str(PUBLISHED), "--set", "train.max_steps=5")
    assert res.exit_code == 0 and yaml.safe_load(res.output)["train"]["max_steps"] == 5
    assert load_recipe(PUBLISHED).digest("train") != r.digest("train")
    assert load_recipe(PUBLISHED).digest("distill") == r.digest("distill")
    with pytest.raises(RecipeError, match="train.max_stepz: unknown field"):
        load_recipe(PUBLISHED, {"train.max_stepz": 5})
    with pytest.raises(RecipeError, match=r"--set sources.x.end: 'x' is not an index"):
        load_recipe(PUBLISHED, {"sources.x.end": 5})
    with pytest.raises(RecipeError, match="--set name.x: name is 'sky-t1-32b-preview', not a mapping"):
        load_recipe(PUBLISHED, {"name.x": 5})
    res = invoke("recipe", "validate", str(PUBLISHED), "--set", "train.max_steps")
    assert res.exit_code == 2 and "expected KEY=VALUE" in res.output


def test_show_prints_resolved_defaults():
    res = invoke("recipe", "show", str(RECIPES / "tiny.yaml"))
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    # Fields the tiny recipe never sets appear with their defaults.
    assert shown["filter"]["stop_at_first_failure"] is True and shown["filter"]["workers"] == 2
    assert shown["prompts"] == {"user": "skyt1", "system": "sky-t1"}
    assert shown["reformat"]["api"]["api_key_env"] == "SKYT1_DEMO_KEY"
    assert shown["cost"]["train_mfu"] == 0.14 and shown["train"]["lr_scheduler_type"] == "cosine"
    assert Recipe.model_validate(shown).digest() == load_recipe(RECIPES / "tiny.yaml").digest()
