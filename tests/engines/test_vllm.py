import pytest

from skyt1.engines import EngineUnavailable, make_engine
from skyt1.recipe import Engine as EngineConfig

pytest.importorskip("torch")


def _gpu_vllm_available() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_gpu_vllm_available(), reason="vllm runs here: the unavailable path cannot be exercised")
def test_vllm_unavailable_says_what_to_do():
    cfg = EngineConfig(backend="vllm", model="Qwen/QwQ-32B-Preview", tensor_parallel_size=8)
    with pytest.raises(EngineUnavailable) as err:
        make_engine(cfg)
    msg = str(err.value)
    assert "vllm needs a CUDA GPU: pip install 'skyt1[gpu]' on a GPU machine, or use --backend hf/openai" in msg


@pytest.mark.slow
@pytest.mark.skipif(not _gpu_vllm_available(), reason="needs vllm and a CUDA GPU")
def test_vllm_generates_per_request_seeds(tmp_path):
    from skyt1.engines import Request, SamplingParams
    from skyt1.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "m", hidden_size=64, num_heads=4)
    reqs = [Request(f"r{i}", [{"role": "user", "content": f"{i}+{i}"}], SamplingParams(0.8, 0.95, 16, seed=i))
            for i in range(8)]
    with make_engine(EngineConfig(backend="vllm", model=str(model), dtype="float32",
                                  gpu_memory_utilization=0.2)) as engine:
        first = {c.id: c for c in engine.generate(reqs)}
        again = {c.id: c for c in engine.generate(reqs[::-1])}
    assert first == again and sorted(first) == [r.id for r in reqs]
