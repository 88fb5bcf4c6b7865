"""The polite HTTP client every fetch source shares.

:class:`PoliteClient` sends its requests through :mod:`pokedata.fetch.transport` (urllib3, one shared
connection pool) with what a long unattended crawl needs:

- only ``http``/``https``; redirects are followed by hand (at most :data:`MAX_REDIRECTS`) and one that
  leaves http(s) (``file://``, ``ftp://``, ...) is refused with ``FetchError("bad-scheme")``;
- per-host request rates (a token bucket per host, burst 1, so ``2/s`` means one request every 0.5 s),
  a per-host and a global concurrency cap (a slot is held until a streamed body is closed);
- retries with exponential backoff and full jitter on timeouts, connection errors, 429 and 5xx, honouring
  ``Retry-After`` (seconds or an HTTP date); a 429 also pauses every other request to that host;
- HTTP Basic credentials sent only to the exact origins (scheme, host, port) in ``auth_origins``, never
  after a redirect has left them, and never put in a message, log line or exception;
- a per-file deadline (``file_deadline``): a body still streaming when it passes is cut off (its socket is
  shut down by a watchdog, so even a server dripping one byte under the read timeout cannot hold a slot),
  and :meth:`PoliteClient.close` cuts every body in flight the same way (Ctrl-C stops within seconds).

Errors are :class:`FetchError` with a short ``reason`` code (``http-404``, ``timeout``, ``connection``,
``too-large``, ``bad-scheme``, ``too-many-redirects``, ...), which callers store in the ledger as is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import logging
import math
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from pokedata.errors import UserError

if TYPE_CHECKING:
    # the transport (urllib3) lazily: `poke fetch folder` and the dump scan import this module, not the network
    from pokedata.fetch.transport import Response, Transport

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10
DEFAULT_USER_AGENT = "poke/0.1 (+https://github.com/poke-ml/poke; dataset tool)"
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})


@dataclass
class HttpConfig:
    """How politely to fetch. One per run; see the module docstring for what each knob does."""

    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 30.0  # connect timeout, and the longest wait for any read of the body (seconds)
    retries: int = 5  # tries in all, per request
    backoff_base: float = 1.0  # exponential backoff with full jitter: uniform(0, base * 2**n), capped
    backoff_max: float = 60.0
    max_bytes: int = 50 * 2**20  # size cap, enforced while streaming
    global_concurrency: int = 16
    per_host_concurrency: int = 2
    host_rates: dict[str, float] = field(default_factory=dict)  # host -> requests/s (token bucket)
    default_rate: float | None = None  # requests/s for other hosts; None = unlimited
    auth: tuple[str, str] | None = None  # HTTP Basic (login, api_key); NEVER logged/printed/stored
    auth_origins: tuple[str, ...] = ()  # send auth only to these origins (scheme://host[:port])
    retry_after_max: float = 600.0  # longest Retry-After honoured (seconds); longer ones are capped
    file_deadline: float | None = 600.0  # longest time one file may take to stream, all tries (None: none)

    def validate(self) -> HttpConfig:
        checks = (
            (self.timeout > 0, "timeout must be > 0 seconds"),
            (self.retries >= 1, "retries must be >= 1 (tries in all)"),
            (self.backoff_base >= 0 and self.backoff_max >= 0, "backoff must be >= 0"),
            (self.max_bytes > 0, "max_bytes must be > 0"),
            (self.global_concurrency >= 1, "--concurrency must be >= 1"),
            (self.per_host_concurrency >= 1, "--per-host must be >= 1"),
            (self.default_rate is None or self.default_rate > 0, "the default rate must be > 0 requests/s"),
            (all(r > 0 for r in self.host_rates.values()), "host rates must be > 0 requests/s"),
            (bool(self.user_agent.strip()), "--user-agent must not be empty"),
            (_finite_pos(self.retry_after_max), "--max-retry-after must be > 0 seconds"),
            (
                self.file_deadline is None or _finite_pos(self.file_deadline),
                "--file-timeout must be > 0 seconds",
            ),
            (all(origin_of(o) == o for o in self.auth_origins), "auth origins must be scheme://host:port"),
        )
        for ok, message in checks:
            if not ok:
                raise UserError(f"HTTP settings: {message}", hint="fix the option and rerun")
        return self

    def __repr__(self) -> str:  # never show credentials, even in a traceback or a debug log
        auth = "(hidden)" if self.auth else None
        return (
            f"HttpConfig(user_agent={self.user_agent!r}, timeout={self.timeout}, retries={self.retries}, "
            f"global_concurrency={self.global_concurrency}, per_host_concurrency={self.per_host_concurrency}, "
            f"host_rates={self.host_rates!r}, default_rate={self.default_rate}, auth={auth}, "
            f"auth_origins={self.auth_origins!r}, file_deadline={self.file_deadline})"
        )


def with_limits(cfg: HttpConfig, file_timeout: float | None, max_retry_after: float | None) -> HttpConfig:
    """``cfg`` with ``--file-timeout`` / ``--max-retry-after`` applied (None keeps its value)."""

    changes: dict[str, float] = {}
    if file_timeout is not None:
        changes["file_deadline"] = file_timeout
    if max_retry_after is not None:
        changes["retry_after_max"] = max_retry_after
    return dataclasses.replace(cfg, **changes).validate()


class FetchError(Exception):
    """A request that did not give a usable answer. ``reason`` is a short code kept in the ledger.

    ``response`` is the last HTTP response when there was one (its body already read), e.g. a 422's
    JSON explanation. ``retryable`` says whether trying again later could help.
    """

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        response: Response | None = None,
        retryable: bool = False,
    ):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.response = response
        self.retryable = retryable


def redact_url(url: str) -> str:
    """The URL without ``user:password@`` (safe to log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def origin_of(url: str) -> str:
    """``scheme://host:port`` of an URL, lower-case, with the default port filled in ('' when unparseable).

    Credentials go only to an exact origin: the same host on another port or scheme is another origin.
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return ""
    if not scheme or not host or port is None:
        return ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def has_credentials(url: str) -> bool:
    """True when the URL holds ``user[:password]@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None or "@" in parts.netloc


def _finite_pos(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def host_of(url: str) -> str:
    """Lower-case host name of an URL, without port ('' when there is none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Host:
    """Per-host state: concurrency slots, the token bucket (burst 1), and a 429 pause."""

    def __init__(self, rate: float | None, concurrency: int):
        self.slots = threading.BoundedSemaphore(concurrency)
        self.interval = 1.0 / rate if rate else 0.0
        self.next_free = 0.0  # monotonic time of the next allowed request
        self.paused_until = 0.0  # set by a 429 / 503 with Retry-After
        self.lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next request slot in time; returns how long to sleep before sending it."""
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free, self.paused_until)
            self.next_free = start + self.interval
            return start - now

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)


class PoliteClient:
    """Thread-safe polite HTTP client; one per fetch run. Use as a context manager or call :meth:`close`."""

    def __init__(self, cfg: HttpConfig):
        from pokedata.fetch.transport import Transport  # urllib3: fails here, clearly, when it is missing

        self.cfg = cfg.validate()
        self._global = threading.BoundedSemaphore(cfg.global_concurrency)
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        self._transport: Transport = Transport(cfg.user_agent, max(4, cfg.per_host_concurrency))
        self._closed = threading.Event()
        self._auth_origins = frozenset(cfg.auth_origins)
        self._watchdog = _Watchdog()

    # -- plumbing ---------------------------------------------------------------------------------------
    def __enter__(self) -> PoliteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop: sleeping retries wake up and fail with ``cancelled``; connections are closed."""
        self._closed.set()
        self.abort_in_flight()
        self._watchdog.stop()
        self._transport.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def abort_in_flight(self) -> None:
        """Shut down every connection this client opened: reads blocked in other threads end at once."""
        for sock in self._transport.sockets():
            _shutdown(sock)

    def watch(self, resp: Response, deadline: float) -> _Watch:
        """Cut ``resp``'s connection at ``deadline`` (``time.monotonic()``); use as a context manager."""
        return self._watchdog.watch(resp, deadline)

    def _host(self, url: str) -> _Host:
        parts = urlsplit(url)
        name = (parts.hostname or "").lower()
        with self._hosts_lock:
            state = self._hosts.get(name)
            if state is None:
                netloc = parts.netloc.rsplit("@", 1)[-1].lower()
                rate = self.cfg.host_rates.get(netloc, self.cfg.host_rates.get(name, self.cfg.default_rate))
                state = self._hosts[name] = _Host(rate, self.cfg.per_host_concurrency)
            return state

    def wait_backoff(self, attempt: int) -> None:
        """Sleep before try ``attempt + 2`` (exponential backoff, full jitter); wakes up on :meth:`close`."""
        self._sleep(self._backoff(attempt))

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._closed.wait(seconds):
            raise FetchError("cancelled", "the client was closed")

    def _backoff(self, attempt: int) -> float:
        cap = min(self.cfg.backoff_max, self.cfg.backoff_base * (2**attempt))
        return random.uniform(0, cap)

    # -- one request, one hop ---------------------------------------------------------------------------
    def _send(self, url: str, params: dict | None, send_auth: bool = True) -> Response:
        """One HTTP request (no redirects) inside the host's and the global slots, after the rate wait.

        The returned response holds both slots until it is closed.
        """
        from pokedata.fetch.transport import with_params

        if self._closed.is_set():
            raise FetchError("cancelled", "the client was closed")
        host = self._host(url)
        host.slots.acquire()
        self._global.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._global.release()
                host.slots.release()

        try:
            if self._closed.is_set():  # closed while this request waited for its slots
                raise FetchError("cancelled", "the client was closed")
            self._sleep(host.reserve())
            auth = self.cfg.auth if send_auth and origin_of(url) in self._auth_origins else None
            resp = self._transport.send(with_params(url, params), auth=auth, timeout=self.cfg.timeout)
        except BaseException as exc:
            release()
            error = send_error(exc, self.cfg.timeout)
            if error is None or error is exc:
                raise
            raise error from exc
        original_close = resp.close

        def close() -> None:
            try:
                original_close()
            finally:
                release()

        resp.close = close  # type: ignore[method-assign]
        return resp

    def _follow(self, url: str, params: dict | None) -> Response:
        """One try: send, then follow redirects by hand (http/https only). Returns a 2xx/4xx/5xx response."""
        send_auth = True  # credentials never follow a redirect that left their origin, even back to it
        for _ in range(MAX_REDIRECTS + 1):
            check_scheme(url)
            resp = self._send(url, params, send_auth)
            if not (resp.is_redirect and "location" in resp.headers):
                return resp
            target = urljoin(resp.url, resp.headers["location"])
            if origin_of(target) != origin_of(url):
                send_auth = False
            resp.close()
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise FetchError("bad-scheme", f"redirect to {urlsplit(target).scheme}:// refused")
            url, params = target, None  # the query string is part of the redirect target
        raise FetchError("too-many-redirects", f"more than {MAX_REDIRECTS}")

    # -- public -------------------------------------------------------------------------------------------
    def request(self, url: str, *, params: dict | None = None) -> Response:
        """GET ``url`` with retries; returns an open (streaming) 2xx response or raises :class:`FetchError`.

        The caller must close the response (``with client.request(url) as resp:``): until then it holds
        a concurrency slot of its host.
        """
        last: FetchError | None = None
        for attempt in range(self.cfg.retries):
            if attempt:
                assert last is not None
                retry_after = getattr(last, "retry_after", None)
                wait = self._backoff(attempt - 1)
                if retry_after is not None:
                    wait = max(wait, min(retry_after, self.cfg.retry_after_max))
                    if wait >= 5 or retry_after_asked(last) > wait:  # say what a long or capped wait is
                        log.warning(
                            "%s answered %s with Retry-After %.0fs: waiting %.0fs before try %d/%d "
                            "(longest wait: --max-retry-after %.0fs)", host_of(url), last.reason,
                            retry_after_asked(last), wait, attempt + 1, self.cfg.retries, self.cfg.retry_after_max,
                        )  # fmt: skip
                log.debug("retry %d/%d of %s in %.2fs (%s)", attempt + 1, self.cfg.retries, redact_url(url),
                          wait, last.reason)  # fmt: skip
                self._sleep(wait)
            try:
                resp = self._follow(url, params)
            except FetchError as exc:
                if not exc.retryable:
                    raise
                last = exc
                continue
            if resp.status_code < 400:
                return resp
            last = self._status_error(url, resp)
            if not last.retryable:
                raise last
        assert last is not None
        raise FetchError(
            last.reason,
            f"{last.detail or last.reason} (gave up after {self.cfg.retries} tries)",
            response=last.response,
        )

    def _status_error(self, url: str, resp: Response) -> FetchError:
        code = resp.status_code
        try:
            resp.content  # noqa: B018  (read the (small) error body so callers can show it)
        except Exception:  # noqa: BLE001  (a broken error body is still an error with a status)
            pass
        finally:
            resp.close()
        retryable = code in _RETRY_STATUSES or code >= 500
        err = FetchError(f"http-{code}", resp.reason or "", response=resp, retryable=retryable)
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if retry_after is not None and retryable:
            err.retry_after_asked = retry_after  # type: ignore[attr-defined]
            err.retry_after = min(retry_after, self.cfg.retry_after_max)  # type: ignore[attr-defined]
            self._host(url).pause(err.retry_after)  # type: ignore[attr-defined]
        return err

    def get(self, url: str, *, params: dict | None = None, stream: bool = False) -> Response:
        """GET with retries. ``stream=False`` reads the body and frees the slot; else the caller closes it."""
        resp = self.request(url, params=params)
        if stream:
            return resp
        try:
            if int(resp.headers.get("Content-Length") or 0) > self.cfg.max_bytes:
                raise FetchError("too-large", f"Content-Length over {self.cfg.max_bytes} bytes")
            body = bytearray()
            for chunk in resp.iter_content(64 * 1024):
                body += chunk
                if len(body) > self.cfg.max_bytes:
                    raise FetchError("too-large", f"body over {self.cfg.max_bytes} bytes")
            resp._content = bytes(body)  # noqa: SLF001  (the body, read: .json() / .text use it)
        except FetchError:
            raise
        except Exception as exc:  # noqa: BLE001  (urllib3's body errors: truncated, reset, timeout)
            raise body_error(exc) from exc
        finally:
            resp.close()
        return resp

    def get_json(self, url: str, *, params: dict | None = None) -> Any:
        """GET and decode JSON. Broken bodies are retried like connection errors; bad JSON is ``bad-json``."""
        last: FetchError | None = None
        for attempt in range(self.cfg.retries):
            if attempt:
                self._sleep(self._backoff(attempt - 1))
            try:
                resp = self.get(url, params=params)
            except FetchError as exc:
                if not exc.retryable:  # a broken body; request() already spent its tries on the rest
                    raise
                last = exc
                continue
            try:
                return resp.json()
            except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
                raise FetchError(
                    "bad-json", f"{redact_url(resp.url)} did not answer JSON", response=resp
                ) from exc
        assert last is not None
        raise last


def retry_after_asked(err: FetchError) -> float:
    """The Retry-After the server asked for (before the cap)."""
    return float(getattr(err, "retry_after_asked", getattr(err, "retry_after", 0.0)) or 0.0)


def check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in ("http", "https"):
        raise FetchError("bad-scheme", f"only http(s) URLs are fetched, not {scheme or 'no scheme'!r}")


def send_error(exc: BaseException, timeout: float) -> FetchError | None:
    """The :class:`FetchError` of an exception raised while sending a request (None: not a network error)."""
    import http.client

    from urllib3 import exceptions as u3

    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, u3.TimeoutError) and not isinstance(exc, u3.NewConnectionError):
        return FetchError("timeout", f"no answer within {timeout:g}s", retryable=True)
    if isinstance(exc, u3.LocationValueError | http.client.InvalidURL):
        return FetchError("bad-url", type(exc).__name__)
    if isinstance(exc, u3.NewConnectionError | u3.ProtocolError | u3.SSLError | u3.ProxyError | OSError):
        return FetchError("connection", _short(exc), retryable=True)
    if isinstance(exc, u3.HTTPError | http.client.HTTPException):
        return FetchError("request", _short(exc))
    return None


def body_error(exc: BaseException) -> FetchError:
    """A FetchError for an exception raised while reading a body (all retryable)."""
    from urllib3 import exceptions as u3

    text = _short(exc)
    if isinstance(exc, u3.TimeoutError) or "timed out" in text.lower():
        return FetchError("timeout", "the body stalled", retryable=True)
    if "IncompleteRead" in text or "incomplete" in text.lower() or "prematurely" in text.lower():
        return FetchError("truncated", "the connection closed before the whole body came", retryable=True)
    return FetchError("connection", text, retryable=True)


def _short(exc: BaseException) -> str:
    """An exception as one short line, without anything that could carry credentials."""
    text = f"{type(exc).__name__}: {exc}"
    return type(exc).__name__ if "@" in text else text[:300]


def _shutdown(sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError, ValueError):
        sock.shutdown(socket.SHUT_RDWR)


def _socket_of(resp: Any) -> Any:
    """The socket under a streamed :class:`~pokedata.fetch.transport.Response` (None when it has none any more)."""
    raw = getattr(resp, "raw", None)
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock


class _Watch:
    """One watched body: cut off when its deadline passes (``expired`` is then True)."""

    def __init__(self, dog: _Watchdog, sock: Any, deadline: float):
        self.dog, self.sock, self.deadline = dog, sock, deadline
        self.expired = False

    def __enter__(self) -> _Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dog.unwatch(self)


class _Watchdog:
    """One thread per client that shuts down the sockets of bodies past their deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: set[_Watch] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._wake_at = math.inf  # when the thread wakes up next: a later deadline need not wake it now

    def watch(self, resp: Any, deadline: float) -> _Watch:
        w = _Watch(self, _socket_of(resp), deadline)
        if time.monotonic() >= deadline:
            w.expired = True
            _shutdown(w.sock)
            return w
        with self._cond:
            self._watches.add(w)
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="poke-deadline", daemon=True)
                self._thread.start()
            if deadline < self._wake_at:
                self._cond.notify()
        return w

    def unwatch(self, w: _Watch) -> None:
        with self._cond:
            self._watches.discard(w)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                for w in [w for w in self._watches if w.deadline <= now]:
                    w.expired = True
                    self._watches.discard(w)
                    _shutdown(w.sock)
                nxt = min((w.deadline for w in self._watches), default=None)
                self._wake_at = math.inf if nxt is None else max(now + 0.01, nxt)
                self._cond.wait(None if nxt is None else self._wake_at - now)
