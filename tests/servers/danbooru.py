"""A fake Danbooru on 127.0.0.1 that speaks enough of the real JSON API for the fetch tests.

Endpoints: ``/posts.json`` (tag AND, ``-tag``, ``rating:g,s``, ``limit`` capped at 200, ``page=N`` /
``b<id>`` / ``a<id>``, the tag limit: 2 terms anonymous, 6 for the Gold test user authenticated with HTTP
Basic, HTTP 422 beyond, ``rating:`` and the other free metatags not counted; 410 past page 1000), ``/counts/posts.json``, ``/tags.json`` (``search[name_matches]``
with ``*`` wildcards, ``search[category]``, ``search[order]=count|name``), ``/tag_aliases.json``
(``search[antecedent_name]``, ``search[status]``) and the files under ``/data/original/`` and
``/data/sample/``, each served with its true md5 (tiny JPEG/PNG made in memory, one colour per post).

Faults on demand: :meth:`FakeDanbooru.throttle` (429 with ``Retry-After``), :meth:`corrupt` (wrong bytes
for a post, so its md5 fails).

Use as a context manager or through the ``fake_danbooru`` pytest fixture::

    with FakeDanbooru() as srv:
        srv.add_post(1, character=["pikachu"], copyright=["pokemon"])
        srv.base_url        # http://127.0.0.1:PORT  (API)
        srv.file_base_url   # http://localhost:PORT  (files: another host name, like cdn.donmai.us)

Every request is logged in ``srv.requests`` (path, query, host, user: the Basic-auth login or None, t:
its ``time.monotonic()``).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

GOLD_USER = ("gold_user", "gold-api-key-0123456789")
MEMBER_USER = ("member_user", "member-api-key-9876543210")
TAG_LIMITS = {"anonymous": 2, "member": 2, "gold": 6}
CATEGORIES = {"general": 0, "artist": 1, "copyright": 3, "character": 4, "meta": 5}
IMAGE_EXTS = {"jpg", "png"}
# Metatags that do not count against the tag limit (Danbooru's PostQuery::UNLIMITED_METATAGS).
FREE_METATAGS = {"status", "rating", "limit", "is", "id", "date", "age", "filesize", "filetype", "parent",
                 "child", "md5", "width", "height", "duration", "mpixels", "ratio", "score", "upvote",
                 "downvotes", "favcount", "embedded", "tagcount", "pixiv_id", "pixiv"}  # fmt: skip


def make_image(seed: int, ext: str, size: int = 12) -> bytes:
    """A tiny image whose pixels depend on ``seed`` (so every post has distinct bytes)."""
    from PIL import Image

    h = hashlib.sha256(str(seed).encode()).digest()
    im = Image.new("RGB", (size, size), (h[0], h[1], h[2]))
    im.putpixel((seed % size, (seed // size) % size), (h[3], h[4], h[5]))
    buf = io.BytesIO()
    im.save(buf, "PNG" if ext == "png" else "JPEG", quality=90)
    return buf.getvalue()


@dataclass
class FakePost:
    id: int
    character: list[str] = field(default_factory=list)
    copyright: list[str] = field(default_factory=list)
    artist: list[str] = field(default_factory=list)
    general: list[str] = field(default_factory=list)
    rating: str = "g"
    ext: str = "jpg"
    score: int = 10
    deleted: bool = False
    banned: bool = False
    hidden: bool = False  # no md5 / file_url in the API (censored or Gold-only)
    data: bytes = b""
    sample: bytes = b""

    @property
    def tags(self) -> list[str]:
        return [*self.artist, *self.copyright, *self.character, *self.general]

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


class FakeDanbooru:
    """The server. Add posts, tags and aliases, then point the client at :attr:`base_url`."""

    def __init__(self) -> None:
        self.posts: dict[int, FakePost] = {}
        self.tags: list[dict[str, Any]] = []
        self.aliases: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.answered: list[list[int]] = []
        self.file_hits: Counter[str] = Counter()
        self._throttle: dict[str, Any] = {"n": 0, "retry_after": "1", "paths": ()}
        self._corrupt: set[int] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- data -------------------------------------------------------------------------------------
    def add_post(self, post_id: int, **fields: Any) -> FakePost:
        post = FakePost(id=post_id, **fields)
        if post.ext in IMAGE_EXTS:
            post.data = post.data or make_image(post_id, post.ext)
            post.sample = post.sample or make_image(post_id + 10_000_000, "jpg", size=8)
        else:
            post.data = post.data or f"not an image: {post.ext} {post_id}".encode()
        self.posts[post_id] = post
        return post

    def add_tag(self, name: str, post_count: int, category: str | int = "character") -> None:
        cat = CATEGORIES[category] if isinstance(category, str) else category
        self.tags.append(
            {"id": len(self.tags) + 1, "name": name, "post_count": post_count, "category": cat,
             "is_deprecated": False, "created_at": "2020-01-01T00:00:00.000-05:00"}
        )  # fmt: skip

    def add_alias(self, antecedent: str, consequent: str, status: str = "active") -> None:
        self.aliases.append(
            {"id": len(self.aliases) + 1, "antecedent_name": antecedent, "consequent_name": consequent,
             "status": status}
        )  # fmt: skip

    def throttle(self, n: int, retry_after: str = "1", paths: tuple[str, ...] = ("/posts.json",)) -> None:
        """Answer the next ``n`` requests to ``paths`` with 429 and ``Retry-After: retry_after``."""
        with self._lock:
            self._throttle = {"n": n, "retry_after": retry_after, "paths": paths}

    def corrupt(self, post_id: int) -> None:
        """Serve other bytes than the post's md5 promises (a valid image, but the wrong one)."""
        self._corrupt.add(post_id)

    # -- serving ----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def file_base_url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> FakeDanbooru:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeDanbooru:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api_requests(self, path: str = "/posts.json") -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    # -- API views --------------------------------------------------------------------------------
    def post_json(self, post: FakePost) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": post.id,
            "created_at": f"2023-01-{1 + post.id % 28:02d}T12:00:00.000-05:00",
            "score": post.score,
            "source": f"https://example.invalid/art/{post.id}",
            "rating": post.rating,
            "image_width": 12,
            "image_height": 12,
            "tag_string": " ".join(post.tags),
            "tag_string_general": " ".join(post.general),
            "tag_string_character": " ".join(post.character),
            "tag_string_copyright": " ".join(post.copyright),
            "tag_string_artist": " ".join(post.artist),
            "tag_string_meta": "",
            "file_ext": post.ext,
            "file_size": len(post.data),
            "is_deleted": post.deleted,
            "is_banned": post.banned,
            "is_pending": False,
            "has_large": post.ext in IMAGE_EXTS,
        }
        if not post.hidden:
            m = post.md5
            d["md5"] = m
            d["file_url"] = f"{self.file_base_url}/data/original/{m[:2]}/{m[2:4]}/{m}.{post.ext}"
            if post.ext in IMAGE_EXTS:
                d["large_file_url"] = f"{self.file_base_url}/data/sample/{m[:2]}/{m[2:4]}/sample-{m}.jpg"
            else:
                d["large_file_url"] = d["file_url"]
        return d

    def matching(self, terms: list[str]) -> list[FakePost]:
        include, exclude, ratings = set(), set(), None
        for t in terms:
            if t.startswith("rating:"):
                ratings = set(t.split(":", 1)[1].split(","))
            elif t.startswith("-"):
                exclude.add(t[1:])
            else:
                include.add(t)
        out = []
        for post in sorted(self.posts.values(), key=lambda p: -p.id):
            tags = set(post.tags)
            if include <= tags and not (exclude & tags) and (ratings is None or post.rating in ratings):
                out.append(post)
        return out


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeDanbooru
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _user(self) -> tuple[str | None, bool]:
        """(login or None, credentials valid)."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None, True
        try:
            login, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return "?", False
        return login, (login, key) in (GOLD_USER, MEMBER_USER)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8", headers)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        st = self.server_state
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        login, valid = self._user()
        with st._lock:
            st.requests.append(
                {"path": url.path, "query": query, "host": self.headers.get("Host", ""), "user": login,
                 "t": time.monotonic()}
            )  # fmt: skip
            thr = st._throttle
            if thr["n"] > 0 and url.path in thr["paths"]:
                thr["n"] -= 1
                return self._json(429, {"success": False, "message": "Too many requests"},
                                  {"Retry-After": thr["retry_after"]})  # fmt: skip
        if not valid:
            return self._json(401, {"success": False, "message": "Invalid API key"})
        level = "gold" if login == GOLD_USER[0] else "member" if login else "anonymous"
        if url.path == "/posts.json":
            return self._posts(query, TAG_LIMITS[level])
        if url.path == "/counts/posts.json":
            terms = query.get("tags", "").split()
            return self._json(200, {"counts": {"posts": len(st.matching(terms))}})
        if url.path == "/tags.json":
            return self._json(200, self._tags(query))
        if url.path == "/tag_aliases.json":
            return self._json(200, self._aliases(query))
        if url.path.startswith("/data/"):
            return self._file(url.path)
        return self._json(404, {"success": False, "message": "not found"})

    def _posts(self, query: dict[str, str], tag_limit: int) -> None:
        st = self.server_state
        terms = query.get("tags", "").split()
        counted = [t for t in terms if t.lstrip("-").split(":", 1)[0] not in FREE_METATAGS or ":" not in t]
        if len(counted) > tag_limit:
            return self._json(
                422,
                {"success": False, "error": "PostQuery::TagLimitError",
                 "message": f"You cannot search for more than {tag_limit} tags at a time."},
            )  # fmt: skip
        try:
            limit = max(1, min(200, int(query.get("limit", "20"))))
        except ValueError:
            limit = 20
        posts = st.matching(terms)
        page = query.get("page", "1")
        if page.startswith("b"):
            chosen = [p for p in posts if p.id < int(page[1:])][:limit]
        elif page.startswith("a"):
            chosen = [p for p in posts if p.id > int(page[1:])][-limit:]
        else:
            n = int(page or "1")
            if n > 1000:
                return self._json(410, {"success": False, "message": "You cannot go beyond page 1000."})
            chosen = posts[(n - 1) * limit : n * limit]
        with st._lock:
            st.answered.append([p.id for p in chosen])  # the post ids of each /posts.json answer, in order
        return self._json(200, [st.post_json(p) for p in chosen])

    def _tags(self, query: dict[str, str]) -> list[dict[str, Any]]:
        rows = list(self.server_state.tags)
        if "search[name_matches]" in query:
            pattern = query["search[name_matches]"].lower()
            rows = [t for t in rows if fnmatch.fnmatchcase(t["name"], pattern)]
        if "search[category]" in query:
            rows = [t for t in rows if str(t["category"]) == query["search[category]"]]
        if query.get("search[hide_empty]") in ("true", "1", "yes"):
            rows = [t for t in rows if t["post_count"] > 0]
        order = query.get("search[order]", "date")
        if order == "count":
            rows.sort(key=lambda t: -t["post_count"])
        elif order == "name":
            rows.sort(key=lambda t: t["name"])
        return rows[: min(1000, int(query.get("limit", "20") or 20))]

    def _aliases(self, query: dict[str, str]) -> list[dict[str, Any]]:
        rows = list(self.server_state.aliases)
        if "search[antecedent_name]" in query:
            rows = [a for a in rows if a["antecedent_name"] == query["search[antecedent_name]"]]
        if "search[status]" in query:
            rows = [a for a in rows if a["status"] == query["search[status]"].lower()]
        return rows[: min(1000, int(query.get("limit", "20") or 20))]

    def _file(self, path: str) -> None:
        st = self.server_state
        name = path.rsplit("/", 1)[-1]
        sample = name.startswith("sample-")
        md5 = name.removeprefix("sample-").split(".", 1)[0]
        for post in st.posts.values():
            if not post.hidden and post.md5 == md5:
                with st._lock:
                    st.file_hits[path] += 1
                body = post.sample if sample else post.data
                if post.id in st._corrupt:
                    body = make_image(post.id + 1, post.ext)
                ctype = {"jpg": "image/jpeg", "png": "image/png"}.get("jpg" if sample else post.ext)
                return self._send(200, body, ctype or "application/octet-stream")
        return self._json(404, {"success": False, "message": "not found"})


try:  # a pytest fixture when pytest is around: `from servers.danbooru import fake_danbooru`
    import pytest

    @pytest.fixture
    def fake_danbooru():
        """A started :class:`FakeDanbooru`, stopped after the test."""
        with FakeDanbooru() as srv:
            yield srv

except ImportError:  # pragma: no cover
    pass
