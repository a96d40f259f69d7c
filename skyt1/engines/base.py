"""The one interface every generation backend implements.

Engines know nothing of benchmarks or curation: they take chat requests and yield completions as each one
finishes (in any order), so callers can write and score results while generation continues.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None  # per request: makes a sample reproducible on engines that support it


@dataclass(frozen=True)
class Request:
    id: str
    messages: list[dict]  # [{"role": "system"|"user"|"assistant", "content": str}, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass(frozen=True)
class Completion:
    id: str
    text: str
    finish_reason: str  # "stop", "length", or "error: ..." when the engine gave up on this request
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EngineUnavailable(RuntimeError):
    """The backend cannot run here (e.g. vllm on a machine without a GPU); the message says what to do."""


class Engine(ABC):
    @abstractmethod
    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """Yield one completion per request, as soon as each is finished."""

    @abstractmethod
    def info(self) -> dict:
        """Backend, its version, model, revision, dtype and parallelism: recorded with every result."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
