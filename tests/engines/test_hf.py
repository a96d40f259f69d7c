import pytest

from skyt1.engines import EngineUnavailable, Request, SamplingParams, make_engine
from skyt1.recipe import Engine as EngineConfig


def _requests(n, max_tokens=12, temperature=0.8, seed_base=0):
    return [Request(f"p{i}", [{"role": "user", "content": f"What is {i} + {i * 7}?"}],
                    SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed_base + i))
            for i in range(n)]


def test_same_request_same_text_whatever_the_batch(hf_engine):
    reqs = _requests(6)
    together = {c.id: c for c in hf_engine.generate(reqs)}
    assert sorted(together) == [r.id for r in reqs]
    alone = {c.id: c for r in reversed(reqs) for c in hf_engine.generate([r])}
    mixed = {c.id: c for c in hf_engine.generate([reqs[3], *_requests(3, seed_base=100), reqs[0]])}
    for rid, c in together.items():
        assert alone[rid] == c
    assert mixed["p3"] == together["p3"] and mixed["p0"] == together["p0"]
    assert len({c.text for c in together.values()}) > 1  # different seeds, different samples


def test_seed_changes_sample_and_greedy_is_stable(hf_engine):
    base = _requests(1, max_tokens=16)[0]
    other = Request(base.id, base.messages, SamplingParams(0.8, 0.95, 16, seed=12345))
    texts = [next(hf_engine.generate([r])).text for r in (base, other, base)]
    assert texts[0] == texts[2] and texts[0] != texts[1]
    greedy = _requests(2, temperature=0.0)
    a, b = (list(hf_engine.generate(greedy)) for _ in range(2))
    assert a == b


def test_finish_reasons_and_token_counts(hf_engine):
    results = list(hf_engine.generate(_requests(8, max_tokens=32)))
    assert len(results) == 8
    prompt_len = len(hf_engine.prompt_ids(_requests(1)[0].messages))
    for c in results:
        assert c.finish_reason in ("stop", "length")
        assert 1 <= c.completion_tokens <= 32 and c.prompt_tokens >= prompt_len - 2
        if c.finish_reason == "length":
            assert c.completion_tokens == 32
        assert "<|im_end|>" not in c.text
    assert {c.finish_reason for c in results} == {"stop", "length"}  # the random model does end turns
    short = list(hf_engine.generate(_requests(2, max_tokens=3)))
    assert all(c.completion_tokens == 3 for c in short if c.finish_reason == "length")


def test_make_engine_hf_and_info(tiny_dir):
    cfg = EngineConfig(backend="hf", model="unused", dtype="float32", batch_size=2)
    with make_engine(cfg, model=str(tiny_dir)) as engine:
        info = engine.info()
        assert info["backend"] == "hf" and info["model"] == str(tiny_dir) and info["batch_size"] == 2
        assert info["dtype"] == "float32" and len(info["chat_template_sha256"]) == 16
        (c,) = engine.generate(_requests(1, max_tokens=4))
        assert c.id == "p0"


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(EngineUnavailable, match="cannot load model .*skyt1 tiny-model"):
        make_engine(EngineConfig(backend="hf", model=str(tmp_path / "nope")))
