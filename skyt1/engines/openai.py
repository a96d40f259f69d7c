"""OpenAI-compatible backend: the OpenAI API, vLLM/SGLang servers, or `skyt1 serve` on loopback.

Asynchronous requests under a concurrency limit; retries with exponential backoff and jitter on 429, 5xx,
timeouts and connection errors (the SDK's own retries are off so every attempt is counted); API keys
rotated round-robin with one client per key (request i uses key i mod k, a retry moves on to the next
key); every sampling parameter passed through. A request that still fails after all retries becomes a
Completion whose finish_reason is "error: <reason>", so one bad request never ends a run.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import random
import threading
from collections.abc import Callable, Iterable, Iterator

from skyt1.engines.base import Completion, Engine, EngineUnavailable, Request
from skyt1.redact import redact_text

log = logging.getLogger(__name__)

_DONE = object()


class EngineConfigError(EngineUnavailable):
    """The server refused the configuration itself (bad key, unknown model): no request can succeed."""


class OpenAIEngine(Engine):
    def __init__(self, model: str, *, base_url: str | None = None, api_keys: list[str], concurrency: int = 16,
                 max_retries: int = 8, timeout_s: float = 600.0, backoff_base_s: float = 1.0,
                 backoff_max_s: float = 60.0, extra_params: dict | None = None,
                 check_server: Callable[[], None] | None = None):
        if not api_keys:
            raise EngineUnavailable("OpenAIEngine needs at least one API key (use 'EMPTY' for a local server)")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model, self.base_url = model, base_url
        self._keys = list(api_keys)
        self.concurrency, self.max_retries, self.timeout_s = concurrency, max_retries, timeout_s
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.extra_params = dict(extra_params or {})  # sent with every request (e.g. {"extra_body": {...}})
        # Raises when a server we own has died: a failed request then ends the run instead of retrying into the void.
        self.check_server = check_server
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "retries": 0, "failures": 0}
        self._next_key = itertools.count()  # request number -> key index, across generate() calls
        self._lock = threading.Lock()

    def info(self) -> dict:
        import openai

        return {"backend": "openai", "model": self.model, "base_url": self.base_url or "https://api.openai.com/v1",
                "openai": openai.__version__, "num_api_keys": len(self._keys), "concurrency": self.concurrency,
                "max_retries": self.max_retries, "timeout_s": self.timeout_s,
                "extra_params": sorted(self.extra_params)}

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                self.usage[k] += v

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        out: queue.Queue = queue.Queue()
        cancel = threading.Event()
        thread = threading.Thread(target=lambda: asyncio.run(self._run(requests, out, cancel)),
                                  name="skyt1-openai", daemon=True)
        thread.start()
        try:
            while (item := out.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()
            thread.join()

    async def _run(self, requests: Iterable[Request], out: queue.Queue, cancel: threading.Event) -> None:
        from openai import AsyncOpenAI

        clients = [AsyncOpenAI(api_key=k, base_url=self.base_url, max_retries=0, timeout=self.timeout_s)
                   for k in self._keys]
        work = asyncio.create_task(self._produce(requests, out, clients))
        while not work.done():  # the consumer may stop reading early: then stop at once
            await asyncio.wait({work}, timeout=0.2)
            if cancel.is_set():
                work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        for c in clients:
            await c.close()
        error = None if work.cancelled() else work.exception()
        out.put(error if error is not None else _DONE)

    async def _produce(self, requests: Iterable[Request], out: queue.Queue, clients: list) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task] = set()
        failure: list[BaseException] = []

        async def one(req: Request, number: int) -> None:
            try:
                out.put(await self._request(clients, req, number))
            except Exception as e:  # noqa: BLE001 - a configuration error stops the whole run
                failure.append(e)
            finally:
                slots.release()

        try:
            for req in requests:  # consumed lazily: a huge iterable is never held in memory at once
                await slots.acquire()
                if failure:
                    break
                task = asyncio.create_task(one(req, next(self._next_key)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks and not failure:
                await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if failure:
            raise failure[0]

    async def _request(self, clients: list, req: Request, number: int) -> Completion:
        import openai

        sp = req.sampling
        params = {"model": self.model, "messages": req.messages, "temperature": sp.temperature, "top_p": sp.top_p,
                  "max_tokens": sp.max_tokens, "n": 1, **self.extra_params}
        if sp.seed is not None:
            params["seed"] = sp.seed
        reason = "unknown"
        for attempt in range(self.max_retries + 1):
            client = clients[(number + attempt) % len(clients)]
            self._count(requests=1, retries=1 if attempt else 0)
            retry_after = None
            try:
                resp = await client.chat.completions.create(**params)
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as e:
                raise EngineConfigError(
                    f"{self.base_url or 'the OpenAI API'} refused the request ({e.status_code}): "
                    f"{redact_text(_message(e))}. Check the API key variable and the model name {self.model!r}."
                ) from None
            except openai.APIStatusError as e:
                if e.status_code not in (408, 409, 429) and e.status_code < 500:
                    reason = f"{e.status_code} {_message(e)}"
                    break  # a bad request fails the same way every time
                reason = f"{e.status_code} {_message(e)}"
                retry_after = _retry_after(e)
            except (openai.APITimeoutError, openai.APIConnectionError) as e:
                reason = f"{type(e).__name__}: {e}"
            else:
                usage = resp.usage
                self._count(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                            completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
                if resp.choices:
                    choice = resp.choices[0]
                    return Completion(req.id, choice.message.content or "", choice.finish_reason or "stop",
                                      getattr(usage, "prompt_tokens", 0) or 0,
                                      getattr(usage, "completion_tokens", 0) or 0)
                reason = "the server answered with no choices"
            if self.check_server is not None:
                self.check_server()
            if attempt < self.max_retries:
                await asyncio.sleep(self._backoff(attempt, retry_after))
        self._count(failures=1)
        reason = redact_text(reason)
        log.warning("request %s failed after %d attempt(s): %s", req.id, attempt + 1, reason)
        return Completion(req.id, "", f"error: {reason}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        return min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)


def _message(e) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(getattr(e, "message", e))[:300]


def _retry_after(e) -> float | None:
    try:
        value = e.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None
