"""The transport under :class:`~pokedata.fetch.http.PoliteClient`: one HTTP request, no redirects, on urllib3.

``requests`` spent ~1.2 ms of CPU per 50 KB file merging session settings, cookies and hooks, re-preparing
the URL and building its response: work the polite client does not need (it follows redirects, retries and
decides where credentials go itself). This module sends each hop straight through one shared, thread-safe
urllib3 ``PoolManager`` (keep-alive connections per origin) and wraps the answer in a small
:class:`Response` with the part of ``requests.Response`` the callers use.

What ``requests`` took from the environment is read once, when the transport is made: ``http(s)_proxy`` /
``all_proxy`` (``no_proxy`` is matched per URL, as ``requests`` does), and the CA bundle
(``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``, else certifi's, as ``requests`` picks it). Every socket a
connection opens is registered, so :meth:`Transport.sockets` can shut them all down (Ctrl-C, deadlines).
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
import weakref
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import urllib3
from urllib3.util import make_headers

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class Response:
    """A streamed answer: ``status_code``, ``reason``, ``headers`` (case-insensitive), ``url``, the body.

    Read the body with :meth:`iter_content` (streaming), :attr:`content`, :attr:`text` or :meth:`json`;
    close it (or use it as a context manager) to give the connection back: a body read to its end keeps
    the connection alive, one left half-read drops it.
    """

    def __init__(self, raw: Any, url: str):
        self.raw = raw  # the urllib3 response (its connection's socket is what the deadline watchdog cuts)
        self.url = url
        self.status_code: int = raw.status
        self.reason: str = raw.reason or ""
        self.headers = raw.headers
        self._content: bytes | None = None
        self._consumed = False

    @property
    def is_redirect(self) -> bool:
        return self.status_code in REDIRECT_STATUSES and "location" in self.headers

    def iter_content(self, chunk_size: int) -> Any:
        """The (content-decoded) body in chunks of up to ``chunk_size`` bytes."""
        yield from self.raw.stream(chunk_size, decode_content=True)
        self._consumed = True

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self.raw.read(decode_content=True)
            self._consumed = True
        return self._content

    @property
    def text(self) -> str:
        charset = self.headers.get("Content-Type", "").partition("charset=")[2].split(";")[0].strip(' "')
        try:
            return self.content.decode(charset or "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not (``json.JSONDecodeError`` or bad UTF-8)."""
        return json.loads(self.content)

    def close(self) -> None:
        if not self._consumed:
            self.raw.close()  # half-read: the connection cannot be reused
        self.raw.release_conn()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_params(url: str, params: dict | None) -> str:
    """``url`` with ``params`` appended to its query string (None values left out, lists repeated)."""
    if not params:
        return url
    pairs = [(k, v) for k, v in params.items() if v is not None]
    if not pairs:
        return url
    parts = urlsplit(url)
    query = urlencode(pairs, doseq=True)
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


class Transport:
    """One request at a time per call, many threads at once; see the module docstring."""

    def __init__(self, user_agent: str, pool_size: int):
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet = weakref.WeakSet()
        self._proxies, bundle = environment_settings()
        self._pool_kw: dict[str, Any] = {"maxsize": pool_size, "ca_certs": bundle or _certifi_bundle()}
        self._direct = self._manager(None)
        self._proxied: dict[str, urllib3.PoolManager] = {}
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate", "Accept": "*/*"}

    def send(self, url: str, *, auth: tuple[str, str] | None, timeout: float) -> Response:
        """GET ``url`` once (no redirects, no retries); raises urllib3's errors as they come."""
        headers = self._headers
        if auth is not None:
            headers = {**headers, **make_headers(basic_auth=f"{auth[0]}:{auth[1]}")}
        raw = self._manager_for(url).urlopen(
            "GET",
            url,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )
        return Response(raw, url)

    def sockets(self) -> list[Any]:
        """Every socket still open that a connection of this transport made."""
        with self._lock:
            return list(self._sockets)

    def close(self) -> None:
        with self._lock:
            managers = [self._direct, *self._proxied.values()]
            self._proxied = {}
        for manager in managers:
            manager.clear()

    def _manager_for(self, url: str) -> urllib3.PoolManager:
        if not self._proxies:
            return self._direct
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme.lower()) or self._proxies.get("all")
        if not proxy or urllib.request.proxy_bypass_environment(parts.hostname or "", self._proxies):
            return self._direct
        with self._lock:
            manager = self._proxied.get(proxy)
            if manager is None:
                manager = self._proxied[proxy] = self._manager(proxy)
            return manager

    def _manager(self, proxy: str | None) -> urllib3.PoolManager:
        # num_pools: origins kept alive at once (least recently used dropped first); a DuckDuckGo fetch
        # touches hundreds of hosts, which requests' per-thread sessions kept up to 32 each of.
        manager: urllib3.PoolManager
        if proxy is None:
            manager = urllib3.PoolManager(num_pools=128, **self._pool_kw)
        else:
            manager = urllib3.ProxyManager(proxy, num_pools=128, **self._pool_kw)
        _track_sockets(manager, self._sockets, self._lock)
        return manager


def environment_settings() -> tuple[dict[str, str], str | None]:
    """(proxies, CA bundle) from the environment, read once, as ``requests`` would take them."""
    proxies = {k.lower(): v for k, v in urllib.request.getproxies().items()}
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
    return proxies, bundle


def _certifi_bundle() -> str | None:
    try:
        import certifi
    except ImportError:  # then the system's store (urllib3's default)
        return None
    return certifi.where()


def _track_sockets(manager: urllib3.PoolManager, registry: weakref.WeakSet, lock: threading.Lock) -> None:
    """Make ``manager``'s connections register their sockets in ``registry`` once connected."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def tracked(base: type) -> type:
        def connect(self: Any) -> None:
            base.connect(self)
            sock = getattr(self, "sock", None)
            if sock is not None:
                with lock:
                    registry.add(sock)

        return type(f"Tracked{base.__name__}", (base,), {"connect": connect})

    http_pool = type("TrackedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": tracked(HTTPConnection)})
    https_pool = type("TrackedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tracked(HTTPSConnection)})
    manager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}
