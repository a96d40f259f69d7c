"""Which secrets a phase needs under a recipe, and the vLLM layout skyt1 computes from model size and GPU
memory (pure arithmetic and rules; SkyPilot's own resolution of them is exercised in test_dryrun.py)."""

from __future__ import annotations

import pytest

from skyt1.cloud import layout, secrets
from skyt1.recipe import load_recipe

from .conftest import PUBLISHED, REPO


@pytest.fixture(scope="module")
def published():
    return load_recipe(PUBLISHED)


def required(recipe, phase):
    return {n.name: n.why for n in secrets.needs(recipe, phase) if n.required}


def test_published_recipe_needs_openai_for_reformat_and_hf_for_gated_gpqa(published):
    assert required(published, "label") == {}  # the published labels: no API call
    assert "reformat" in required(published, "reformat")["OPENAI_API_KEY"]
    assert "gpqa_diamond" in required(published, "eval")["HF_TOKEN"]
    assert "gpqa_diamond" in required(published, "assemble")["HF_TOKEN"]
    for phase in ("distill", "filter", "train"):
        assert required(published, phase) == {}, phase
    assert [n.name for n in secrets.needs(published, "train")] == ["HF_TOKEN"]  # optional: never W&B
    assert secrets.needs(published, "filter") == []


def test_requirements_follow_the_recipe(published):
    relabel = published.model_copy(deep=True)
    relabel.label.from_published = False
    assert set(required(relabel, "label")) == {"OPENAI_API_KEY"}
    rule = published.model_copy(deep=True)
    rule.reformat.mode = "rule"
    assert required(rule, "reformat") == {}
    no_gpqa = published.model_copy(deep=True)
    no_gpqa.eval.benchmarks = ["aime24", "math500"]
    assert required(no_gpqa, "eval") == {}
    skipping = published.model_copy(deep=True)
    skipping.eval.skip_unavailable = True  # GPQA is listed as skipped without a token: optional
    assert required(skipping, "eval") == {}
    own_key = published.model_copy(deep=True)
    own_key.reformat.api.api_key_env = "MY_OPENAI_KEY"
    assert set(required(own_key, "reformat")) == {"MY_OPENAI_KEY"}
    wandb = published.model_copy(deep=True)
    wandb.train.report_to = "wandb"
    assert set(required(wandb, "train")) == {"WANDB_API_KEY"}


def test_local_copies_and_loopback_servers_need_no_secret():
    tiny = load_recipe(REPO / "recipes" / "tiny.yaml")
    for phase in ("label", "reformat", "assemble", "eval"):
        assert required(tiny, phase) == {}, phase
    assert [n.name for n in secrets.needs(tiny, "reformat")] == ["SKYT1_DEMO_KEY"]  # forwarded when set


def test_overrides_forward_set_values_and_leave_missing_required_ones_as_references(published):
    env = {"HF_TOKEN": "hf-x"}
    out = dict(secrets.overrides(published, "reformat", {"OPENAI_API_KEY": True}, env))
    assert out == {"OPENAI_API_KEY": None}  # SkyPilot's resolution will refuse it
    out = dict(secrets.overrides(published, "eval", {"HF_TOKEN": True}, env))
    assert out == {"HF_TOKEN": "hf-x"}
    no_gpqa = published.model_copy(deep=True)
    no_gpqa.eval.benchmarks = ["aime24"]
    # declared required by the task file, not needed by this recipe: passed empty, the launch goes ahead
    assert dict(secrets.overrides(no_gpqa, "eval", {"HF_TOKEN": True}, {})) == {"HF_TOKEN": ""}
    msg = secrets.missing_message(published, ["reformat", "eval"], ["OPENAI_API_KEY", "HF_TOKEN"])
    assert "\n" not in msg
    assert msg.startswith("OPENAI_API_KEY is not set: reformat (reformat.mode: llm) calls the OpenAI API")
    assert "HF_TOKEN is not set: eval reads the gated gpqa_diamond" in msg


QWEN32 = layout.KNOWN["Qwen/Qwen2.5-32B-Instruct"]


def test_32b_layout_on_h100_is_tp2_dp4():
    """The arithmetic documented in recipes/sky-t1-32b-preview.yaml."""
    assert QWEN32.kv_bytes_per_token() == 256 * 1024
    one = layout.fit(QWEN32, 1, 8, 80, 32768)
    assert one.weights_gib == pytest.approx(61.1, abs=0.05)
    assert one.cache_gib == pytest.approx(6.9, abs=0.05) and one.sequences < 1
    best = layout.choose(QWEN32, 8, 80, 32768)
    assert (best.tp, best.dp) == (2, 4)
    assert best.cache_gib == pytest.approx(37.5, abs=0.1) and best.sequences == pytest.approx(9.4, abs=0.1)
    assert (layout.choose(QWEN32, 8, 141, 8192).tp, layout.choose(QWEN32, 8, 80, 2048).tp) == (1, 1)


def test_engine_layouts_that_cannot_work_are_named(published):
    ev = published.eval.engine
    assert layout.check(ev, QWEN32, 8, 80, "eval")[1] == []
    tp1 = ev.model_copy(update={"tensor_parallel_size": 1, "data_parallel_size": 8})
    (problem,) = layout.check(tp1, QWEN32, 8, 80, "eval")[1]
    assert "TP=1 leaves 6.9 GiB of KV cache per GPU" in problem and "vLLM will not start" in problem
    assert "use TP=2 x DP=4" in problem
    wrong_count = ev.model_copy(update={"data_parallel_size": 2})
    assert "= 4 GPUs, but the task gives 8" in layout.check(wrong_count, QWEN32, 8, 80, "eval")[1][0]
    with pytest.raises(layout.LayoutError, match="no layout"):
        layout.choose(QWEN32, 1, 24, 32768)


def test_architecture_from_a_local_config(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"num_attention_heads": 40, "num_key_value_heads": 8, "hidden_size": 5120, "num_hidden_layers": 64,'
        ' "intermediate_size": 27648, "vocab_size": 152064, "max_position_embeddings": 32768}')
    arch = layout.model_arch(str(tmp_path))
    assert (arch.layers, arch.kv_heads, arch.head_dim, arch.max_position) == (64, 8, 128, 32768)
    assert arch.params == pytest.approx(32.8e9, rel=0.02)  # Qwen2.5-32B counted from its shapes
    assert layout.model_arch(str(tmp_path), params=1e9).params == 1e9
