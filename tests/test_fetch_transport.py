"""PoliteClient's urllib3 transport (issue 17) and the group commit's batching, against servers on 127.0.0.1.

What ``requests`` did for the client and the transport now does itself: query parameters, proxies from the
environment, bodies read as bytes / text / JSON, keep-alive; the watchdog and the committer wake only when
they must. No patching of the transport: real local servers.
"""

from __future__ import annotations

import time

import pytest

from pokedata.fetch import intake
from pokedata.fetch.http import FetchError, HttpConfig, PoliteClient
from pokedata.fetch.transport import with_params
from pokedata.ledger import Candidate, Ledger
from pokedata.store import DatasetDir
from tests.servers.hostile import HostileServer, body, drip, json_body
from tests.servers.images import ImageServer, make_jpeg


def fast(**kw) -> HttpConfig:
    base = dict(retries=2, backoff_base=0.01, backoff_max=0.02, timeout=5.0, per_host_concurrency=4)
    return HttpConfig(**{**base, **kw})


def wait_for(check, what: str, seconds: float = 30.0) -> None:
    """Wait until ``check()`` is true (a generous bound against a hang, not a timing assertion)."""
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"still waiting for {what} after {seconds:g}s")
        time.sleep(0.01)


def test_params_join_the_query_and_none_values_are_left_out():
    assert with_params("http://h/p", None) == "http://h/p"
    assert with_params("http://h/p?a=1", {"b": "x y", "c": None}) == "http://h/p?a=1&b=x+y"
    assert with_params("http://h/p", {"tags": "a b:c", "n": [1, 2]}) == "http://h/p?tags=a+b%3Ac&n=1&n=2"
    assert with_params("http://h/p", {"c": None}) == "http://h/p"


def test_bodies_as_json_text_and_stream_over_one_kept_alive_connection():
    with HostileServer() as srv:
        srv.route("/api.json", json_body(raw='{"page": 2, "name": "Flabébé"}'.encode()))  # UTF-8
        srv.route("/a.jpg", body(make_jpeg(1)))
        with PoliteClient(fast()) as client:
            got = client.get_json(srv.url("/api.json"), params={"tags": "pikachu solo", "page": "b7"})
            assert got == {"page": 2, "name": "Flabébé"}
            assert srv.requests[-1].query == {"tags": ["pikachu solo"], "page": ["b7"]}
            resp = client.get(srv.url("/api.json"))
            assert resp.status_code == 200 and "Flabébé" in resp.text and resp.headers["content-type"]
            with client.request(srv.url("/a.jpg")) as streamed:
                data = b"".join(streamed.iter_content(1024))
            assert data == make_jpeg(1)
            sockets = client._transport.sockets()  # noqa: SLF001  (what close() shuts down)
            assert len(sockets) == 1  # three requests, one connection: bodies read to the end keep it


def test_a_half_read_body_drops_its_connection_and_frees_its_slot():
    with ImageServer() as srv:
        url = srv.add("/big.jpg", make_jpeg(2), pad_to=300_000)
        with PoliteClient(fast(per_host_concurrency=1, global_concurrency=1)) as client:
            with client.request(url) as resp:
                next(resp.iter_content(1024))  # read 1 kB of 300 kB, then close
            assert client.get(url).content[:2] == b"\xff\xd8"  # the only slot is free again
    assert srv.hits["/big.jpg"] == 2


def test_proxy_from_the_environment_is_used_unless_no_proxy_says_otherwise(monkeypatch):
    with ImageServer() as proxy:
        proxy.add("/via-proxy.jpg", make_jpeg(3))  # a proxy is asked for the absolute URL: same path
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with PoliteClient(fast()) as client:
            assert client.get("http://poke-test.invalid/via-proxy.jpg").content == make_jpeg(3)
        assert proxy.hits["/via-proxy.jpg"] == 1 and proxy.requests[0].host == "poke-test.invalid"
        monkeypatch.setenv("no_proxy", "poke-test.invalid")
        with PoliteClient(fast(retries=1)) as client, pytest.raises(FetchError, match="connection"):
            client.get("http://poke-test.invalid/via-proxy.jpg")  # not through the proxy: no such host
        assert proxy.hits["/via-proxy.jpg"] == 1


def test_connection_refused_and_bad_urls_have_their_reasons():
    with ImageServer() as srv:
        port = srv.port
    with PoliteClient(fast(retries=1)) as client:
        with pytest.raises(FetchError) as err:
            client.get(f"http://127.0.0.1:{port}/gone.jpg")  # the server is stopped: refused
        assert err.value.reason == "connection"
        with pytest.raises(FetchError) as err:
            client.get("http:///no-host.jpg")
        assert err.value.reason == "bad-url"


def test_a_short_deadline_fires_while_a_long_one_is_watched():
    """The watchdog sleeps until its earliest deadline; a watch added later with an earlier one wakes it."""
    data = make_jpeg(4, size=64)
    with HostileServer() as srv:
        srv.route("/slow1.jpg", drip(data, every=0.1))
        srv.route("/slow2.jpg", drip(data, every=0.1))
        with PoliteClient(fast()) as client:
            first = client.request(srv.url("/slow1.jpg"))
            second = client.request(srv.url("/slow2.jpg"))
            with (
                client.watch(first, time.monotonic() + 600),
                client.watch(second, time.monotonic() + 0.5) as w,
            ):
                with pytest.raises(Exception):  # noqa: B017,PT011  (whatever the cut read raises)
                    b"".join(second.iter_content(1024))
                assert w.expired
            first.close()
            second.close()


def _planned(tmp_path, n: int):
    """A fresh dataset whose ledger has ``n`` planned rows: (dataset, ledger, items)."""
    dataset = DatasetDir.at(tmp_path / "d").create()
    ledger = Ledger(dataset.ledger_path)
    ledger.plan(Candidate("test", str(i), "Pikachu", f"http://x/{i}", {}) for i in range(n))
    return dataset, ledger, ledger.select(source="test")


def _store_all(store, dataset, items, seed: int) -> None:
    """Hand the committer one checked JPEG per item, as the downloader does."""
    for i, item in enumerate(items):
        tmp = intake.temp_path(dataset, item)
        tmp.write_bytes(make_jpeg(seed + i))
        store.store(item, tmp, intake.check_file(tmp))


def test_the_committer_records_full_batches_and_flushes_the_rest_in_order(tmp_path):
    dataset, ledger, items = _planned(tmp_path, 5)
    outcomes: list = []
    store = intake.GroupCommit(ledger, dataset, outcomes.append, pytest.fail, batch_size=2, max_wait=600.0)
    with store:
        _store_all(store, dataset, items, 700)
        wait_for(lambda: store.batches == 2, "two full batches")  # recorded without waiting max_wait
        assert len(outcomes) == 4
        assert [it.status for it in ledger.select(source="test")] == ["done"] * 4 + ["planned"]
        store.flush()  # the last row, alone in its batch, is recorded now
        wait_for(lambda: store.batches == 3, "the flushed batch")
    assert [it.status for it in ledger.select(source="test")] == ["done"] * 5
    ledger.close()


def test_close_records_everything_queued(tmp_path):
    dataset, ledger, items = _planned(tmp_path, 7)
    store = intake.GroupCommit(ledger, dataset, lambda o: None, pytest.fail, batch_size=3, max_wait=600.0)
    store.start()
    _store_all(store, dataset, items, 800)
    store.close()
    assert store.batches == 3 and {it.status for it in ledger.select(source="test")} == {"done"}
    ledger.close()
