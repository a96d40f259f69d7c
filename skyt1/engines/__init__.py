"""Generation backends behind one interface (`base.Engine`); build them from recipe sections here.

Backends are imported only when built, so a CPU machine never imports vllm and `skyt1 --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from skyt1.engines.base import Completion, Engine, EngineUnavailable, Request, SamplingParams

if TYPE_CHECKING:
    from skyt1.engines.openai import OpenAIEngine
    from skyt1.recipe import ApiModel
    from skyt1.recipe import Engine as EngineConfig

__all__ = [
    "Completion", "Engine", "EngineUnavailable", "Request", "SamplingParams",
    "api_engine", "make_engine", "resolve_api_keys", "sampling_from_api",
]

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def is_loopback(base_url: str | None) -> bool:
    return bool(base_url) and (urlparse(base_url).hostname or "") in _LOOPBACK


def resolve_api_keys(api_key_env: str, keys_file: str | None = None, base_url: str | None = None) -> list[str]:
    """Keys from `keys_file` (one per line, '#' comments) or the variable named `api_key_env`.

    A local server on loopback needs no key ("EMPTY" is sent). The error names the variable, never a value.
    """
    if keys_file:
        path = Path(keys_file).expanduser()
        if not path.is_file():
            raise EngineUnavailable(f"API keys file {keys_file} does not exist (expected one key per line)")
        keys = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not keys:
            raise EngineUnavailable(f"API keys file {keys_file} holds no keys (expected one key per line)")
        return keys
    key = os.environ.get(api_key_env, "").strip()
    if key:
        return [key]
    if is_loopback(base_url):
        return ["EMPTY"]
    where = base_url or "the OpenAI API"
    raise EngineUnavailable(
        f"no API key for {where}: set the environment variable {api_key_env} (or give a keys_file with one "
        "key per line)"
    )


def make_engine(cfg: EngineConfig, *, model: str | None = None) -> Engine:
    """The engine a recipe's `engine:` section describes; `model` overrides `cfg.model` (e.g. a local path)."""
    name = model or cfg.model
    if cfg.backend == "hf":
        from skyt1.engines.hf import HFEngine

        return HFEngine(name, revision=cfg.revision, dtype=cfg.dtype, batch_size=cfg.batch_size,
                        chat_template=cfg.chat_template)
    if cfg.backend == "openai":
        from skyt1.engines.openai import OpenAIEngine

        return OpenAIEngine(name, base_url=cfg.base_url,
                            api_keys=resolve_api_keys(cfg.api_key_env, base_url=cfg.base_url),
                            concurrency=cfg.concurrency, max_retries=cfg.max_retries)
    if cfg.backend == "vllm":
        from skyt1.engines.vllm import VLLMEngine

        return VLLMEngine(name, revision=cfg.revision, dtype=cfg.dtype,
                          tensor_parallel_size=cfg.tensor_parallel_size, data_parallel_size=cfg.data_parallel_size,
                          max_model_len=cfg.max_model_len, gpu_memory_utilization=cfg.gpu_memory_utilization,
                          chat_template=cfg.chat_template, concurrency=cfg.concurrency, max_retries=cfg.max_retries)
    raise ValueError(f"unknown engine backend {cfg.backend!r}; use vllm, openai or hf")


def api_engine(api: ApiModel) -> OpenAIEngine:
    """An OpenAIEngine for a recipe's `api:` section (labeling, reformatting)."""
    from skyt1.engines.openai import OpenAIEngine

    keys = resolve_api_keys(api.api_key_env, api.keys_file, api.base_url)
    return OpenAIEngine(api.model, base_url=api.base_url, api_keys=keys, concurrency=api.concurrency,
                        max_retries=api.max_retries, timeout_s=api.timeout_s)


def sampling_from_api(api: ApiModel, *, seed: int | None = None) -> SamplingParams:
    """SamplingParams matching an `api:` section (top_p None means the API default, 1.0)."""
    return SamplingParams(temperature=api.temperature, top_p=1.0 if api.top_p is None else api.top_p,
                          max_tokens=api.max_tokens, seed=seed)
