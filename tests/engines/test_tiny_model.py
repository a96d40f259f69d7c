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


TOKENIZE = """
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
texts = json.loads(sys.stdin.read())
print(json.dumps([tok(t, add_special_tokens=False)["input_ids"] for t in texts]))
"""


def test_prompts_tokenize_alike_in_the_training_and_generation_environments(tiny_dir, vllm_python):
    """The two environments pin different transformers (the newer one loads any qwen2 tokenizer as
    Qwen2Tokenizer); the tiny model's prompts must count the same tokens in both, as Qwen's do."""
    import subprocess
    import sys

    texts = ["Find the number of pairs $(x, y)$ with x^2 + y = 2024 and 12345 < x.",
             "<|im_start|>user\nWhat's 1/3 + 0.25?\n\n\n  Answer:\t42<|im_end|>\n",
             "Caf\u00e9 na\u0131ve \u00e9 \ufb01 \u4e2d\u6587 \u2028 \U0001F600 <|begin_of_thought|>def f(n):\n    return n**2"]
    runs = {}
    for python in (sys.executable, str(vllm_python)):
        out = subprocess.run([python, "-c", TOKENIZE, str(tiny_dir)], input=json.dumps(texts),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[python] = json.loads(out.stdout.strip().splitlines()[-1])
    first, second = runs.values()
    assert first == second
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert tok.convert_ids_to_tokens(first[0])[-8:-3] == ["1", "2", "3", "4", "5"]  # digits one at a time, as Qwen
