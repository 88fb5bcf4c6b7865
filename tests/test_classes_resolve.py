"""`poke classes resolve`: catalog names -> canonical Danbooru character tags, against the fake Danbooru."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli import app
from pokedata.catalog import read_catalog_csv
from pokedata.errors import UserError
from pokedata.fetch.resolve import ResolveConfig, resolve_catalog
from tests.servers.danbooru import FakeDanbooru


@pytest.fixture
def srv():
    with FakeDanbooru() as server:
        server.add_tag("pikachu", 90000)
        server.add_tag("pikachu_(cosplay)", 500)
        server.add_tag("mew_(pokemon)", 8000)
        server.add_tag("mew", 0)  # an empty (aliased-away) tag
        server.add_tag("mr._mime", 0)
        server.add_tag("mr_mime", 2500)
        server.add_alias("mr._mime", "mr_mime")
        server.add_alias("flabebe", "flabebe_(pokemon)", status="deleted")  # not active: ignored
        server.add_tag("flabebe_(cosplay)", 3)
        server.add_tag("eevee", 40000)
        server.add_tag("eevee", 12, category="general")  # same name, other category: not a character
        server.add_tag("eevee_(cosplay)", 40)
        yield server


def _catalog(path: Path, rows: list[tuple[str, str]]) -> Path:
    head = "class_index,name,dex,generation,form,danbooru_tag,search_query,type1,type2\n"
    lines = [f"{i},{n},{i + 1},1,base,{t},{n} pokemon,," for i, (n, t) in enumerate(rows)]
    path.write_text(head + "\n".join(lines) + "\n")
    return path


def _fast():
    from pokedata.fetch.http import HttpConfig

    return HttpConfig(retries=2, backoff_base=0.01, backoff_max=0.05, timeout=10)


def test_resolve_writes_canonical_tags_and_counts(srv, tmp_path):
    cat = _catalog(
        tmp_path / "cat.csv",
        [
            ("Pikachu", "pikachu"),
            ("Mew", "mew"),
            ("Mr. Mime", "mr._mime"),
            ("Flabébé", "flabebe"),
            ("Eevee", "eevee"),
        ],
    )
    out = tmp_path / "resolved.csv"
    cfg = ResolveConfig(
        catalog=cat, out=out, base_url=srv.base_url, api_rate=1000, http=_fast(), progress=False
    )
    path, results = resolve_catalog(cfg)
    assert path == out
    how = {r.name: (r.tag, r.post_count, r.how) for r in results}
    assert how["Pikachu"] == ("pikachu", 90000, "exact")
    assert how["Mew"] == ("mew_(pokemon)", 8000, "qualified")
    assert how["Mr. Mime"] == ("mr_mime", 2500, "alias")
    assert how["Flabébé"] == (None, None, "unresolved")
    assert how["Eevee"] == ("eevee", 40000, "exact")
    flabebe = next(r for r in results if r.name == "Flabébé")
    assert flabebe.suggestions == ("flabebe_(cosplay)",)
    loaded = read_catalog_csv(out)  # extra columns are accepted by the loader
    assert [c.danbooru_tag for c in loaded] == ["pikachu", "mew_(pokemon)", "mr_mime", "flabebe", "eevee"]
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert (
        rows[0]["post_count"] == "90000"
        and rows[3]["post_count"] == ""
        and rows[3]["resolved_by"] == "unresolved"
    )
    assert cat.read_text().count("mew_(pokemon)") == 0  # the input is untouched with --out
    assert not list(tmp_path.glob("*.resolve-cache.json"))
    # Requests: character category, ordered by count, prefix wildcard.
    first = srv.api_requests("/tags.json")[0]["query"]
    assert first == {
        "search[name_matches]": "pikachu*",
        "search[order]": "count",
        "limit": "20",
        "search[category]": "4",
    }


def test_conflicting_tags_keep_the_old_one(srv, tmp_path):
    cat = _catalog(tmp_path / "cat.csv", [("Mew", "mew"), ("Mew Two", "mew_(pokemon)")])
    _, results = resolve_catalog(
        ResolveConfig(catalog=cat, base_url=srv.base_url, api_rate=1000, http=_fast(), progress=False)
    )
    # "Mew Two" (tag mew_(pokemon), exact) keeps its tag; "Mew" would take it too: reported as a conflict.
    assert {r.name: r.how for r in results} == {"Mew": "conflict", "Mew Two": "exact"}
    assert [c.danbooru_tag for c in read_catalog_csv(cat)] == ["mew", "mew_(pokemon)"]  # rewritten in place


def test_cli_reports_unresolved_and_limit(srv, tmp_path, runner):
    cat = _catalog(tmp_path / "cat.csv", [("Flabébé", "flabebe"), ("Pikachu", "pikachu")])
    out = tmp_path / "out.csv"
    args = ["classes", "resolve", "--catalog", str(cat), "--out", str(out), "--base-url", srv.base_url,
            "--api-rate", "1000"]  # fmt: skip
    result = runner.invoke(app, [*args, "--limit", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Flabébé" in result.output and "names not resolved" in result.output
    assert len(srv.api_requests("/tags.json")) == 1 and len(srv.api_requests("/tag_aliases.json")) == 1
    assert read_catalog_csv(out).classes[1].danbooru_tag == "pikachu"


def test_shipped_catalog_needs_out(runner):
    result = runner.invoke(app, ["classes", "resolve", "--base-url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "--out" in result.output


def test_failure_keeps_progress_for_the_next_run(srv, tmp_path):
    cat = _catalog(tmp_path / "cat.csv", [("Pikachu", "pikachu"), ("Flabébé", "flabebe")])
    out = tmp_path / "out.csv"
    cfg = ResolveConfig(
        catalog=cat, out=out, base_url=srv.base_url, api_rate=1000, http=_fast(), progress=False
    )
    srv.throttle(100, retry_after="0", paths=("/tag_aliases.json",))  # Flabébé needs the aliases
    with pytest.raises(UserError, match="did not answer about 'Flabébé'"):
        resolve_catalog(cfg)
    assert out.with_name("out.csv.resolve-cache.json").is_file() and not out.exists()
    srv.throttle(0)
    before = [r["query"]["search[name_matches]"] for r in srv.api_requests("/tags.json")]
    _, results = resolve_catalog(cfg)
    after = [r["query"]["search[name_matches]"] for r in srv.api_requests("/tags.json")][len(before) :]
    assert after == ["flabebe*"]  # Pikachu came from the cache
    assert [r.how for r in results] == ["exact", "unresolved"]
    assert not out.with_name("out.csv.resolve-cache.json").exists()
