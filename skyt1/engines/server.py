"""A small OpenAI-compatible HTTP server in front of any Engine.

It serves `GET /v1/models` and `POST /v1/chat/completions` (n, temperature, top_p, max_tokens, seed; usage
and finish_reason in the answer). Requests arriving while the engine is busy are generated together in its
next batch. A `FaultPlan` makes it misbehave deterministically (429/500 answers, slow answers) so clients'
retry paths can be tested against a real server. The demo runs it on loopback in front of the tiny teacher
as the stand-in for the GPT-4o-mini API.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from skyt1.engines.base import Completion, Engine, Request, SamplingParams

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 1024


@dataclass
class FaultPlan:
    """Which chat requests (counted from 0 in arrival order) fail or answer slowly; deterministic by `seed`."""

    fail_first: int = 0  # the first k requests fail
    fail_rate: float = 0.0  # later requests fail with this probability
    fail_matching: str | None = None  # requests whose last message contains this text always fail
    statuses: tuple[int, ...] = (500,)  # failing request i answers statuses[i % len(statuses)]
    retry_after_s: float | None = None  # Retry-After header sent with 429 answers
    slow_first: int = 0  # the first k requests wait delay_s before answering
    slow_rate: float = 0.0
    delay_s: float = 0.0
    seed: int = 0

    def decide(self, index: int, body: dict) -> tuple[int | None, float]:
        """(status to fail with or None, seconds to wait first) for request number `index`."""
        rng = random.Random(f"{self.seed}:{index}")
        fail_draw, slow_draw = rng.random(), rng.random()
        last = (body.get("messages") or [{}])[-1]
        matched = bool(self.fail_matching) and self.fail_matching in str(last.get("content", ""))
        fail = matched or index < self.fail_first or fail_draw < self.fail_rate
        slow = index < self.slow_first or slow_draw < self.slow_rate
        return (self.statuses[index % len(self.statuses)] if fail else None), (self.delay_s if slow else 0.0)


class _BadRequest(ValueError):
    pass


def _error_body(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _parse(body: dict) -> tuple[list[dict], SamplingParams, int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty list of {role, content}")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise _BadRequest("each message needs a role (system, user or assistant) and a string content")
    if body.get("stream"):
        raise _BadRequest("streaming is not supported by this server; send stream=false")
    n = body.get("n", 1) or 1
    if not isinstance(n, int) or not 1 <= n <= 128:
        raise _BadRequest(f"'n' must be an integer from 1 to 128, got {n!r}")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    try:
        sp = SamplingParams(
            temperature=float(1.0 if body.get("temperature") is None else body["temperature"]),
            top_p=float(1.0 if body.get("top_p") is None else body["top_p"]),
            max_tokens=int(max_tokens), seed=None if body.get("seed") is None else int(body["seed"]),
        )
    except (TypeError, ValueError) as e:
        raise _BadRequest(f"bad sampling parameter: {e}") from None
    if sp.temperature < 0 or not 0 < sp.top_p <= 1 or sp.max_tokens < 1:
        raise _BadRequest("need temperature >= 0, 0 < top_p <= 1 and max_tokens >= 1")
    return messages, sp, n


class _Batcher:
    """Feeds every request waiting at the moment the engine is free into one engine.generate call."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="skyt1-server-engine", daemon=True)
        self.thread.start()

    def submit(self, requests: list[Request]) -> list[Future]:
        futures = []
        for r in requests:
            f: Future = Future()
            self.queue.put((r, f))
            futures.append(f)
        return futures

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while (item := self.queue.get()) is not None:
            items = [item]
            while True:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)
                    break
                items.append(nxt)
            pending = {r.id: f for r, f in items}
            try:
                for c in self.engine.generate([r for r, _ in items]):
                    pending.pop(c.id).set_result(c)
                for f in pending.values():
                    f.set_exception(RuntimeError("the engine returned no completion for this request"))
            except Exception as e:  # noqa: BLE001 - reported to each waiting client as a 500
                log.exception("engine failed")
                for f in pending.values():
                    if not f.done():
                        f.set_exception(e)


@dataclass
class ServerHandle:
    url: str  # base URL for OpenAI clients, ending in /v1
    host: str
    port: int
    log: list[dict] = field(default_factory=list)  # one entry per request: path, authorization, status, body
    _stop: object = None

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(engine: Engine, host: str = "127.0.0.1", port: int = 0, faults: FaultPlan | None = None,
                 *, model_names: list[str] | None = None, api_keys: list[str] | None = None) -> ServerHandle:
    """Serve `engine` on host:port (0: a free port) in background threads; returns at once.

    model_names: names clients may ask for (None: any name). api_keys: accepted bearer keys (None: any).
    """
    batcher = _Batcher(engine)
    counter = iter(range(1 << 62))
    lock = threading.Lock()
    entries: list[dict] = []
    listed = model_names or [str(engine.info().get("model", "model"))]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: debug level, never the headers
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _record(self, status: int, body: dict | None) -> None:
            with lock:
                entries.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                "status": status, "body": body})

        def _authorized(self) -> bool:
            if api_keys is None:
                return True
            auth = self.headers.get("Authorization", "")
            return auth.startswith("Bearer ") and auth[len("Bearer "):] in api_keys

        def do_GET(self):
            if self.path.rstrip("/") in ("/health", "/v1/health"):
                return self._send(200, {"status": "ok"})
            if self.path.rstrip("/") != "/v1/models":
                return self._send(404, _error_body(f"no route {self.path}", "not_found_error"))
            if not self._authorized():
                return self._send(401, _error_body("invalid API key", "authentication_error", "invalid_api_key"))
            self._send(200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "skyt1"} for name in listed]})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, _error_body(f"no route {self.path}", "not_found_error"))
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
            except ValueError as e:
                self._record(400, None)
                return self._send(400, _error_body(f"invalid JSON body: {e}", "invalid_request_error"))
            with lock:
                index = next(counter)
            if not self._authorized():
                self._record(401, body)
                return self._send(401, _error_body("invalid API key", "authentication_error", "invalid_api_key"))
            status, delay = faults.decide(index, body) if faults else (None, 0.0)
            if delay:
                time.sleep(delay)
            if status is not None:
                self._record(status, body)
                headers = {"Retry-After": str(faults.retry_after_s)} if status == 429 and faults.retry_after_s else {}
                kind = "rate_limit_error" if status == 429 else "server_error"
                return self._send(status, _error_body(f"injected fault (request {index})", kind), headers)
            if model_names is not None and body.get("model") not in model_names:
                self._record(404, body)
                return self._send(404, _error_body(
                    f"model {body.get('model')!r} is not served here; available: {model_names}",
                    "not_found_error", "model_not_found"))
            try:
                messages, sp, n = _parse(body)
            except _BadRequest as e:
                self._record(400, body)
                return self._send(400, _error_body(str(e), "invalid_request_error"))
            rid = uuid.uuid4().hex
            reqs = [Request(f"{rid}-{j}", messages,
                            SamplingParams(sp.temperature, sp.top_p, sp.max_tokens,
                                           None if sp.seed is None else sp.seed + j)) for j in range(n)]
            try:
                done: list[Completion] = [f.result() for f in batcher.submit(reqs)]
            except Exception as e:  # noqa: BLE001
                self._record(500, body)
                return self._send(500, _error_body(f"generation failed: {e}", "server_error"))
            self._record(200, body)
            prompt_tokens = done[0].prompt_tokens
            completion_tokens = sum(c.completion_tokens for c in done)
            self._send(200, {
                "id": f"chatcmpl-{rid}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model") or listed[0],
                "choices": [{"index": j, "message": {"role": "assistant", "content": c.text},
                             "finish_reason": c.finish_reason, "logprobs": None} for j, c in enumerate(done)],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            })

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    serve_thread = threading.Thread(target=httpd.serve_forever, name="skyt1-server", daemon=True)
    serve_thread.start()
    bound_port = httpd.server_address[1]

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()
        batcher.stop()

    return ServerHandle(url=f"http://{host}:{bound_port}/v1", host=host, port=bound_port, log=entries, _stop=stop)
