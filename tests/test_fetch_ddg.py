"""`poke fetch ddg`: the search call is replaced by a local function; images come over real HTTP."""

from __future__ import annotations

import pytest
from ddgs.exceptions import RatelimitException, TimeoutException

from cli import app
from pokedata.errors import UserError
from pokedata.fetch import ddg
from pokedata.fetch.ddg import DdgConfig, candidates, fetch_ddg
from pokedata.fetch.http import HttpConfig
from pokedata.ledger import Ledger
from tests.servers.images import ImageServer, make_jpeg


@pytest.fixture
def srv():
    with ImageServer() as server:
        for i in range(6):
            server.add(f"/img/{i}.jpg", make_jpeg(400 + i))
        yield server


def result(srv: ImageServer, i: int, **kw) -> dict:
    return {
        "title": f"picture {i}",
        "image": srv.url(f"/img/{i}.jpg"),
        "thumbnail": srv.url(f"/thumb/{i}.jpg"),
        "url": f"https://example.invalid/page/{i}",
        "width": "24",
        "height": 24,
        "source": "Bing",
        **kw,
    }


class FakeSearch:
    """Answers from a dict query -> results; raises the queued exceptions first."""

    def __init__(self, answers: dict[str, list[dict]], errors: dict[str, list[Exception]] | None = None):
        self.answers, self.errors = answers, errors or {}
        self.calls: list[str] = []

    def __call__(self, query: str, cfg: DdgConfig) -> list[dict]:
        self.calls.append(query)
        queued = self.errors.get(query)
        if queued:
            raise queued.pop(0)
        return self.answers.get(query, [])[: cfg.max_results]


def cfg_for(tmp_path, search, **kw) -> DdgConfig:
    http = HttpConfig(retries=2, backoff_base=0.01, backoff_max=0.02, timeout=10)
    base = dict(data=tmp_path / "d", search=search, http=http, progress=False, search_interval=0.0,
                search_backoff=0.01)  # fmt: skip
    return DdgConfig(**{**base, **kw})


def rows(tmp_path):
    with Ledger(tmp_path / "d" / "ledger.sqlite") as ledger:
        return ledger.select(source="ddg")


def test_query_results_are_deduped_planned_and_downloaded(srv, tmp_path):
    answers = {
        "pikachu pokemon": [
            result(srv, 0), result(srv, 1), result(srv, 0),  # a repeated URL is planned once
            result(srv, 2, image="data:image/png;base64,AAAA"),  # not http(s): dropped
            result(srv, 3, image=srv.url("/missing.jpg")),  # a dead link: failed, the rest go on
        ]
    }  # fmt: skip
    search = FakeSearch(answers)
    summary = fetch_ddg(cfg_for(tmp_path, search, query="pikachu pokemon", class_names=("pikachu",)))
    got = {r.source_id: r for r in rows(tmp_path)}
    assert summary.planned == 3 and summary.done == 2 and summary.failed == 1
    first = got[srv.url("/img/0.jpg")]
    assert first.class_name == "Pikachu" and first.status == "done"  # the catalog's spelling
    assert first.meta["title"] == "picture 0" and first.meta["page_url"] == "https://example.invalid/page/0"
    assert (first.meta["width"], first.meta["height"], first.meta["query"]) == (24, 24, "pikachu pokemon")
    assert first.path.startswith("raw/Pikachu/ddg-") and first.path.endswith(".jpg")
    assert got[srv.url("/missing.jpg")].error.startswith("http-404")
    assert srv.hits["/img/0.jpg"] == 1
    # Rerun: the finished search is not repeated, nothing is downloaded again.
    again = fetch_ddg(cfg_for(tmp_path, search, query="pikachu pokemon", class_names=("Pikachu",)))
    assert search.calls == ["pikachu pokemon"] and again.done == 0 and srv.hits["/img/0.jpg"] == 1
    # --search-again asks again; old rows are kept, new results added.
    search.answers["pikachu pokemon"].append(result(srv, 4))
    more = fetch_ddg(
        cfg_for(tmp_path, search, query="pikachu pokemon", class_names=("Pikachu",), search_again=True)
    )
    assert more.planned == 1 and more.done == 1 and len(search.calls) == 2


def test_catalog_queries_share_urls_across_classes_and_survive_search_errors(srv, tmp_path):
    answers = {
        "Pikachu pokemon": [result(srv, 0), result(srv, 1)],
        "Raichu pokemon": [result(srv, 1), result(srv, 2)],  # /img/1 found for both classes
        "Bulbasaur pokemon": [result(srv, 5)],
    }
    errors = {
        "Raichu pokemon": [RatelimitException("202 Ratelimit")],  # retried, then fine
        "Bulbasaur pokemon": [TimeoutException("timed out")] * 3,  # every try fails: recorded
    }
    search = FakeSearch(answers, errors)
    cfg = cfg_for(
        tmp_path, search, catalog=True, class_names=("Pikachu", "Raichu", "Bulbasaur"), search_retries=3
    )
    summary = fetch_ddg(cfg)
    got = {(r.source_id, r.class_name): r for r in rows(tmp_path)}
    assert summary.planned == 4 and summary.done == 4 and summary.errors == {"search-failed": 1}
    shared_a, shared_b = got[(srv.url("/img/1.jpg"), "Pikachu")], got[(srv.url("/img/1.jpg"), "Raichu")]
    assert shared_a.path == shared_b.path and srv.hits["/img/1.jpg"] == 1
    assert search.calls.count("Raichu pokemon") == 2 and search.calls.count("Bulbasaur pokemon") == 3
    # The failed query is searched again by the next run (and only it).
    search.calls.clear()
    again = fetch_ddg(cfg)
    assert search.calls == ["Bulbasaur pokemon"] and again.done == 1


def test_limit_and_dry_run(srv, tmp_path, runner, monkeypatch):
    search = FakeSearch({"q": [result(srv, i) for i in range(4)]})
    summary = fetch_ddg(cfg_for(tmp_path, search, query="q", class_names=("Pikachu",), limit=1))
    assert summary.planned == 4 and summary.done == 1
    monkeypatch.setattr(ddg, "ddgs_search", lambda q, c: pytest.fail("a dry run must not search"))
    data = str(tmp_path / "d")
    out = runner.invoke(app, ["fetch", "ddg", "--catalog", "--class", "Pikachu", "--class", "Mew",
                              "--dry-run", "--data", data])  # fmt: skip
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())  # rich wraps cells: compare words
    assert "Pikachu" in text and "Mew" in text and "nothing searched" in text.replace("│", "")
    assert sum(srv.hits.values()) == 1


def test_cli_runs_the_search_and_downloads(srv, tmp_path, runner, monkeypatch):
    monkeypatch.setattr(ddg, "ddgs_search", FakeSearch({"mew pokemon": [result(srv, 3), result(srv, 4)]}))
    data = str(tmp_path / "d")
    args = ["fetch", "ddg", "--query", "mew pokemon", "--class", "Mew", "--data", data, "--per-host", "4"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert sorted(r.status for r in rows(tmp_path)) == ["done", "done"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to search for"),
        (["--query", "x"], "exactly one --class"),
        (["--query", "x", "--class", "A", "--catalog"], "exclude each other"),
        (["--catalog", "--safesearch", "maybe"], "--safesearch"),
        (["--catalog", "--class", "Notamon"], "not in the catalog"),
        (["--catalog", "--per-host", "0"], "--per-host"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, runner, tmp_path):
    out = runner.invoke(app, ["fetch", "ddg", "--dry-run", "--data", str(tmp_path / "d"), *args])
    assert out.exit_code == 2 and message in out.output


def test_candidates_from_raw_results():
    from pokedata.fetch.ddg import SearchQuery

    q = SearchQuery("eevee pokemon", "Eevee")
    res = [{"image": "https://a.example/1.png", "width": "x", "title": None}, {"image": ""}]
    (c,) = candidates(res, q)
    assert c.source == "ddg" and c.source_id == c.url == "https://a.example/1.png"
    assert c.meta["width"] is None and c.meta["title"] == "" and c.class_name == "Eevee"
    with pytest.raises(UserError):
        DdgConfig(query="x", class_names=("A",), max_results=0).validate()
