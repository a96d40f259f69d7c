import json

from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from skyt1.tiny_model import SKY_T1_MARKERS, build_tiny_model


def test_loads_offline_with_auto_classes(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert set(model.generation_config.eos_token_id) == {tok.convert_tokens_to_ids("<|im_end|>"), tok.pad_token_id}
    meta = json.loads((tiny_dir / "skyt1_tiny.json").read_text())
    assert meta["seed"] == 0 and meta["parameters"] == sum(p.numel() for p in model.parameters())


def test_chat_template_renders_chatml(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is $1+1$?"},
            {"role": "assistant", "content": "2"}, {"role": "user", "content": "And 2+2?"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is $1+1$?<|im_end|>\n"
        "<|im_start|>assistant\n2<|im_end|>\n<|im_start|>user\nAnd 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    no_system = tok.apply_chat_template(msgs[1:2], tokenize=False, add_generation_prompt=False)
    assert no_system.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    assert not no_system.endswith("<|im_start|>assistant\n")
    # ChatML markers and the Sky-T1 section markers are single tokens, and text round-trips.
    for marker in ["<|im_start|>", "<|im_end|>", *SKY_T1_MARKERS]:
        assert len(tok(marker, add_special_tokens=False)["input_ids"]) == 1, marker
    sample = "<|begin_of_thought|>\n\nx = \\frac{1}{2}\n<|end_of_thought|> def solve(): héllo"
    assert tok.decode(tok(sample, add_special_tokens=False)["input_ids"]) == sample


def test_deterministic_per_seed_and_shared_tokenizer(tmp_path, tiny_dir):
    a = build_tiny_model(tmp_path / "a", seed=0)
    b = build_tiny_model(tmp_path / "b", seed=1)
    assert (a / "model.safetensors").read_bytes() == (tiny_dir / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()


def test_cli_builds_model(tmp_path):
    from skyt1.cli import cli

    result = CliRunner().invoke(cli, ["tiny-model", str(tmp_path / "m"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m" / "skyt1_tiny.json").read_text())["seed"] == 3
    AutoModelForCausalLM.from_pretrained(tmp_path / "m")
