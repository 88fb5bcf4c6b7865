"""Hostile records (issue 14): every post from the API or a dump line is validated before anything is built
from it. A bad one is skipped as ``bad-record`` (a bad dump line is counted), never a traceback, never a row
that blocks later runs, never a path outside the mirror layout in an rsync list."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pokedata.errors import UserError
from pokedata.fetch.danbooru import (
    DanbooruConfig,
    Labeller,
    Query,
    bad_field,
    post_candidate,
    post_id,
    valid_ext,
    valid_md5,
)
from pokedata.fetch.danbooru_run import fetch_danbooru
from pokedata.fetch.dump import DumpConfig, fetch_dump
from pokedata.fetch.http import HttpConfig
from pokedata.fetch.resolve import ResolveConfig, resolve_catalog
from pokedata.ledger import Candidate, Ledger
from tests.servers.hostile import HostileServer, body, json_body, query_of, send
from tests.servers.images import make_jpeg


@pytest.fixture
def api():
    with HostileServer() as srv:
        yield srv


def fast() -> HttpConfig:
    return HttpConfig(retries=2, backoff_base=0.01, backoff_max=0.02, timeout=5.0)


def dcfg(api: HostileServer, data: Path, **kw) -> DanbooruConfig:
    return DanbooruConfig(data=data, tags=("pikachu",), base_url=api.origin, http=fast(), progress=False,
                          api_rate=1000, file_rate=1000, **kw)  # fmt: skip


def good_post(api: HostileServer, pid: int) -> dict:
    img = make_jpeg(pid)
    api.route(f"/{pid}.jpg", body(img))
    return {"id": pid, "md5": hashlib.md5(img).hexdigest(), "file_ext": "jpg", "file_url": api.url(f"/{pid}.jpg"),
            "tag_string": "pikachu", "tag_string_character": "pikachu", "rating": "g"}  # fmt: skip


def first_page_only(raw_first: bytes):
    def handler(h) -> None:
        page = (query_of(h).get("page") or [None])[0]
        send(h, 200, raw_first if page is None else b"[]", "application/json")

    return handler


def rows(data: Path) -> dict[str, object]:
    with Ledger(data / "ledger.sqlite") as ledger:
        return {r.source_id: r for r in ledger.select(source="danbooru")}


# -- API mode ---------------------------------------------------------------------------------------------
def test_bad_api_posts_are_skipped_as_bad_record_and_later_runs_work(api, tmp_path):
    good = good_post(api, 50)
    bad = [
        {**good, "id": "abc"}, {**good, "id": None}, {**good, "id": True}, {**good, "id": -4},
        {**good, "id": 41, "md5": 12345}, {**good, "id": 42, "file_url": [good["file_url"]]},
        {**good, "id": 43, "file_ext": "png\n../../../../root/.ssh/authorized_keys"},
        {**good, "id": 44, "file_ext": "../jpg"}, {**good, "id": 45, "file_url": "file:///etc/passwd"},
        {**good, "id": 46, "tag_string": {"a": 1}}, {**good, "id": 47, "score": "lots"}, "not a post", 7,
    ]  # fmt: skip
    # 1e400 cannot be written by json.dumps: splice it into the raw page.
    raw = json.dumps([good, *bad]).encode()[:-1] + b', {"id": 1e400, "md5": "x"}]'
    api.route("/posts.json", first_page_only(raw))
    data = tmp_path / "d"
    summary = fetch_danbooru(dcfg(api, data))
    assert summary.done == 1
    got = rows(data)
    assert got["50"].status == "done"
    for pid, field in ((41, "md5"), (42, "file_url"), (43, "file_ext"), (44, "file_ext"), (45, "file_url"),
                       (46, "tag_string"), (47, "score")):  # fmt: skip
        row = got[str(pid)]
        assert (row.status, row.error, row.url) == ("skipped", f"bad-record:{field}", None)
        assert row.meta == {"page_url": f"{api.origin}/posts/{pid}", "bad_field": field}
    # posts without a usable id have no row but are counted (abc, None, True, -4, "not a post", 7, 1e400)
    assert summary.errors["bad-record"] == 7 + 7
    assert set(got) == {"50", "41", "42", "43", "44", "45", "46", "47"}
    # Nothing was written outside the dataset, no request went to a bad URL.
    assert {r.path for r in api.requests} == {"/posts.json", "/50.jpg"}
    # A later run into the same --data works (the bad rows block nothing).
    again = fetch_danbooru(dcfg(api, data))
    assert again.failed == 0


def test_a_row_poisoned_by_an_older_version_is_quarantined_not_a_crash(api, tmp_path):
    """Before records were validated, ``md5: 12345`` was planned as is and every later fetch crashed."""
    good = good_post(api, 60)
    good_post(api, 61)  # its file is served: the old version downloaded it, then crashed on md5 12345
    api.route("/posts.json", first_page_only(json.dumps([good]).encode()))
    data = tmp_path / "d"
    data.mkdir()
    with Ledger(data / "ledger.sqlite") as ledger:  # what the old version left behind
        ledger.plan([Candidate("danbooru", "61", "", api.url("/61.jpg"), {"md5": 12345})])
    summary = fetch_danbooru(dcfg(api, data))
    got = rows(data)
    assert got["60"].status == "done"
    assert (got["61"].status, got["61"].error) == ("skipped", "bad-record:md5")
    assert summary.skipped == 1 and api.hits["/61.jpg"] == 0
    # the intake gate refuses such an md5 too (folder/dump paths): a quarantine with a reason
    from pokedata.fetch.intake import check_file
    from pokedata.verify import VerificationError

    img = tmp_path / "x.jpg"
    img.write_bytes(make_jpeg(1))
    with pytest.raises(VerificationError, match="bad-record"):
        check_file(img, expected_md5=12345)


@pytest.mark.parametrize(
    "raw", [b"[" * 200_000 + b"]" * 200_000, b'{"posts": ' + b"[" * 5000 + b"]" * 5000 + b"}"]
)
def test_json_nested_deep_is_a_clear_error_not_a_traceback(api, tmp_path, raw):
    api.route("/posts.json", json_body(raw=raw))
    with pytest.raises(UserError, match="every Danbooru query failed|not a list of posts"):
        fetch_danbooru(dcfg(api, tmp_path / "d"))


def test_classes_resolve_survives_bad_post_counts(api, tmp_path):
    api.route("/tags.json", json_body([{"name": "pikachu", "post_count": "lots"}, {"name": ["x"]}, 5,
                                       {"name": "pikachu_(pokemon)", "post_count": 1e300}]))  # fmt: skip
    api.route("/tag_aliases.json", json_body([None, {"consequent_name": 12}, "x"]))
    cat = tmp_path / "cat.csv"
    cat.write_text(
        "class_index,name,dex,generation,form,danbooru_tag,search_query\n0,Pikachu,25,1,base,pikachu,x\n"
    )
    out = tmp_path / "out.csv"
    _, res = resolve_catalog(ResolveConfig(catalog=cat, out=out, base_url=api.origin, http=fast(), progress=False,
                                           api_rate=1000))  # fmt: skip
    assert res[0].how == "unresolved" and out.is_file()


# -- dumps --------------------------------------------------------------------------------------------------
def _dump_line(pid, md5, ext="jpg") -> str:
    return json.dumps({"id": pid, "md5": md5, "file_ext": ext, "rating": "s", "tag_string": "pikachu solo",
                       "tag_string_character": "pikachu"})  # fmt: skip


def test_hostile_dump_lines_are_counted_and_never_reach_the_rsync_list(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    md5 = "0123456789abcdef" * 2
    lines = [
        _dump_line(7, md5),
        _dump_line(8, md5, "png\n../../../../root/.ssh/authorized_keys"),
        _dump_line(9, md5, "../../x"),
        _dump_line(10, 12345),
        _dump_line("abc", md5),
        '{"id": 1e400, "md5": "' + md5 + '", "file_ext": "jpg", "tag_string": "pikachu"}',
        '{"tag_string": "pikachu", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        _dump_line(11, md5, ["jpg"]),
    ]
    (meta / "posts.json").write_text("\n".join(lines) + "\n")
    out = tmp_path / "list.txt"
    result = fetch_dump(DumpConfig(metadata=meta, data=tmp_path / "d", rsync_list=out, tags=("pikachu",),
                                   progress=False))  # fmt: skip
    assert out.read_text() == "original/0007/7.jpg\n"
    assert result.stats.bad_lines == 7 and result.stats.matched == 1


def test_utf16_dump_is_named_not_silently_empty(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "posts.json").write_text(_dump_line(7, "0" * 32) + "\n", encoding="utf-16")
    with pytest.raises(UserError, match="not UTF-8.*UTF-16"):
        fetch_dump(DumpConfig(metadata=meta, data=tmp_path / "d", rsync_list=tmp_path / "l.txt",
                              tags=("pikachu",), progress=False))  # fmt: skip


# -- hypothesis: any JSON in a post's fields --------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ["id", "md5", "file_ext", "file_url", "large_file_url", "tag_string", "tag_string_character", "rating",
          "score", "is_deleted", "is_banned", "image_width", "file_size", "created_at", "source"]  # fmt: skip
plausible = {
    "id": st.integers(min_value=1, max_value=10**7) | st.text(alphabet="0123456789", min_size=1, max_size=8),
    "md5": st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32),
    "file_ext": st.sampled_from(["jpg", "png", "gif", "mp4", "webm", "zip", "PNG"]),
    "file_url": st.sampled_from(["https://cdn.donmai.us/original/a.jpg", "http://127.0.0.1:1/x.png"]),
}
posts = (
    st.fixed_dictionaries(
        {},
        optional={k: (plausible[k] | json_values) if k in plausible else json_values for k in FIELDS},
    )
    | json_values
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(posts, st.sampled_from(["original", "sample"]))
def test_any_post_json_is_planned_safely_or_skipped_as_bad_record(post, variant):
    pid = post_id(post)
    if pid is None:
        return  # counted as bad-record by the listing, no row
    labeller = Labeller(tag_to_class={"pikachu": "Pikachu"})
    cand, reason = post_candidate(
        post, Query(("pikachu",)), labeller, base_url="https://d.us", variant=variant
    )
    assert isinstance(cand, Candidate) and cand.source_id == str(pid) and cand.source_id.isdigit()
    assert reason is None or isinstance(reason, str)
    if bad_field(post) is not None:
        assert reason.startswith("bad-record:") and cand.url is None
        return
    assert cand.url is None or cand.url.startswith(("http://", "https://"))
    assert "md5" not in cand.meta or valid_md5(cand.meta["md5"])
    assert "file_ext" not in cand.meta or valid_ext(cand.meta["file_ext"])
    json.dumps(cand.meta)  # storable as the ledger's meta
    assert isinstance(cand.class_name, str)
