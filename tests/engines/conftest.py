import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may reach the Hugging Face hub


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from skyt1.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def hf_engine(tiny_dir):
    from skyt1.engines.hf import HFEngine

    with HFEngine(str(tiny_dir), dtype="float32", batch_size=4) as engine:
        yield engine


@pytest.fixture(scope="session")
def server(hf_engine):
    """A real OpenAI-compatible server on loopback in front of the tiny model (no faults)."""
    from skyt1.engines.server import start_server

    with start_server(hf_engine) as handle:
        yield handle


@pytest.fixture(scope="session")
def vllm_python():
    """vLLM's Python (`.venv-vllm` after `make install`). CI must have it: there a missing vLLM fails."""
    from skyt1.engines import EngineUnavailable
    from skyt1.engines.vllm import find_vllm_python, vllm_version

    try:
        python = find_vllm_python()
        vllm_version(python)
    except EngineUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs vLLM for real, but: {e}")
        pytest.skip(f"no vLLM here: {e}")
    return python


@pytest.fixture(scope="session")
def vllm_model(tmp_path_factory):
    """The tiny random model with 32-wide attention heads: vLLM's CPU attention has no kernel for 16 (the default)."""
    from skyt1.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("vllm") / "tiny", hidden_size=128, seed=0)
