"""Fixtures for the curation phases: recipes written to tmp dirs, the tiny model, and a real
OpenAI-compatible server on loopback in front of a scripted engine (the HTTP path, retries and key rotation
are real; the scripted engine decides what the "model" answers so that validation paths are exercised)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
import yaml

from skyt1.engines.base import Completion, Engine, Request
from skyt1.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
SECRET = "sk-skyt1TESTKEY0123456789abcdefXYZ"  # recognizable; grep for it in every output


class ScriptedEngine(Engine):
    """Answers each chat request with `reply(messages)`; counts calls."""

    def __init__(self, reply: Callable[[list[dict]], str]):
        self.reply, self.calls = reply, 0

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        for r in requests:
            self.calls += 1
            text = self.reply(r.messages)
            yield Completion(r.id, text, "stop", prompt_tokens=10, completion_tokens=len(text.split()))

    def info(self) -> dict:
        return {"backend": "scripted", "model": "scripted"}


def worked_answer(messages: list[dict]) -> str:
    """The worked answer a reformat prompt carries."""
    return messages[-1]["content"].split("Worked answer to rewrite:\n", 1)[-1]


def good_rewrite(messages: list[dict]) -> str:
    body = worked_answer(messages)
    parts = body.strip().split("\n\n")
    return (f"<|begin_of_thought|>\n\n{chr(10).join(parts[:-1]) or body}\n\n<|end_of_thought|>\n\n"
            f"<|begin_of_solution|>\n\n{parts[-1]}\n\n<|end_of_solution|>")


def drop_answer_rewrite(messages: list[dict]) -> str:
    return re.sub(r"\\boxed\{[^}]*\}", "the value", good_rewrite(messages))


@pytest.fixture
def serve():
    """serve(reply, faults=None, api_keys=None) -> ServerHandle; stopped after the test."""
    from skyt1.engines.server import start_server

    handles = []

    def start(reply, faults=None, api_keys=None):
        h = start_server(ScriptedEngine(reply), faults=faults, api_keys=api_keys)
        handles.append(h)
        return h

    yield start
    for h in handles:
        h.stop()


def base_recipe(model_dir: Path | str = "/nonexistent/teacher", api_url: str = "http://127.0.0.1:9/v1") -> dict:
    api = {"model": "scripted", "base_url": api_url, "api_key_env": "SKYT1_TEST_KEY", "temperature": 0.7,
           "max_tokens": 256, "concurrency": 4, "max_retries": 4, "timeout_s": 30,
           "usd_per_1m_input": 0.15, "usd_per_1m_output": 0.6}
    return {
        "name": "curation-test",
        "seed": 0,
        "sources": [
            {"name": "demo_math", "dataset": "demo", "domain": "math", "subset": "math", "count": 12},
            {"name": "demo_code", "dataset": "demo", "domain": "code", "subset": "code", "count": 4},
        ],
        "label": {"sources": ["demo_math"], "api": api},
        "distill": {"engine": {"backend": "hf", "model": str(model_dir), "dtype": "float32", "batch_size": 8},
                    "sampling": {"temperature": 0.7, "top_p": 1.0, "max_tokens": 24, "n": 2, "seed": 0},
                    "sources": ["demo_math", "demo_code"], "flush_every": 4},
        "reformat": {"mode": "llm", "api": api, "max_attempts": 2},
        "filter": {"math_timeout_s": 5, "code_timeout_s": 3, "memory_mb": 512, "workers": 2},
        "assemble": {"mixture": {"math": 100, "code": 100, "science": 0},
                     "decontam_benchmarks": ["aime24", "math500"]},
        "train": {"base_model": "Qwen/Qwen2.5-32B-Instruct", "cutoff_len": 512},
        "eval": {"data_dir": str(DATA)},
    }


@pytest.fixture
def write_recipe(tmp_path):
    def write(data: dict, name: str = "recipe.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_recipe(path), path

    return write


@pytest.fixture(autouse=True)
def _test_key(monkeypatch):
    monkeypatch.setenv("SKYT1_TEST_KEY", SECRET)
