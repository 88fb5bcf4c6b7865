"""Hostile servers (issue 14): credentials to their exact origin only, slow drips, stuck cursors, bad JSON.

Every server is a :class:`servers.hostile.HostileServer` on 127.0.0.1. Each test is one hostile case: it
ends in a clear outcome (a row with a reason, or a one-line UserError), never a traceback, a hang or a key
in a file, a log or the terminal.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from cli import app
from pokedata.errors import UserError
from pokedata.fetch.danbooru import DanbooruConfig
from pokedata.fetch.danbooru_run import fetch_danbooru
from pokedata.fetch.download import download_pending
from pokedata.fetch.http import HttpConfig, PoliteClient, origin_of
from pokedata.ledger import Candidate, Ledger
from pokedata.store import DatasetDir
from tests.servers.hostile import HostileServer, body, drip, json_body, query_of, redirect, send
from tests.servers.images import make_jpeg

SECRET = "hostile-api-key-0123456789abcdef"
LOGIN = "alice"


def fast(**kw) -> HttpConfig:
    base = dict(retries=2, backoff_base=0.01, backoff_max=0.02, timeout=5.0, per_host_concurrency=2)
    return HttpConfig(**{**base, **kw})


@pytest.fixture
def api():
    with HostileServer() as srv:
        yield srv


@pytest.fixture
def other():
    with HostileServer() as srv:
        yield srv


def post(pid: int, file_url: str, data: bytes, **kw) -> dict:
    return {"id": pid, "md5": hashlib.md5(data).hexdigest(), "file_ext": "jpg", "file_url": file_url,
            "tag_string": "pikachu", "tag_string_character": "pikachu", "rating": "g", **kw}  # fmt: skip


def listing(pages: dict[str | None, list]):
    """/posts.json answering by its ``page`` parameter (None: the first page; missing: an empty page)."""

    def handler(h) -> None:
        page = (query_of(h).get("page") or [None])[0]
        send(h, 200, json.dumps(pages.get(page, [])).encode(), "application/json")

    return handler


def dcfg(api: HostileServer, data: Path, **kw) -> DanbooruConfig:
    base = dict(data=data, tags=("pikachu",), base_url=api.origin, http=fast(), progress=False,
                api_rate=1000, file_rate=1000)  # fmt: skip
    return DanbooruConfig(**{**base, **kw})


def everything_written(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())


# -- bug 1: credentials go to the exact origin of --base-url only ------------------------------------------
def test_origin_is_scheme_host_and_port():
    assert origin_of("http://Example.com/x") == "http://example.com:80"
    assert origin_of("https://example.com:443/a") == "https://example.com:443"
    assert origin_of("https://example.com:8443/a") != origin_of("https://example.com/a")
    assert origin_of("http://example.com/a") != origin_of("https://example.com/a")
    assert origin_of("file:///etc/passwd") == "" and origin_of("http://[::1]:8/x") == "http://[::1]:8"


def test_key_never_reaches_the_api_host_on_another_port_or_after_a_redirect(api, other, tmp_path):
    """Posts whose file_url is the API host on another port, and a redirect from the API origin to another
    port and back: only requests to the exact API origin that never left it carry Authorization."""
    imgs = {i: make_jpeg(i) for i in (1, 2, 3)}
    other.route("/1.jpg", body(imgs[1]))  # same host name, another port
    api.route("/2.jpg", redirect(other.url("/2.jpg")))  # off the origin ...
    other.route("/2.jpg", redirect(api.url("/2b.jpg")))  # ... and back to it
    api.route("/2b.jpg", body(imgs[2]))
    api.route("/3.jpg", body(imgs[3]))  # on the origin: may carry the key
    api.route("/posts.json", listing({None: [post(3, api.url("/3.jpg"), imgs[3]),
                                             post(2, api.url("/2.jpg"), imgs[2]),
                                             post(1, other.url("/1.jpg"), imgs[1])]}))  # fmt: skip
    data = tmp_path / "d"
    summary = fetch_danbooru(dcfg(api, data, login=LOGIN, api_key=SECRET))
    assert summary.done == 3
    assert all(r.auth is None for r in other.requests)  # not one request to the other port carried it
    by_path = {}
    for r in api.requests:
        by_path.setdefault(r.path, []).append(r.auth)
    assert all(a and a.startswith("Basic ") for a in by_path["/posts.json"] + by_path["/3.jpg"])
    assert by_path["/2b.jpg"] == [None]  # came back after a redirect off the origin: no key
    assert SECRET.encode() not in everything_written(data)


def test_redirect_to_another_scheme_or_port_drops_credentials(api, other):
    api.route("/a.json", redirect(other.url("/b.json")))
    other.route("/b.json", json_body({"ok": True}))
    cfg = fast(auth=(LOGIN, SECRET), auth_origins=(api.origin,))
    with PoliteClient(cfg) as client:
        assert client.get_json(api.url("/a.json")) == {"ok": True}
    assert api.requests[0].auth is not None and other.requests[0].auth is None


@pytest.mark.parametrize("url", ["http://alice:{key}@127.0.0.1:{port}", "http://{key}@127.0.0.1:{port}/"])
def test_credentials_in_base_url_are_refused_never_stored(api, tmp_path, runner, url):
    api.route("/posts.json", listing({None: []}))
    base = url.format(key=SECRET, port=api.port)
    data = tmp_path / "d"
    with pytest.raises(UserError, match="holds credentials") as err:
        fetch_danbooru(dcfg(api, data, base_url=base))
    assert SECRET not in str(err.value)
    result = runner.invoke(
        app, ["fetch", "danbooru", "--tags", "pikachu", "--base-url", base, "--data", str(data)]
    )
    assert result.exit_code == 2 and "holds credentials" in result.output
    assert (
        SECRET not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    )
    assert not api.requests  # refused before any request
    assert not data.exists() or SECRET.encode() not in everything_written(data)


# -- bug 2: a slow drip cannot hold the fetch: a per-file deadline ---------------------------------------
def test_dripping_bodies_hit_the_file_deadline_and_free_their_slots(api, tmp_path):
    """Two URLs drip one byte every 0.1 s (each read far under the read timeout) on a host with 2 slots;
    with a 1 s per-file deadline both become `timeout` rows and the good file behind them is stored."""
    slow = make_jpeg(5, size=64)  # ~1.5 kB: 150 s of dripping without a deadline
    api.route("/drip1.jpg", drip(slow, every=0.1))
    api.route("/drip2.jpg", drip(slow[::-1], every=0.1))
    api.route("/good.jpg", body(make_jpeg(6)))
    dataset = DatasetDir.at(tmp_path / "d").create()
    with Ledger(dataset.ledger_path) as ledger:
        ledger.plan(Candidate("t", n, "A", api.url(f"/{n}.jpg")) for n in ("drip1", "drip2", "good"))
        with PoliteClient(fast(file_deadline=1.0, per_host_concurrency=2)) as client:
            summary = download_pending(ledger, dataset, client, source="t", progress=False)
        rows = {it.source_id: it for it in ledger.select(source="t")}
    assert summary.done == 1 and summary.failed == 2
    assert rows["good"].status == "done"
    for n in ("drip1", "drip2"):
        assert rows[n].status == "failed" and rows[n].error.startswith("timeout")
        assert "--file-timeout" in rows[n].error
    assert summary.errors["timeout"] == 2
    assert not list(dataset.tmp_dir.iterdir())  # no temp file left behind


def test_file_deadline_is_an_option_and_validated(runner, tmp_path):
    result = runner.invoke(
        app, ["fetch", "ddg", "-q", "x", "--class", "X", "--file-timeout", "0", "--data", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--file-timeout" in result.output
    with pytest.raises(UserError, match="--file-timeout"):
        HttpConfig(file_deadline=float("nan")).validate()


# -- bug 3: a listing cursor must strictly decrease ----------------------------------------------------------
def test_cursor_that_does_not_move_stops_the_query_with_a_clear_error(api, tmp_path, caplog):
    img = make_jpeg(9)
    api.route("/9.jpg", body(img))
    stuck = [post(9, api.url("/9.jpg"), img), post(3, api.url("/9.jpg"), img)]
    api.route("/posts.json", json_body(stuck))  # page=b3 answers the same posts again, forever
    caplog.set_level(logging.WARNING)
    with pytest.raises(UserError, match="bad-cursor"):
        fetch_danbooru(dcfg(api, tmp_path / "d"))
    assert api.hits["/posts.json"] == 2  # the first page, then one page=b3 that did not move: stop
    assert "did not move below 3" in caplog.text


def test_a_rerun_answered_with_old_posts_stops_with_bad_cursor(api, tmp_path, caplog):
    img = make_jpeg(9)
    api.route("/9.jpg", body(img))
    api.route("/posts.json", listing({None: [post(9, api.url("/9.jpg"), img)]}))
    fetch_danbooru(dcfg(api, tmp_path / "d"))  # a finished walk: the floor is post 9
    # a server that ignores page=a9 and answers the top page again (old posts) is not trusted
    api.route("/posts.json", json_body([post(9, api.url("/9.jpg"), img)]))
    caplog.set_level(logging.WARNING)
    with pytest.raises(UserError, match="bad-cursor"):
        fetch_danbooru(dcfg(api, tmp_path / "d"))
    assert "not above 9" in caplog.text


def test_stuck_query_stops_but_the_other_queries_go_on(api, tmp_path):
    img = make_jpeg(10)
    api.route("/10.jpg", body(img))

    def handler(h) -> None:
        q = query_of(h)
        tags, page = q.get("tags", [""])[0], (q.get("page") or [None])[0]
        if tags == "stuck":
            rows = [post(7, api.url("/10.jpg"), img)]
        else:
            rows = [] if page else [post(10, api.url("/10.jpg"), img)]
        send(h, 200, json.dumps(rows).encode(), "application/json")

    api.route("/posts.json", handler)
    cat = tmp_path / "cat.csv"
    cat.write_text("class_index,name,dex,generation,form,danbooru_tag,search_query\n"
                   "0,Stuck,1,1,base,stuck,x\n1,Pikachu,25,1,base,pikachu,y\n")  # fmt: skip
    summary = fetch_danbooru(dcfg(api, tmp_path / "d", tags=(), catalog=True, catalog_path=cat))
    assert summary.errors["listing-failed"] == 1 and summary.done == 1
