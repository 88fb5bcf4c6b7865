"""A local image / fault HTTP server for tests and benchmarks (127.0.0.1 only, threaded, stdlib).

    with ImageServer() as srv:
        srv.add("/a.jpg", make_jpeg(1))                       # a good image
        srv.add("/slow.jpg", make_jpeg(2), delay=5)            # headers after 5 s
        srv.add("/cut.jpg", make_jpeg(3), truncate_to=100)     # Content-Length says more than is sent
        srv.add("/page.jpg", b"<html>...", content_type="image/jpeg")   # HTML served as an image
        srv.add("/flaky.jpg", make_jpeg(4), fail_first=2)      # two 500s, then the image
        srv.add("/busy.jpg", make_jpeg(5), fail_first=1, fail_status=429, retry_after="1")
        srv.add("/huge.jpg", make_jpeg(6), pad_to=10**6, no_length=True)  # 1 MB, no Content-Length
        srv.add("/away.jpg", redirect="file:///etc/passwd")
        srv.url("/a.jpg"); srv.hits["/a.jpg"]; srv.requests  # [Hit(t, path, host, auth)]

Every route counts its hits (``srv.hits``), and every request is logged with its arrival time and its
``Authorization`` header, so tests can check rates, resumes and where credentials went. Routes can be
added while the server runs. ``srv.other_host_url(path)`` reaches the same server as ``localhost``
(another host name, for per-host limits and auth scoping).
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it."""

    t: float  # time.monotonic() on arrival
    path: str
    host: str  # the Host header without port: 127.0.0.1 or localhost
    auth: str | None  # the Authorization header as sent


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "image/jpeg"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    fail_first: int = 0  # answer fail_status this many times first
    fail_status: int = 500
    retry_after: str | None = None  # Retry-After header of the failures
    truncate_to: int | None = None  # send only this many body bytes (Content-Length stays the full size)
    stall_after: int | None = None  # send this many bytes, then sleep `stall` seconds, then the rest
    stall: float = 0.0
    no_length: bool = False  # no Content-Length: the body ends when the connection closes
    redirect: str | None = None  # 302 to this Location


def make_jpeg(seed: int, size: int = 24, quality: int = 90) -> bytes:
    """A small, distinct, valid JPEG (noise seeded by ``seed``)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_png(seed: int, size: int = 24) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 4), dtype=np.uint8), "RGBA").save(buf, "PNG")
    return buf.getvalue()


class ImageServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 serving registered routes (see the module docstring)."""

    def __init__(self, *, require_auth: tuple[str, str] | None = None):
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[Hit] = []
        self.max_in_flight: dict[str, int] = {}  # Host header -> most requests in flight at once
        self._in_flight: Counter[str] = Counter()
        self.require_auth = require_auth
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routes -----------------------------------------------------------------------------------
    def add(self, path: str, body: bytes = b"", *, pad_to: int | None = None, **kw) -> str:
        """Register ``path``; ``pad_to`` pads the body with zero bytes to that size. Returns its URL."""
        if pad_to is not None and len(body) < pad_to:
            body = body + b"\0" * (pad_to - len(body))
        with self.lock:
            self.routes[path] = Route(body=body, **kw)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def other_host_url(self, path: str) -> str:
        return f"http://localhost:{self.port}{path}"

    @property
    def port(self) -> int:
        assert self._server is not None, "start the server first"
        return self._server.server_address[1]

    def times(self, path_prefix: str = "") -> list[float]:
        with self.lock:
            return [h.t for h in self.requests if h.path.startswith(path_prefix)]

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> ImageServer:
        handler = type("Handler", (_Handler,), {"app": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="image-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up early is expected
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    app: ImageServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers + body as two writes meet delayed ACKs: 40 ms a request

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server API)
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        app = self.app
        path = urlsplit(self.path).path
        auth = self.headers.get("Authorization")
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        with app.lock:
            app.hits[path] += 1
            hit = app.hits[path]
            app.requests.append(Hit(time.monotonic(), path, host, auth))
            route = app.routes.get(path)
            app._in_flight[host] += 1
            app.max_in_flight[host] = max(app.max_in_flight.get(host, 0), app._in_flight[host])
        self._in_flight_host: str | None = host
        try:
            self._answer(app, route, auth, hit)
        finally:
            self._leave()

    def _leave(self) -> None:
        """The request stops counting as in flight before its response's first byte is sent: the client
        cannot have finished it (and started another in its slot) earlier, so ``max_in_flight`` never
        counts a request the client already let go (counting until after the write did, under load)."""
        host = getattr(self, "_in_flight_host", None)
        if host is not None:
            self._in_flight_host = None
            with self.app.lock:
                self.app._in_flight[host] -= 1

    def send_response(self, code: int, message: str | None = None) -> None:
        self._leave()
        super().send_response(code, message)

    def _answer(self, app: ImageServer, route: Route | None, auth: str | None, hit: int) -> None:
        if app.require_auth is not None and not _auth_ok(auth, app.require_auth):
            return self._simple(401, b"login required", "text/plain", {"WWW-Authenticate": 'Basic realm="t"'})
        if route is None:
            return self._simple(404, b"not found", "text/plain")
        if route.delay:
            time.sleep(route.delay)
        if hit <= route.fail_first:
            extra = {"Retry-After": route.retry_after} if route.retry_after else {}
            return self._simple(route.fail_status, b"try again later", "text/plain", extra)
        if route.redirect:
            return self._simple(302, b"", "text/plain", {"Location": route.redirect})
        self._body(route)

    def _simple(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _body(self, route: Route) -> None:
        body = route.body
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        for k, v in route.headers.items():
            self.send_header(k, v)
        if route.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        cut = route.truncate_to is not None and route.truncate_to < len(body)
        if cut:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            if cut:
                self.wfile.write(body[: route.truncate_to])
                self.wfile.flush()
                return
            if route.stall_after is not None:
                self.wfile.write(body[: route.stall_after])
                self.wfile.flush()
                time.sleep(route.stall)
                body = body[route.stall_after :]
            for i in range(0, len(body), 64 * 1024):
                self.wfile.write(body[i : i + 64 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading (e.g. the size cap): fine


def _auth_ok(header: str | None, creds: tuple[str, str]) -> bool:
    import base64

    expected = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    return header == expected


try:  # a pytest fixture when pytest is around: `from servers.images import image_server`
    import pytest

    @pytest.fixture
    def image_server():
        with ImageServer() as srv:
            yield srv

except ImportError:  # pragma: no cover - benchmarks import this module without pytest
    pass
