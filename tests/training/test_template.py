"""The `qwen25` template renders exactly the token sequence Sky-T1 was trained on (SkyThought's fork of
LlamaFactory): ChatML system/user turns, assistant turns ending in <|endoftext|>, "\\n" before later users."""

from __future__ import annotations

import pytest

from skyt1.training import template, train

from .conftest import SYSTEM, recipe_for, sharegpt_rows


@pytest.fixture(scope="module")
def qwen25(tiny_model):
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    template.register()
    template.register()  # idempotent: every training process calls it
    tok = AutoTokenizer.from_pretrained(tiny_model)
    return get_template_and_fix_tokenizer(tok, DataArguments(template="qwen25")), tok


def test_single_turn_sequence(qwen25):
    tpl, tok = qwen25
    row = sharegpt_rows(1)[0]
    q, a = row["conversations"][0]["value"], row["conversations"][1]["value"]
    prompt, response = tpl.encode_oneturn(tok, [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                          system=SYSTEM)
    expected_prompt = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(prompt) == expected_prompt
    assert tok.decode(response) == a + "<|endoftext|>"
    assert response[-1] == tok.convert_tokens_to_ids("<|endoftext|>") == tok.eos_token_id
    assert tok.convert_tokens_to_ids("<|im_end|>") not in response  # the assistant turn does NOT end in <|im_end|>
    assert prompt + response == tok.encode(expected_prompt + a + "<|endoftext|>", add_special_tokens=False)


def test_multi_turn_has_separator_before_later_user_turns(qwen25):
    tpl, tok = qwen25
    msgs = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "1"},
            {"role": "user", "content": "two"}, {"role": "assistant", "content": "2"}]
    pairs = tpl.encode_multiturn(tok, msgs, system="S")
    text = "".join(tok.decode(p) + tok.decode(r) for p, r in pairs)
    assert text == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\none<|im_end|>\n<|im_start|>assistant\n"
                    "1<|endoftext|>\n<|im_start|>user\ntwo<|im_end|>\n<|im_start|>assistant\n2<|endoftext|>")


def test_default_system_when_the_row_has_none(qwen25):
    tpl, tok = qwen25
    prompt, _ = tpl.encode_oneturn(tok, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    assert tok.decode(prompt).startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")


def test_training_data_is_what_the_template_renders(tiny_model, make_run, qwen25):
    """The tokenized cache of a real (2-step) run holds exactly those sequences, prompt masked in labels."""
    from datasets import load_from_disk

    tpl, tok = qwen25
    run = make_run(rows=8)
    manifest = train.run(recipe_for(tiny_model, max_steps=2), run, progress=False)
    assert manifest["counts"]["steps"] == 2
    data = load_from_disk(str(run.local_path("train/tokenized")))["train"]
    rows = sharegpt_rows(8)
    for i in (0, 7):
        conv = rows[i]["conversations"]
        prompt, response = tpl.encode_oneturn(
            tok, [{"role": "user", "content": conv[0]["value"]}, {"role": "assistant", "content": conv[1]["value"]}],
            system=SYSTEM)
        assert data[i]["input_ids"] == prompt + response
        assert data[i]["labels"] == [-100] * len(prompt) + response
    saved = (run.local_path("train/final") / "tokenizer_config.json").read_text()
    assert '"eos_token": "<|endoftext|>"' in saved
