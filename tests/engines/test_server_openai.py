import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from skyt1.engines import EngineUnavailable, Request, SamplingParams, api_engine, resolve_api_keys
from skyt1.engines.openai import EngineConfigError, OpenAIEngine
from skyt1.engines.server import FaultPlan, start_server
from skyt1.recipe import ApiModel


def _reqs(n, tag="q", max_tokens=8):
    return [Request(f"{tag}{i}", [{"role": "user", "content": f"{tag}{i}: what is {i}*{i}?"}],
                    SamplingParams(temperature=0.9, top_p=0.9, max_tokens=max_tokens, seed=i)) for i in range(n)]


def _engine(url, keys=("EMPTY",), **kw):
    kw.setdefault("backoff_base_s", 0.01)
    return OpenAIEngine("tiny", base_url=url, api_keys=list(keys), **kw)


def test_round_trip_matches_the_engine_behind_the_server(server, hf_engine):
    reqs = _reqs(6)
    eng = _engine(server.url, concurrency=3)
    via_http = {c.id: c for c in eng.generate(reqs)}
    direct = {c.id: c for c in hf_engine.generate(reqs)}
    assert via_http == direct  # text, finish_reason and token counts all survive the HTTP round trip
    assert eng.usage["requests"] == 6 and eng.usage["retries"] == 0 and eng.usage["failures"] == 0
    assert eng.usage["prompt_tokens"] == sum(c.prompt_tokens for c in direct.values())
    assert eng.usage["completion_tokens"] == sum(c.completion_tokens for c in direct.values())
    # every sampling parameter reached the server
    bodies = [e["body"] for e in server.log if e["body"] and e["body"]["messages"][-1]["content"].startswith("q")]
    assert {(b["temperature"], b["top_p"], b["max_tokens"], b["n"]) for b in bodies[-6:]} == {(0.9, 0.9, 8, 1)}
    assert sorted(b["seed"] for b in bodies[-6:]) == list(range(6))


def test_openai_sdk_n_seed_usage_and_models(server):
    client = openai.OpenAI(base_url=server.url, api_key="EMPTY")
    msgs = [{"role": "user", "content": "hello"}]
    r = client.chat.completions.create(model="any", messages=msgs, n=3, seed=7, max_tokens=5, temperature=1.0)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert 3 <= r.usage.completion_tokens <= 15 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    again = client.chat.completions.create(model="any", messages=msgs, n=3, seed=7, max_tokens=5, temperature=1.0)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]
    assert len({c.message.content for c in r.choices}) > 1  # choice j is sampled with seed+j
    assert client.models.list().data[0].id
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="any", messages=[])
    with pytest.raises(openai.BadRequestError, match="streaming"):
        client.chat.completions.create(model="any", messages=msgs, stream=True).close()


def test_retries_through_429_and_500(hf_engine):
    plan = FaultPlan(fail_first=2, fail_rate=0.4, statuses=(429, 500), seed=3)
    with start_server(hf_engine, faults=plan) as srv:
        eng = _engine(srv.url, concurrency=4, max_retries=10)
        results = list(eng.generate(_reqs(8)))
    assert sorted(c.id for c in results) == [f"q{i}" for i in range(8)]
    assert all(c.finish_reason in ("stop", "length") for c in results)
    statuses = [e["status"] for e in srv.log]
    assert 429 in statuses and 500 in statuses
    assert eng.usage["retries"] == statuses.count(429) + statuses.count(500) > 0
    assert eng.usage["requests"] == len(statuses) and eng.usage["failures"] == 0


def test_retries_after_timeouts(hf_engine):
    with start_server(hf_engine, faults=FaultPlan(slow_first=1, delay_s=4.0)) as srv:
        eng = _engine(srv.url, timeout_s=1.5, max_retries=4)
        (c,) = eng.generate(_reqs(1))
    assert c.finish_reason in ("stop", "length") and eng.usage["retries"] >= 1 and eng.usage["failures"] == 0


def test_keys_rotate_round_robin(hf_engine):
    keys = ["sk-test-key-0000000000000000", "sk-test-key-1111111111111111", "sk-test-key-2222222222222222"]
    with start_server(hf_engine, api_keys=keys) as srv:
        eng = _engine(srv.url, keys=keys, concurrency=4)
        assert len(list(eng.generate(_reqs(9)))) == 9
    seen = {e["body"]["messages"][-1]["content"].split(":")[0]: e["authorization"] for e in srv.log}
    assert seen == {f"q{i}": f"Bearer {keys[i % 3]}" for i in range(9)}


def test_request_that_always_fails_becomes_an_error_completion(hf_engine, caplog, monkeypatch):
    secret = "sk-never-log-this-key-123456789"
    monkeypatch.setenv("SKYT1_TEST_KEY", secret)
    with start_server(hf_engine, faults=FaultPlan(fail_matching="q2:", statuses=(500,))) as srv, \
            caplog.at_level(logging.DEBUG):
        eng = api_engine(ApiModel(model="tiny", base_url=srv.url, api_key_env="SKYT1_TEST_KEY", max_retries=2,
                                  concurrency=2))
        eng.backoff_base_s = 0.01
        results = {c.id: c for c in eng.generate(_reqs(4))}
    assert results["q2"].finish_reason.startswith("error: 500") and results["q2"].text == ""
    assert all(results[f"q{i}"].finish_reason in ("stop", "length") for i in (0, 1, 3))
    assert eng.usage["failures"] == 1 and eng.usage["retries"] == 2
    assert secret not in caplog.text and "q2 failed after 3 attempt(s)" in caplog.text


def test_bad_request_is_not_retried(server):
    eng = _engine(server.url, max_retries=5)
    bad = Request("bad", [{"role": "robot", "content": "x"}], SamplingParams(max_tokens=4))
    (c,) = eng.generate([bad])
    assert c.finish_reason.startswith("error: 400") and eng.usage["requests"] == 1


def test_wrong_key_or_model_stops_the_run_with_a_clear_error(hf_engine):
    with start_server(hf_engine, api_keys=["right-key"], model_names=["tiny"]) as srv:
        with pytest.raises(EngineConfigError, match="refused the request \\(401\\)"):
            list(_engine(srv.url, keys=["wrong-key"]).generate(_reqs(3)))
        other = OpenAIEngine("gpt-9", base_url=srv.url, api_keys=["right-key"])
        with pytest.raises(EngineConfigError, match="not served here"):
            list(other.generate(_reqs(2)))


def test_unreachable_server_yields_error_completions():
    eng = _engine("http://127.0.0.1:9/v1", max_retries=1, timeout_s=2)
    (c,) = eng.generate(_reqs(1))
    assert c.finish_reason.startswith("error: APIConnectionError")


def test_consumer_stopping_early_returns_promptly(hf_engine):
    with start_server(hf_engine, faults=FaultPlan(slow_rate=1.0, delay_s=1.0)) as srv:
        eng = _engine(srv.url, concurrency=2)
        t0 = time.monotonic()
        gen = eng.generate(_reqs(50))
        next(gen)
        gen.close()
        assert time.monotonic() - t0 < 10
        assert eng.usage["requests"] < 10  # the lazy iterator was not drained


def test_resolve_api_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("SKYT1_NO_SUCH_KEY", raising=False)
    with pytest.raises(EngineUnavailable, match="set the environment variable SKYT1_NO_SUCH_KEY"):
        resolve_api_keys("SKYT1_NO_SUCH_KEY", base_url=None)
    assert resolve_api_keys("SKYT1_NO_SUCH_KEY", base_url="http://127.0.0.1:8765/v1") == ["EMPTY"]
    monkeypatch.setenv("SKYT1_NO_SUCH_KEY", "k-env")
    assert resolve_api_keys("SKYT1_NO_SUCH_KEY") == ["k-env"]
    f = tmp_path / "keys.txt"
    f.write_text("# team keys\nk1\n\nk2\n")
    assert resolve_api_keys("SKYT1_NO_SUCH_KEY", str(f)) == ["k1", "k2"]
    f.write_text("\n")
    with pytest.raises(EngineUnavailable, match="holds no keys"):
        resolve_api_keys("X", str(f))


def test_serve_cli(tiny_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "skyt1"), "serve", "--model", str(tiny_dir), "--port", "0",
                             "--served-model-name", "tiny-teacher"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            if line.startswith("serving "):
                url = line.rsplit(" at ", 1)[1].strip()
        assert url, "server did not report its URL"
        assert httpx.get(f"{url}/models").json()["data"][0]["id"] == "tiny-teacher"
        eng = _engine(url)
        eng.model = "tiny-teacher"
        (c,) = eng.generate(_reqs(1))
        assert c.finish_reason in ("stop", "length")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
