"""`poke fetch danbooru` against the fake Danbooru on 127.0.0.1: paging, tag limit, skips, md5, labels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cli import app
from pokedata.errors import UserError
from pokedata.fetch.danbooru import (
    DanbooruConfig,
    Labeller,
    Query,
    build_query,
    check_tag,
    normalise_ratings,
    skip_reason,
)
from pokedata.fetch.danbooru_run import fetch_danbooru
from pokedata.ledger import Ledger
from tests.servers.danbooru import GOLD_USER, FakeDanbooru

FAST = ["--api-rate", "1000", "--file-rate", "1000"]


@pytest.fixture
def srv():
    with FakeDanbooru() as server:
        yield server


def _http():
    from pokedata.fetch.http import HttpConfig

    return HttpConfig(retries=3, backoff_base=0.01, backoff_max=0.05, timeout=10)


def _cfg(srv: FakeDanbooru, data: Path, **kw) -> DanbooruConfig:
    return DanbooruConfig(
        data=data, base_url=srv.base_url, http=_http(), progress=False, api_rate=1000, file_rate=1000, **kw
    )


def _run(cfg: DanbooruConfig):
    return fetch_danbooru(cfg)


def _rows(data: Path) -> dict[str, object]:
    with Ledger(data / "ledger.sqlite") as ledger:
        return {f"{r.source_id}/{r.class_name}": r for r in ledger.select(source="danbooru")}


def _catalog(path: Path, tags: list[tuple[str, str]]) -> Path:
    head = "class_index,name,dex,generation,form,danbooru_tag,search_query\n"
    rows = [f"{i},{name},{i + 1},1,base,{tag},{name} pokemon" for i, (name, tag) in enumerate(tags)]
    path.write_text(head + "\n".join(rows) + "\n")
    return path


# -- pure logic ------------------------------------------------------------------------------------------
def test_build_query_splits_server_and_client():
    q = build_query(["pikachu", "solo", "smile"], ["comic"], ("g", "s"), tag_limit=2)
    assert q.server_terms == ("pikachu", "solo", "rating:g,s")  # rating: does not count against the limit
    assert (q.client_tags, q.client_exclude, q.client_ratings) == (("smile",), ("comic",), ("g", "s"))
    q = build_query(["pikachu"], ["comic"], ("g",), tag_limit=2)
    assert q.server_terms == ("pikachu", "-comic", "rating:g") and not q.client_exclude
    q = build_query(["pikachu"], ["comic"], ("g",), tag_limit=6)
    assert q.server_terms == ("pikachu", "-comic", "rating:g")
    assert build_query(["a"], [], ("g", "s", "q", "e")).server_terms == ("a",)  # every rating: no filter
    # Metatags go first; free ones (score:) do not count, others (user:) do.
    assert build_query(["solo", "smile", "score:>10"]).server_terms == ("score:>10", "solo", "smile")
    assert build_query(["solo", "smile", "user:bob"]).client_tags == ("smile",)
    with pytest.raises(UserError, match="metatags that count"):
        build_query(["user:a", "pool:1", "fav:b"], [], tag_limit=2)
    post = {"tag_string": "pikachu solo smile", "rating": "g"}
    assert q.accepts(post)
    assert Query(("pikachu",), ("smile",), ("solo",)).accepts(post) is False
    assert Query(("pikachu",), client_ratings=("s",)).accepts(post) is False


def test_options_validation():
    assert normalise_ratings(("general,s", "q")) == ("g", "s", "q")
    with pytest.raises(UserError, match="--rating 'x'"):
        normalise_ratings(("x",))
    with pytest.raises(UserError, match="underscores"):
        check_tag("mr mime")
    with pytest.raises(UserError, match="order:"):
        check_tag("order:score")
    with pytest.raises(UserError, match="both a login and an API key"):
        DanbooruConfig(data=Path("d"), tags=("a",), login="me").validate()
    with pytest.raises(UserError, match="--catalog and --class"):
        DanbooruConfig(data=Path("d"), tags=("a",), catalog=True, class_name="Pikachu").validate()
    with pytest.raises(UserError, match="no --tags"):
        DanbooruConfig(data=Path("d")).validate()
    assert "key" not in repr(DanbooruConfig(data=Path("d"), login="me", api_key="secret"))


def test_skip_reasons_and_labels():
    ok = {"id": 1, "md5": "ab", "file_url": "http://x/a.jpg", "file_ext": "jpg"}
    assert skip_reason(ok) is None
    assert skip_reason({**ok, "is_deleted": True}) == "deleted"
    assert skip_reason({**ok, "is_banned": True}) == "banned"
    assert skip_reason({"id": 1, "file_ext": "jpg"}) == "hidden"
    for ext in ("mp4", "webm", "zip", "swf", "ugoira"):
        assert skip_reason({**ok, "file_ext": ext}) == f"not-an-image:{ext}"
    lab = Labeller(tag_to_class={"pikachu": "Pikachu", "eevee": "Eevee"})
    assert lab.label({"tag_string_character": "pikachu ash_ketchum"}) == ("Pikachu", {}, None)
    assert lab.label({"tag_string_character": "pikachu eevee"}) == (
        "", {"classes": ["Eevee", "Pikachu"], "multi_class": True}, None)  # fmt: skip
    assert lab.label({"tag_string_character": "ash_ketchum"})[2] == "no-catalog-class"


# -- against the fake server ---------------------------------------------------------------------------------
def test_paging_with_b_lowest_id_across_many_pages(srv, tmp_path):
    for pid in range(1, 451):  # 450 posts: 3 pages of <= 200; only every 90th is a live image (fast)
        srv.add_post(pid, character=["pikachu"], deleted=pid % 90 != 0)
    summary = _run(_cfg(srv, tmp_path / "d", tags=("pikachu",), class_name="Pikachu"))
    rows = _rows(tmp_path / "d")
    assert len(rows) == 450
    assert sum(r.status == "done" for r in rows.values()) == 5 == summary.done
    assert sum(r.error == "deleted" for r in rows.values()) == 445
    pages = [r["query"] for r in srv.api_requests()]
    assert [p.get("page") for p in pages] == [None, "b251", "b51", "b1"]
    assert all(p["limit"] == "200" and p["tags"] == "pikachu" for p in pages)


def test_two_tag_limit_filters_the_rest_client_side(srv, tmp_path, runner):
    srv.add_post(1, character=["pikachu"], general=["solo", "smile"], rating="g")
    srv.add_post(2, character=["pikachu"], general=["solo"], rating="g")  # no smile
    srv.add_post(3, character=["pikachu"], general=["solo", "smile", "comic"], rating="g")  # excluded
    srv.add_post(4, character=["pikachu"], general=["solo", "smile"], rating="q")  # rating
    srv.add_post(5, character=["pikachu"], general=["solo", "smile"], rating="s")
    data = tmp_path / "d"
    args = ["fetch", "danbooru", "--tags", "pikachu", "--tags", "solo", "--tags", "smile", "--exclude", "comic",
            "--rating", "g,s", "--class", "Pikachu", "--base-url", srv.base_url, "--data", str(data), *FAST]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(k.split("/")[0] for k in _rows(data)) == ["1", "5"]
    assert {r["query"]["tags"] for r in srv.api_requests()} == {"pikachu solo rating:g,s"}


def test_422_becomes_a_user_error_naming_the_limit(srv, tmp_path, runner):
    srv.add_post(1, character=["pikachu"], general=["solo", "smile"])
    args = ["fetch", "danbooru", "--tags", "pikachu", "--tags", "solo", "--tags", "smile", "--tag-limit", "3",
            "--base-url", srv.base_url, "--data", str(tmp_path / "d"), *FAST]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert (
        "HTTP 422" in result.output and "at most 2 tags" in result.output and "--tag-limit" in result.output
    )
    assert "Traceback" not in result.output


def test_gold_credentials_six_tags_and_never_leak(srv, tmp_path, runner):
    srv.add_post(1, character=["pikachu"], general=["solo", "smile"])
    login, key = GOLD_USER
    data = tmp_path / "d"
    args = ["--verbose", "fetch", "danbooru", "--tags", "pikachu", "--tags", "solo", "--tags", "smile", "--tag-limit", "6",
            "--base-url", srv.base_url, "--data", str(data), *FAST]  # fmt: skip
    result = runner.invoke(
        app, args, env={"DANBOORU_LOGIN": login, "DANBOORU_API_KEY": key, "COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert {r["query"]["tags"] for r in srv.api_requests()} == {"pikachu solo smile"}
    api = [r for r in srv.requests if r["path"].endswith(".json")]
    files = [r for r in srv.requests if r["path"].startswith("/data/")]
    assert api and all(r["user"] == login for r in api)
    assert files and all(r["user"] is None for r in files)  # the file host never sees the credentials
    assert "verbose logging on" in result.output  # debug logs were on, and show no key either
    assert key not in result.output
    for f in data.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f


def test_429_retry_after_is_respected(srv, tmp_path):
    srv.add_post(7, character=["pikachu"])
    srv.throttle(1, retry_after="1")
    summary = _run(_cfg(srv, tmp_path / "d", tags=("pikachu",)))
    assert summary.done == 1
    first, second = srv.api_requests()[:2]
    assert first["query"] == second["query"]
    # Retry-After: 1 means the retry comes at least a second later (a lower bound: never flaky).
    assert second["t"] - first["t"] >= 0.95


def test_skips_recorded_with_reasons_and_md5_verified(srv, tmp_path):
    srv.add_post(1, character=["pikachu"])
    srv.add_post(2, character=["pikachu"], deleted=True)
    srv.add_post(3, character=["pikachu"], banned=True)
    srv.add_post(4, character=["pikachu"], hidden=True)
    srv.add_post(5, character=["pikachu"], ext="mp4")
    srv.add_post(6, character=["pikachu"], ext="zip")
    srv.add_post(7, character=["pikachu"], ext="png")
    srv.add_post(8, character=["pikachu"])
    srv.corrupt(8)
    summary = _run(_cfg(srv, tmp_path / "d", tags=("pikachu",), class_name="Pikachu"))
    rows = {k.split("/")[0]: r for k, r in _rows(tmp_path / "d").items()}
    assert {k: (r.status, r.error) for k, r in rows.items() if r.status != "done"} == {
        "2": ("skipped", "deleted"),
        "3": ("skipped", "banned"),
        "4": ("skipped", "hidden"),
        "5": ("skipped", "not-an-image:mp4"),
        "6": ("skipped", "not-an-image:zip"),
        "8": ("quarantined", rows["8"].error),
    }
    assert rows["8"].error.startswith("md5-mismatch")
    assert rows["1"].md5 == srv.posts[1].md5 and rows["7"].path.endswith("/7.png")
    assert rows["1"].meta["page_url"] == f"{srv.base_url}/posts/1" and rows["1"].meta["rating"] == "g"
    assert (summary.done, summary.skipped, summary.quarantined) == (2, 5, 1)


def test_catalog_queries_multi_class_and_fetched_once(srv, tmp_path):
    srv.add_post(1, character=["pikachu"])
    srv.add_post(2, character=["eevee"])
    srv.add_post(3, character=["pikachu", "eevee"])  # found by both queries
    catalog = _catalog(tmp_path / "cat.csv", [("Pikachu", "pikachu"), ("Eevee", "eevee")])
    _run(_cfg(srv, tmp_path / "d", catalog=True, catalog_path=catalog))
    rows = _rows(tmp_path / "d")
    assert set(rows) == {"1/Pikachu", "2/Eevee", "3/"}
    both = rows["3/"]
    assert (
        both.status == "done"
        and both.meta["multi_class"] is True
        and both.meta["classes"] == ["Eevee", "Pikachu"]
    )
    assert {r["query"]["tags"] for r in srv.api_requests()} == {"pikachu", "eevee"}
    assert sorted(srv.file_hits.values()) == [1, 1, 1]  # post 3 downloaded once

    # A later query finding the same posts under a fixed class: nothing downloaded twice.
    _run(_cfg(srv, tmp_path / "d", tags=("pikachu",), class_name="Pikachu"))
    rows = _rows(tmp_path / "d")
    assert rows["3/Pikachu"].status == "done" and rows["3/Pikachu"].meta["shares_file_with"] == both.id
    assert sorted(srv.file_hits.values()) == [1, 1, 1]


def test_catalog_with_tags_skips_posts_without_a_catalog_character(srv, tmp_path):
    srv.add_post(1, character=["pikachu"], copyright=["pokemon"])
    srv.add_post(2, character=["ash_ketchum"], copyright=["pokemon"])
    catalog = _catalog(tmp_path / "cat.csv", [("Pikachu", "pikachu")])
    _run(_cfg(srv, tmp_path / "d", tags=("pokemon",), catalog=True, catalog_path=catalog))
    rows = _rows(tmp_path / "d")
    assert rows["1/Pikachu"].status == "done"
    assert (rows["2/"].status, rows["2/"].error) == ("skipped", "no-catalog-class")


def test_limit_and_resume_of_listing(srv, tmp_path):
    for pid in range(1, 8):
        srv.add_post(pid, character=["pikachu"])
    cfg = _cfg(srv, tmp_path / "d", tags=("pikachu",), limit=3)
    assert _run(cfg).planned == 3
    assert sorted(int(k.split("/")[0]) for k in _rows(tmp_path / "d")) == [5, 6, 7]
    assert _run(cfg).planned == 3
    assert srv.api_requests()[-1]["query"]["page"] == "b5"  # resumed below the last post taken
    assert _run(cfg).planned == 1
    n = len(srv.api_requests())
    # Listed to the end: a rerun only walks posts newer than the newest one seen.
    srv.add_post(9, character=["pikachu"])
    assert _run(_cfg(srv, tmp_path / "d", tags=("pikachu",), limit=3)).planned == 1
    assert len(srv.api_requests()) == n + 1
    assert len(_rows(tmp_path / "d")) == 8


def test_sample_variant(srv, tmp_path):
    srv.add_post(1, character=["pikachu"], ext="png")
    _run(_cfg(srv, tmp_path / "d", tags=("pikachu",), variant="sample"))
    (row,) = _rows(tmp_path / "d").values()
    assert row.status == "done" and row.path.endswith("/1.jpg")
    assert "md5" not in row.meta and row.meta["post_md5"] == srv.posts[1].md5
    assert (tmp_path / "d" / row.path).read_bytes() == srv.posts[1].sample


def test_dry_run_prints_estimates_and_downloads_nothing(srv, tmp_path, runner):
    for pid in range(1, 251):
        srv.add_post(pid, character=["pikachu"])
    data = tmp_path / "d"
    result = runner.invoke(
        app,
        [
            "fetch",
            "danbooru",
            "--tags",
            "pikachu",
            "--dry-run",
            "--base-url",
            srv.base_url,
            "--data",
            str(data),
            *FAST,
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "pikachu" in text and "250" in text and "nothing downloaded" in text
    assert not srv.api_requests() and not srv.file_hits
    assert not (data / "ledger.sqlite").exists()


def test_unreachable_server_is_a_user_error(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = DanbooruConfig(data=tmp_path / "d", tags=("pikachu",), base_url=f"http://127.0.0.1:{port}", http=_http(),
                         progress=False, api_rate=1000)  # fmt: skip
    with pytest.raises(UserError, match="every Danbooru query failed"):
        fetch_danbooru(cfg)


def test_fake_server_speaks_the_protocol(srv):
    import requests

    for pid in range(1, 8):
        srv.add_post(pid, character=["pikachu"], rating="g" if pid % 2 else "s")
    get = lambda **p: requests.get(f"{srv.base_url}/posts.json", params=p, timeout=5)  # noqa: E731
    assert [p["id"] for p in get(tags="pikachu", limit=2, page="a3").json()] == [5, 4]
    assert [p["id"] for p in get(tags="pikachu", limit=2, page="b3").json()] == [2, 1]
    assert [p["id"] for p in get(tags="pikachu", limit=2, page="2").json()] == [5, 4]
    assert [p["id"] for p in get(tags="pikachu rating:s").json()] == [6, 4, 2]
    assert len(get(tags="pikachu", limit=500).json()) == 7  # capped at 200
    assert get(tags="pikachu", page="1001").status_code == 410
    assert get(tags="a b c").status_code == 422
    assert get(tags="a b rating:g score:>1").ok  # free metatags do not count
    assert requests.get(f"{srv.base_url}/posts.json", params={"tags": "a b c"}, auth=GOLD_USER, timeout=5).ok
    assert (
        requests.get(f"{srv.base_url}/posts.json", auth=("gold_user", "wrong"), timeout=5).status_code == 401
    )
    post = get(tags="pikachu", limit=1).json()[0]
    body = requests.get(post["file_url"], timeout=5).content
    assert hashlib.md5(body).hexdigest() == post["md5"] and post["file_url"].startswith(srv.file_base_url)
    assert requests.get(
        f"{srv.base_url}/counts/posts.json", params={"tags": "pikachu"}, timeout=5
    ).json() == {"counts": {"posts": 7}}


def test_reruns_ask_only_for_posts_above_the_newest_planned(srv, tmp_path):
    """After a finished walk, `page=a<newest>` paging: every answer holds new posts only, counted."""
    # 3 full pages; only every 50th post carries the client-side tag (few downloads)
    for pid in range(1, 451):
        srv.add_post(pid, character=["pikachu"], general=["solo"] + (["smile"] if pid % 50 == 0 else []))
    cfg = _cfg(srv, tmp_path / "d", tags=("pikachu", "solo", "smile"))  # smile: filtered client-side
    assert _run(cfg).planned == 9
    first = len(srv.api_requests())
    assert first == 4 and [len(a) for a in srv.answered] == [200, 200, 50, 0]  # a first walk ends empty

    assert _run(cfg).planned == 0  # nothing new: one request, an empty answer
    assert [r["query"]["page"] for r in srv.api_requests()[first:]] == ["a450"]
    assert srv.answered[-1] == []

    for pid in range(451, 701):  # 250 new posts
        srv.add_post(pid, character=["pikachu"], general=["solo"] + (["smile"] if pid % 50 == 0 else []))
    n, seen = len(srv.api_requests()), len(srv.answered)
    assert _run(cfg).planned == 5
    assert [r["query"]["page"] for r in srv.api_requests()[n:]] == ["a450", "a650"]
    answered = [pid for page in srv.answered[seen:] for pid in page]
    assert sorted(answered) == list(range(451, 701))  # each new post answered once, no old one
    assert len(_rows(tmp_path / "d")) == 14


def test_a_limited_rerun_keeps_its_floor_at_the_last_post_taken(srv, tmp_path):
    for pid in range(1, 4):
        srv.add_post(pid, character=["pikachu"])
    assert _run(_cfg(srv, tmp_path / "d", tags=("pikachu",))).planned == 3
    for pid in range(4, 10):
        srv.add_post(pid, character=["pikachu"])
    limited = _cfg(srv, tmp_path / "d", tags=("pikachu",), limit=4)
    assert _run(limited).planned == 4  # the oldest new ones first: 4..7
    assert sorted(int(k.split("/")[0]) for k in _rows(tmp_path / "d")) == list(range(1, 8))
    n = len(srv.api_requests())
    assert _run(limited).planned == 2  # resumes above post 7
    assert srv.api_requests()[n]["query"]["page"] == "a7"
    assert len(_rows(tmp_path / "d")) == 9
