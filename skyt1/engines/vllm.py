"""vLLM backend: vLLM's own OpenAI-compatible server (`vllm serve`) in vLLM's environment.

The same path on a GPU node and on a CPU. vLLM does tensor and data parallelism itself
(`--tensor-parallel-size`, `--data-parallel-size`: one API server per data-parallel rank, requests balanced
across engines by vLLM), prefix caching is on, and every request streams to the server through
`OpenAIEngine` (hundreds in flight, retries, completions yielded as each finishes). No engine internals and
no processes of our own beyond the supervisor that stops the server when skyt1 closes or dies.

vLLM's Python is found in this order: the variable SKYT1_VLLM_PYTHON; this interpreter, if it can import
vllm (a node's generation environment); `<repo>/.venv-vllm/bin/python` (`make install` on a CPU machine).

vLLM on CPU crashes its worker on a request that carries its own seed, so there requests go without one
and the server's seed applies; `info()["per_request_seed"]` records which happened. vLLM refuses a
max_tokens above the context length, so it is capped there (the server trims it further to what the prompt
leaves), as the hf backend does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from skyt1.engines.base import Completion, Engine, EngineUnavailable, Request
from skyt1.engines.vllm_server import LAUNCH, VLLMServer

PYTHON_ENV = "SKYT1_VLLM_PYTHON"
STARTUP_TIMEOUT_ENV = "SKYT1_VLLM_STARTUP_TIMEOUT_S"
REPO_VENV = Path(__file__).resolve().parents[2] / ".venv-vllm"
INSTALL_HINT = ("run `make env-generation` (a GPU node) or `make install` (a CPU machine: builds .venv-vllm), "
                f"or set {PYTHON_ENV} to a Python that can import vllm")
IN_FLIGHT_PER_RANK = 256  # vLLM's default max_num_seqs: enough queued that its scheduler never waits for us
CPU_KV_CACHE_BYTES = 2 * 1024**3  # vLLM on CPU otherwise reserves 90% of the machine's memory
REQUEST_TIMEOUT_S = 6 * 3600.0  # a 32k-token sample can queue and decode for hours; liveness is checked apart


def find_vllm_python() -> str:
    """The Python interpreter of vLLM's environment (see the module docstring for the order)."""
    given = os.environ.get(PYTHON_ENV)
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise EngineUnavailable(f"{PYTHON_ENV}={given} is not an executable file; {INSTALL_HINT}")
        return given
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    local = REPO_VENV / "bin" / "python"
    if local.is_file():
        return str(local)
    raise EngineUnavailable(f"vLLM is not installed: {INSTALL_HINT}")


def vllm_version(python: str) -> str:
    """vLLM's version in that environment; CPU builds end in "+cpu" (vLLM's own rule, see vllm_launch.py)."""
    try:
        r = subprocess.run([python, str(LAUNCH), "version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EngineUnavailable(f"cannot run {python} to find vLLM ({e}); {INSTALL_HINT}") from None
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise EngineUnavailable(f"{why}; {INSTALL_HINT}")
    return r.stdout.strip()


CPU_BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"  # set by the user: used as given
SMALL_CPU_CORES = 4  # up to this many cores, one vLLM worker on CPU gets them all


class VLLMEngine(Engine):
    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "bfloat16",
                 tensor_parallel_size: int = 1, data_parallel_size: int = 1, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, chat_template: str | None = None, seed: int = 0,
                 concurrency: int = 64, max_retries: int = 8, startup_timeout_s: float | None = None,
                 python: str | None = None):
        from skyt1.engines.openai import OpenAIEngine

        self.model, self.revision, self.dtype = model, revision, dtype
        self.tp, self.dp, self.max_model_len = tensor_parallel_size, data_parallel_size, max_model_len
        self.seed = seed
        self.python = python or find_vllm_python()
        self.version = vllm_version(self.python)
        self.device = "cpu" if "cpu" in self.version else "cuda"
        self.per_request_seed = self.device != "cpu"
        self.gpu_memory_utilization = gpu_memory_utilization if self.device == "cuda" else None
        timeout = startup_timeout_s or float(os.environ.get(STARTUP_TIMEOUT_ENV, 3600))
        self.server = VLLMServer(self.python, [], env=server_env(self.device, self.tp * self.dp),
                                 startup_timeout_s=timeout)
        self.chat_template_sha256 = None
        self.server.serve_args = self._serve_args(chat_template)  # after: an inline template goes in server.dir
        self.server.start()
        try:
            self.served_max_model_len = self.server.max_model_len()
            self.client = OpenAIEngine(model, base_url=self.server.url, api_keys=["EMPTY"],
                                       concurrency=max(concurrency, IN_FLIGHT_PER_RANK * self.dp),
                                       max_retries=max_retries, timeout_s=REQUEST_TIMEOUT_S,
                                       check_server=self.server.check)
        except BaseException:
            self.server.stop()
            raise

    def _serve_args(self, chat_template: str | None) -> list[str]:
        args = [self.model, "--served-model-name", self.model, "--dtype", self.dtype,
                "--tensor-parallel-size", str(self.tp), "--data-parallel-size", str(self.dp),
                "--enable-prefix-caching", "--seed", str(self.seed),
                # Sampling is what each request says: no defaults taken from the model's generation_config.json.
                "--generation-config", "vllm", "--disable-uvicorn-access-log"]
        if self.revision:
            args += ["--revision", self.revision]
        if self.max_model_len:
            args += ["--max-model-len", str(self.max_model_len)]
        if self.device == "cuda":
            args += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        else:  # eager starts in half the time on CPU (RESEARCH.md section 7); VLLM_CPU_KVCACHE_SPACE overrides the size
            args += ["--enforce-eager", "--kv-cache-memory-bytes", str(CPU_KV_CACHE_BYTES)]
        if chat_template:
            path = Path(chat_template).expanduser()
            if "{" in chat_template or not path.is_file():  # the template text itself
                path = self.server.dir / "chat_template.jinja"
                path.write_text(chat_template)
            self.chat_template_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            args += ["--chat-template", str(path)]
        return args

    def info(self) -> dict:
        shown = [f"sha256:{self.chat_template_sha256}" if a.endswith("chat_template.jinja") else a
                 for a in self.server.serve_args]
        return {"backend": "vllm", "vllm": self.version, "device": self.device, "model": self.model,
                "revision": self.revision, "dtype": self.dtype, "tensor_parallel_size": self.tp,
                "data_parallel_size": self.dp, "max_model_len": self.served_max_model_len,
                "gpu_memory_utilization": self.gpu_memory_utilization, "per_request_seed": self.per_request_seed,
                "server_seed": self.seed, "server_args": ["vllm", "serve", *shown],
                "concurrency": self.client.concurrency, "max_retries": self.client.max_retries,
                "chat_template_sha256": self.chat_template_sha256,
                "cpu_threads_bind": self.server.env.get(CPU_BIND_ENV) if self.device == "cpu" else None}

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        self.server.check()
        yield from self.client.generate(self._fit(r) for r in requests)

    def _fit(self, r: Request) -> Request:
        """What this server can honour: vLLM refuses max_tokens above the context length (it trims the rest to
        what the prompt leaves, as the hf backend does), and on CPU it crashes on a request's own seed."""
        sp = r.sampling
        fitted = replace(sp, max_tokens=min(sp.max_tokens, self.served_max_model_len or sp.max_tokens),
                         seed=sp.seed if self.per_request_seed else None)
        return r if fitted == sp else replace(r, sampling=fitted)

    def close(self) -> None:
        self.server.stop()


def server_env(device: str, ranks: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("VLLM_NO_USAGE_STATS", "1")  # nothing leaves the machine
    env.setdefault("DO_NOT_TRACK", "1")
    if device == "cpu" and ranks == 1 and CPU_BIND_ENV not in env:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) <= SMALL_CPU_CORES:
            # vLLM's automatic binding keeps one core for its front end: on 2 cores the worker gets half the
            # machine (SmolLM2-135M: 157 tokens/s, 284 with both cores; benchmarks/RESULTS.md).
            env[CPU_BIND_ENV] = ",".join(map(str, cpus))
    return env
