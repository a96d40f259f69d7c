"""S3-compatible servers on loopback for tests: moto's standalone server and a fault-injecting proxy.

`MotoServer` runs moto's real HTTP server in a thread on 127.0.0.1. `FaultProxy` sits in front of it and,
for a chosen set of requests, answers 500 InternalError, 503 ServiceUnavailable, 503 SlowDown, resets the
connection, or hangs (reads the request and never answers) instead of forwarding; every other request is forwarded unchanged (Host header included, so
signatures still match).
"""

from __future__ import annotations

import http.client
import itertools
import random
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("500", "503", "slowdown", "reset", "hang")
TRANSIENT = FAULTS[:4]  # the faults injected by default (a hang waits for the client's timeout)
_ERROR_XML = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "trailer"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's standalone S3 server on a free loopback port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def __enter__(self) -> MotoServer:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 that injects S3 faults.

    Which requests fail: the first `first` requests, then each later one with probability `fraction`
    (seeded, so reproducible), or every request when `always` is set. Faults cycle through `modes`.
    Counters `requests` and `injected` say what happened.
    """

    def __init__(self, upstream: str, *, modes: tuple[str, ...] = TRANSIENT, first: int = 0,
                 fraction: float = 0.0, always: bool = False, seed: int = 0) -> None:
        unknown = set(modes) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault modes {sorted(unknown)}; choose from {FAULTS}")
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.first, self.fraction, self.always = first, fraction, always
        self._modes = itertools.cycle(modes)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.injected: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._stop = threading.Event()  # releases hanging requests at exit

    def configure(self, **kwargs) -> None:
        """Change `first`, `fraction`, `always`, `modes` or `seed` between phases of a test."""
        with self._lock:
            if "modes" in kwargs:
                self._modes = itertools.cycle(kwargs.pop("modes"))
            if "seed" in kwargs:
                self._random = random.Random(kwargs.pop("seed"))
            for k, v in kwargs.items():
                setattr(self, k, v)

    def _next_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            fail = self.always or self.requests <= self.first or self._random.random() < self.fraction
            if not fail:
                return None
            mode = next(self._modes)
            self.injected.append(mode)
            return mode

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends a TCP RST, what a dropped connection looks like to the client.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def _error(self, mode: str) -> None:
                status, code, message = _ERROR_XML[mode]
                body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                        f"<Message>{message}</Message><RequestId>fault</RequestId></Error>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                mode = proxy._next_fault()
                if mode == "reset":
                    return self._reset()
                if mode == "hang":  # a server that accepted the request and went silent
                    proxy._stop.wait(120)
                    return self._reset()
                if mode:
                    return self._error(mode)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                            conn.putheader(k, v)
                    conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    # HEAD answers carry the object's length without a body: keep the upstream header.
                    if k.lower() not in _HOP_BY_HOP and (k.lower() != "content-length" or self.command == "HEAD"):
                        self.send_header(k, v)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
