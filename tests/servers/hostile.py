"""Hostile HTTP servers on 127.0.0.1 for the hardening tests (issue 14): stdlib, threaded, every one stoppable.

A :class:`HostileServer` answers each path with a handler function, so a test can script exactly the
misbehaviour it needs: bodies that drip one byte at a time, listings whose cursor never moves, JSON that
is nested 200,000 deep or holds ``1e400``, redirects to the API host on another port, huge
``Retry-After`` values. Every request is logged (:attr:`HostileServer.requests`: path with query, Host
header, ``Authorization`` header), so tests can check where credentials went and how often a URL was hit.

    with HostileServer() as srv:
        srv.route("/posts.json", json_body([{"id": 3, ...}]))     # the same page, whatever the cursor
        srv.route("/drip.jpg", drip(make_jpeg(1), every=0.2))      # one byte every 0.2 s
        srv.route("/hop", redirect("http://127.0.0.1:OTHER/x"))
        srv.url("/posts.json")

Handlers get the request handler (``h``) and write the answer with :func:`send`; a handler that loops
(drip) stops as soon as the client hangs up or :meth:`HostileServer.stop` is called.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class Request:
    path: str  # without the query
    query: dict[str, list[str]]
    host: str  # Host header, with port
    auth: str | None  # Authorization header as sent
    t: float  # time.monotonic() on arrival


class HostileServer:
    """A threaded server on 127.0.0.1 whose paths are answered by scripted handlers."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self.hits: Counter[str] = Counter()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def route(self, path: str, handler: Handler) -> str:
        with self.lock:
            self.routes[path] = handler
        return self.url(path)

    @property
    def port(self) -> int:
        assert self._server is not None, "start the server first"
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def start(self) -> HostileServer:
        handler = type("H", (_Handler,), {"app": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="hostile-server").start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # clients hanging up are expected here
        pass


class _Handler(BaseHTTPRequestHandler):
    app: HostileServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        app = self.app
        with app.lock:
            app.hits[parts.path] += 1
            app.requests.append(
                Request(parts.path, parse_qs(parts.query), self.headers.get("Host") or "",
                        self.headers.get("Authorization"), time.monotonic())
            )  # fmt: skip
            handler = app.routes.get(parts.path)
        if handler is None:
            send(self, 404, b"not found", "text/plain")
            return
        try:
            handler(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def send(
    h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str, headers: dict | None = None
) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def json_body(obj: Any = None, *, raw: bytes | None = None, status: int = 200) -> Handler:
    """Answer JSON (``obj`` dumped, or ``raw`` bytes as they are) whatever the query."""
    body = raw if raw is not None else json.dumps(obj).encode()
    return lambda h: send(h, status, body, "application/json")


def body(data: bytes, ctype: str = "image/jpeg", status: int = 200, headers: dict | None = None) -> Handler:
    return lambda h: send(h, status, data, ctype, headers)


def redirect(location: str) -> Handler:
    return lambda h: send(h, 302, b"", "text/plain", {"Location": location})


def drip(data: bytes, *, every: float = 0.2, chunk: int = 1, ctype: str = "image/jpeg") -> Handler:
    """Announce the whole length, then send ``chunk`` bytes every ``every`` seconds (each read succeeds
    long before any read timeout, so only an overall deadline stops it)."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        stopping = h.app.stopping  # type: ignore[attr-defined]
        for i in range(0, len(data), chunk):
            if stopping.is_set():
                return
            h.wfile.write(data[i : i + chunk])
            h.wfile.flush()
            stopping.wait(every)

    return handler


def retry_after(seconds: str, status: int = 429) -> Handler:
    return lambda h: send(h, status, b"slow down", "text/plain", {"Retry-After": seconds})


def query_of(h: BaseHTTPRequestHandler) -> dict[str, list[str]]:
    return parse_qs(urlsplit(h.path).query)


try:
    import pytest

    @pytest.fixture
    def hostile():
        with HostileServer() as srv:
            yield srv

except ImportError:  # pragma: no cover
    pass
