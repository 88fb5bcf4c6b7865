"""The HTTP downloader and PoliteClient against a real local fault server (127.0.0.1)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from pokedata.fetch.download import download_pending
from pokedata.fetch.http import FetchError, HttpConfig, PoliteClient, parse_retry_after, redact_url
from pokedata.ledger import Candidate, Ledger
from pokedata.store import DatasetDir
from pokedata.verify import verify_image_file
from tests.servers.images import ImageServer, make_jpeg, make_png


@pytest.fixture
def srv():
    with ImageServer() as server:
        yield server


def fast(**kw) -> HttpConfig:
    base = dict(retries=3, backoff_base=0.01, backoff_max=0.05, timeout=5.0, per_host_concurrency=4)
    return HttpConfig(**{**base, **kw})


def plan(data: Path, rows: list[tuple[str, str, str, dict]]) -> tuple[DatasetDir, Ledger]:
    """rows: (source_id, class, url, meta)."""
    dataset = DatasetDir.at(data).create()
    ledger = Ledger(dataset.ledger_path)
    ledger.plan(Candidate("test", sid, cls, url, meta) for sid, cls, url, meta in rows)
    return dataset, ledger


def run(ledger: Ledger, dataset: DatasetDir, cfg: HttpConfig, **kw):
    with PoliteClient(cfg) as client:
        return download_pending(ledger, dataset, client, source="test", progress=False, **kw)


def by_sid(ledger: Ledger):
    return {it.source_id: it for it in ledger.select(source="test")}


def raw_files(dataset: DatasetDir) -> list[Path]:
    return sorted(p for p in dataset.raw_dir.rglob("*") if p.is_file())


def test_downloads_verify_and_store_each_url_once(srv, tmp_path):
    jpg, png = make_jpeg(1), make_png(2)
    a, b = srv.add("/a.jpg", jpg), srv.add("/b.png", png, content_type="image/png")
    dataset, ledger = plan(
        tmp_path / "d",
        [
            ("a", "Pikachu", a, {"md5": hashlib.md5(jpg).hexdigest()}),
            ("b", "Pikachu", b, {}),
            ("b2", "Pikachu", b, {}),  # the same URL under another id: fetched once, skipped as duplicate
            ("b3", "Raichu", b, {}),  # ... and under another class: shares the file (label conflict)
        ],
    )
    summary = run(ledger, dataset, fast())
    rows = by_sid(ledger)
    assert (summary.done, summary.skipped, summary.failed, summary.quarantined) == (3, 1, 0, 0)
    assert rows["a"].status == rows["b"].status == rows["b3"].status == "done"
    assert rows["b2"].status == "skipped" and rows["b2"].error == f"duplicate-of:{rows['b'].id}"
    assert rows["b3"].path == rows["b"].path and rows["b3"].meta["shares_file_with"] == rows["b"].id
    assert srv.hits["/a.jpg"] == 1 and srv.hits["/b.png"] == 1
    assert dataset.abs(rows["a"].path).read_bytes() == jpg
    assert rows["a"].path == "raw/Pikachu/test-a.jpg" and rows["b"].path.endswith(".png")
    assert rows["a"].meta["content_type"] == "image/jpeg"
    assert len(raw_files(dataset)) == 2
    # A rerun has nothing to do and asks the server for nothing.
    again = run(ledger, dataset, fast())
    assert again.done == again.failed == 0 and srv.hits["/a.jpg"] == 1
    ledger.close()


def test_fault_server_outcomes(srv, tmp_path):
    good = make_jpeg(10)
    html = b"<!DOCTYPE html><html><body>Access denied</body></html>" + b" " * 64
    urls = {
        "truncated": srv.add("/cut.jpg", make_jpeg(13), truncate_to=200),
        "html-as-jpg": srv.add("/page.jpg", html, content_type="image/jpeg"),
        "html-typed": srv.add("/page2.jpg", html, content_type="text/html; charset=utf-8"),
        "wrong-md5": srv.add("/md5.jpg", make_jpeg(14)),
        "flaky": srv.add("/flaky.jpg", make_jpeg(15), fail_first=2),
        "busy": srv.add("/busy.jpg", make_jpeg(16), fail_first=1, fail_status=429, retry_after="1"),
        "oversize-streamed": srv.add("/huge.jpg", good, pad_to=3 * 2**20, no_length=True),
        "oversize-declared": srv.add("/huge2.jpg", good, pad_to=3 * 2**20),
        "to-file": srv.add("/away.jpg", redirect="file:///etc/passwd"),
        "missing": srv.url("/nope.jpg"),
        "always-500": srv.add("/down.jpg", make_jpeg(17), fail_first=99),
        "garbage": srv.add("/garbage.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 300),
    }
    meta = {"wrong-md5": {"md5": "0" * 32}}
    dataset, ledger = plan(tmp_path / "d", [(k, "Pikachu", u, meta.get(k, {})) for k, u in urls.items()])
    cfg = fast(timeout=20.0, max_bytes=2**20, per_host_concurrency=16)
    summary = run(ledger, dataset, cfg)
    rows = by_sid(ledger)
    expect = {
        "truncated": ("failed", "truncated"),
        "html-as-jpg": ("quarantined", "not-an-image"),
        "html-typed": ("quarantined", "bad-content-type"),
        "wrong-md5": ("quarantined", "md5-mismatch"),
        "flaky": ("done", None),
        "busy": ("done", None),
        "oversize-streamed": ("quarantined", "too-large"),
        "oversize-declared": ("quarantined", "too-large"),
        "to-file": ("failed", "bad-scheme"),
        "missing": ("failed", "http-404"),
        "always-500": ("failed", "http-500"),
        "garbage": ("quarantined", "undecodable"),
    }
    got = {k: (r.status, r.error.split(":", 1)[0] if r.error else None) for k, r in rows.items()}
    assert got == expect
    assert summary.done == 2 and summary.failed == 4 and summary.quarantined == 6
    assert rows["missing"].attempts == 1 and rows["always-500"].attempts == 1
    assert srv.hits["/flaky.jpg"] == 3 and srv.hits["/down.jpg"] == 3  # 3 tries in all
    assert srv.hits["/cut.jpg"] == 3
    assert srv.hits["/huge2.jpg"] == 1 and srv.hits["/page.jpg"] == 1
    busy = srv.times("/busy.jpg")
    assert len(busy) == 2 and busy[1] - busy[0] >= 0.9  # Retry-After: 1 honoured
    # Nothing partial anywhere: raw/ holds exactly the two good files, tmp/ is empty.
    files = raw_files(dataset)
    assert [p.name for p in files] == ["test-busy.jpg", "test-flaky.jpg"]
    for p in files:
        verify_image_file(p)
    assert not any(dataset.tmp_dir.iterdir())
    ledger.close()


def test_slow_and_stalled_servers_time_out(srv, tmp_path):
    urls = {
        "slow": srv.add("/slow.jpg", make_jpeg(11), delay=3.0),
        "stalled": srv.add("/stall.jpg", make_jpeg(12, size=64), stall_after=100, stall=3.0),
    }
    dataset, ledger = plan(tmp_path / "d", [(k, "Pikachu", u, {}) for k, u in urls.items()])
    summary = run(ledger, dataset, fast(timeout=0.5, retries=2))
    rows = by_sid(ledger)
    assert {k: (r.status, r.error.split(":", 1)[0]) for k, r in rows.items()} == {
        "slow": ("failed", "timeout"),
        "stalled": ("failed", "timeout"),
    }
    assert summary.failed == 2 and srv.hits["/slow.jpg"] == 2 and rows["slow"].attempts == 1
    assert raw_files(dataset) == [] and not any(dataset.tmp_dir.iterdir())
    ledger.close()


def test_failed_rows_wait_for_retry_failed(srv, tmp_path):
    url = srv.url("/later.jpg")
    dataset, ledger = plan(tmp_path / "d", [("x", "Pikachu", url, {})])
    assert run(ledger, dataset, fast()).failed == 1
    srv.add("/later.jpg", make_jpeg(3))
    assert run(ledger, dataset, fast()).done == 0  # failed rows are left alone by default
    assert srv.hits["/later.jpg"] == 1
    summary = run(ledger, dataset, fast(), retry_failed=True)
    row = by_sid(ledger)["x"]
    assert summary.done == 1 and row.status == "done" and row.error is None and row.attempts == 1
    ledger.close()


def test_limit_and_stale_temps_and_orphans(srv, tmp_path):
    urls = [srv.add(f"/{i}.jpg", make_jpeg(100 + i)) for i in range(4)]
    dataset, ledger = plan(tmp_path / "d", [(str(i), "Pikachu", u, {}) for i, u in enumerate(urls)])
    stale = dataset.tmp_dir / ".tmp-1-999-deadbeef"
    stale.write_bytes(b"partial")
    # A file renamed into place by a killed run whose ledger update was lost: adopted, not fetched.
    orphan = dataset.raw_dir / "Pikachu" / "test-3.jpg"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(make_jpeg(103))
    summary = run(ledger, dataset, fast(), limit=2)
    assert summary.done == 2 and not stale.exists()
    run(ledger, dataset, fast())
    rows = by_sid(ledger)
    assert all(r.status == "done" for r in rows.values())
    assert srv.hits["/3.jpg"] == 0 and rows["3"].meta.get("adopted") is True
    assert [srv.hits[f"/{i}.jpg"] for i in range(3)] == [1, 1, 1]
    ledger.close()


def test_token_bucket_and_concurrency_caps(srv, tmp_path):
    urls = [srv.add(f"/r{i}.jpg", make_jpeg(200 + i)) for i in range(8)]
    slow = [srv.add(f"/s{i}.jpg", make_jpeg(300 + i), delay=0.2) for i in range(6)]
    other = [srv.other_host_url(f"/s{i}.jpg") for i in range(6)]
    dataset, ledger = plan(
        tmp_path / "d",
        [(f"r{i}", "A", u, {}) for i, u in enumerate(urls)]
        + [(f"s{i}", "B", u, {}) for i, u in enumerate(slow)]
        + [(f"o{i}", "C", u, {}) for i, u in enumerate(other)],
    )
    cfg = fast(per_host_concurrency=2, global_concurrency=8, host_rates={"127.0.0.1": 4.0})
    summary = run(ledger, dataset, cfg)
    assert summary.failed == summary.quarantined == 0
    # 4 requests/s with burst 1 to 127.0.0.1: at most 4 (+1 for clock slop) in the first second.
    times = sorted(h.t for h in srv.requests if h.host == "127.0.0.1")
    assert len(times) == 14
    assert sum(1 for t in times if t - times[0] < 1.0) <= 5
    # localhost has no rate, but never more than 2 requests in flight per host.
    assert srv.max_in_flight["localhost"] <= 2 and srv.max_in_flight["127.0.0.1"] <= 2
    ledger.close()


def test_credentials_reach_only_their_host_and_are_never_shown(srv, tmp_path, capsys, caplog):
    secret = "s3cret-api-key-42"
    img = make_jpeg(7)
    srv.add("/private.jpg", img)
    srv.add("/hop.jpg", redirect=srv.other_host_url("/elsewhere.jpg"))
    srv.add("/elsewhere.jpg", make_jpeg(8))
    srv.add("/fail.jpg", fail_first=99, fail_status=503)
    dataset, ledger = plan(
        tmp_path / "d",
        [
            ("p", "A", srv.url("/private.jpg"), {}),
            ("h", "A", srv.url("/hop.jpg"), {}),
            ("f", "A", srv.url("/fail.jpg"), {}),
        ],
    )
    cfg = fast(auth=("alice", secret), auth_origins=(f"http://127.0.0.1:{srv.port}",))
    caplog.set_level(logging.DEBUG)
    summary = run(ledger, dataset, cfg)
    assert summary.done == 2 and summary.failed == 1
    sent = {(h.host, h.path): h.auth for h in srv.requests}
    assert sent[("127.0.0.1", "/private.jpg")].startswith("Basic ")
    assert sent[("localhost", "/elsewhere.jpg")] is None  # the redirect left the auth host: no credentials
    assert secret not in repr(cfg) and "alice" not in repr(cfg)
    ledger.close()
    stored = b"".join(p.read_bytes() for p in dataset.root.glob("ledger.sqlite*"))
    printed = capsys.readouterr()
    assert secret.encode() not in stored
    assert secret not in printed.out + printed.err + caplog.text
    assert "fail.jpg" in caplog.text or summary.failed == 1  # failures are logged without the key


def test_client_get_json_errors_and_helpers(srv):
    srv.add("/api.json", b'{"ok": true}', content_type="application/json")
    srv.add("/bad.json", b"<html>", content_type="application/json")
    srv.add("/422.json", b'{"message": "too many tags"}', content_type="application/json", status=422)
    with PoliteClient(fast()) as client:
        assert client.get_json(srv.url("/api.json")) == {"ok": True}
        with pytest.raises(FetchError) as err:
            client.get_json(srv.url("/422.json"))
        assert err.value.reason == "http-422" and err.value.response.json()["message"] == "too many tags"
        assert srv.hits["/422.json"] == 1  # 4xx other than 429 is not retried
        with pytest.raises(FetchError, match="bad-json"):
            client.get_json(srv.url("/bad.json"))
        with pytest.raises(FetchError, match="bad-scheme"):
            client.get("ftp://127.0.0.1/x.jpg")
    with pytest.raises(FetchError, match="cancelled"):
        client.get(srv.url("/api.json"))  # a closed client refuses new work
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert parse_retry_after("soon") is None
    assert redact_url("https://bob:pw@example.com:8080/x?y=1") == "https://example.com:8080/x?y=1"


def test_bad_settings_are_user_errors():
    from pokedata.errors import UserError

    with pytest.raises(UserError, match="per-host"):
        PoliteClient(HttpConfig(per_host_concurrency=0))
    with pytest.raises(UserError, match="rate"):
        PoliteClient(HttpConfig(host_rates={"x": 0}))


def test_same_bytes_in_one_batch_are_stored_once(srv, tmp_path, monkeypatch):
    import pokedata.fetch.download as download

    monkeypatch.setattr(download, "BATCH_WAIT", 30.0)  # one batch: recorded when the workers are done
    body = make_jpeg(40)
    urls = [srv.add(f"/same{i}.jpg", body) for i in range(3)]
    dataset, ledger = plan(
        tmp_path / "d",
        [("s0", "Pikachu", urls[0], {}), ("s1", "Pikachu", urls[1], {}), ("s2", "Eevee", urls[2], {})],
    )
    summary = run(ledger, dataset, fast())
    rows = by_sid(ledger)
    assert len(raw_files(dataset)) == 1  # deduplicated against files stored but not yet recorded
    assert len({r.path for r in rows.values()}) == 1 and len({r.sha256 for r in rows.values()}) == 1
    assert summary.done + summary.skipped == 3 and summary.skipped <= 1
    assert {r.status for r in rows.values()} <= {"done", "skipped"}
    owner = next(r for r in rows.values() if "shares_file_with" not in r.meta)
    assert all(r.meta.get("shares_file_with") == owner.id for r in rows.values() if r is not owner)
    ledger.close()


def test_group_commit_syncs_before_it_records_one_transaction_per_batch(tmp_path, monkeypatch):
    import pokedata.fetch.intake as intake

    dataset = DatasetDir.at(tmp_path / "d").create()
    ledger = Ledger(dataset.ledger_path)
    ledger.plan(Candidate("test", str(i), "Pikachu", f"http://x/{i}", {}) for i in range(5))
    items = ledger.select(source="test")
    calls: list[str] = []
    real_sync, real_mark_many = intake.sync_paths, Ledger.mark_many

    def sync(paths):
        paths = list(paths)
        calls.append(f"sync {len(paths)}")
        real_sync(paths)

    def mark_many(self, updates):
        updates = list(updates)
        calls.append(f"record {len(updates)}")
        return real_mark_many(self, updates)

    monkeypatch.setattr(intake, "sync_paths", sync)
    monkeypatch.setattr(Ledger, "mark_many", mark_many)
    outcomes, errors = [], []
    store = intake.GroupCommit(ledger, dataset, outcomes.append, errors.append, batch_size=64, max_wait=30.0)
    with store:
        stored = []
        for i, item in enumerate(items[:4]):
            tmp = intake.temp_path(dataset, item)
            tmp.write_bytes(make_jpeg(500 + min(i, 2)))  # rows 2 and 3: the same bytes
            stored.append(store.store(item, tmp, intake.check_file(tmp)))
        store.link(items[4], stored[0], {"same_url_as": items[0].id})
        # Renamed at once, recorded later: the window a kill leaves to orphan adoption.
        assert len(raw_files(dataset)) == 3 and not any(dataset.tmp_dir.iterdir())
        assert {it.status for it in ledger.select(source="test")} == {"planned"}
        assert stored[3].id == items[2].id  # a duplicate of a file not recorded yet
    assert calls == ["sync 3", "record 5"] and store.batches == 1 and not errors
    rows = {it.source_id: it for it in ledger.select(source="test")}
    assert [rows[k].status for k in "01234"] == ["done", "done", "done", "skipped", "skipped"]
    assert rows["3"].error == f"duplicate-of:{rows['2'].id}" and rows["4"].path == rows["0"].path
    assert sorted(o.status for o in outcomes) == ["done", "done", "done", "skipped", "skipped"]
    for it in rows.values():
        assert dataset.abs(it.path).is_file() and verify_image_file(dataset.abs(it.path))
    ledger.close()


def test_committer_error_stops_the_run_and_the_rerun_adopts_the_stored_files(srv, tmp_path, monkeypatch):
    import sqlite3

    urls = [srv.add(f"/e{i}.jpg", make_jpeg(600 + i)) for i in range(6)]
    dataset, ledger = plan(tmp_path / "d", [(str(i), "Pikachu", u, {}) for i, u in enumerate(urls)])

    def broken(self, updates):
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as m:
        m.setattr(Ledger, "mark_many", broken)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            run(ledger, dataset, fast())
    assert {r.status for r in by_sid(ledger).values()} == {"planned"}
    stored_before = raw_files(dataset)
    assert stored_before  # renamed into place, not recorded
    summary = run(ledger, dataset, fast())
    rows = by_sid(ledger)
    assert summary.done == 6 and {r.status for r in rows.values()} == {"done"}
    assert sorted(dataset.abs(r.path) for r in rows.values()) == raw_files(dataset)
    for p in stored_before:  # adopted, not downloaded again
        row = next(r for r in rows.values() if dataset.abs(r.path) == p)
        assert row.meta.get("adopted") is True and srv.hits[f"/e{row.source_id}.jpg"] == 1
    ledger.close()
