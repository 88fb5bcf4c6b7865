"""`poke report`: the generated HTML is parsed back and checked against the ledger and the manifest."""

from __future__ import annotations

import json
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest
from PIL import Image

from cli import app
from pokedata.errors import UserError
from pokedata.manifest import ManifestConfig, build_manifest
from pokedata.report import ReportConfig, build_report
from pokedata.report.sprites import COLS
from pokedata.report.tiles import class_key
from pokedata.status import dataset_status
from tests.helpers.report_data import (
    CLASSES,
    DOTS,
    EVIL,
    EVIL_PAGE,
    EVIL_TAGS,
    QUOTES,
    catalog_csv,
    make_dataset,
)


class Page(HTMLParser):
    """What a test needs from one page: links, scripts, attributes, tables, tiles."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.path, self.links, self.scripts, self.attrs, self.tiles = path, [], [], [], []
        self.tables: dict[str, list[list[str]]] = {}
        self.heads: dict[str, list[str]] = {}
        self._thead = False
        self._table, self._row, self._cell, self._script, self._section = None, None, None, False, None
        self.text: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs += attrs
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])
        for url in re.findall(r"url\('([^']*)'\)", a.get("style") or ""):
            self.links.append(url)
        if tag == "script":
            self.scripts.append(a.get("src"))
            self._script = True
        if tag == "section":
            self._section = a.get("id")
        if tag == "figure" and "t" in (a.get("class") or "").split():
            self.tiles.append((self._section, a.get("class", "").split(), json.loads(a["data-p"])))
        if tag == "table":
            self._table = a.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "thead":
            self._thead = True
        elif tag == "tr" and self._table:
            self._row = []
            if self._thead:
                self.heads[self._table] = self._row
            else:
                self.tables[self._table].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = self._row = None
        elif tag == "thead":
            self._thead = False
        elif tag == "script":
            self._script = False

    def handle_data(self, data):
        if self._script and data.strip():
            raise AssertionError(f"inline script in {self.path}: {data[:80]!r}")
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)

    def rows(self, table: str) -> dict[str, list[str]]:
        """First column -> the other cells (the header row is in :attr:`heads`)."""
        return {r[0]: r[1:] for r in self.tables[table]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    root = make_dataset(tmp / "ds")
    cat = catalog_csv(tmp / "catalog.csv")
    build_manifest(
        ManifestConfig(data=root, catalog=cat, name="m", out=tmp / "manifests", chart=False, val=0.3)
    )
    out = tmp / "report"
    summary = build_report(ReportConfig(data=root, manifest=tmp / "manifests" / "m", out=out, workers=1))
    return root, tmp / "manifests" / "m", out, summary


def _pages(out: Path) -> dict[Path, Page]:
    return {p: Page(p) for p in sorted(out.rglob("*.html"))}


def test_every_link_resolves_to_a_file_in_the_report(built):
    _root, _m, out, _summary = built
    pages = _pages(out)
    assert len(pages) >= 8
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https"):
                continue
            assert not parts.scheme, f"{path.name}: link {link!r} leaves the report"
            target = (path.parent / unquote(parts.path)).resolve()
            assert target.is_relative_to(out.resolve()), f"{path.name}: {link!r} points outside"
            assert target.is_file(), f"{path.name}: {link!r} does not resolve"


def test_classes_table_counts_match_ledger_and_manifest(built):
    root, mdir, out, summary = built
    table = Page(out / "classes.html").rows("classes")
    header = Page(out / "classes.html").heads["classes"]
    assert set(table) == set(CLASSES) and summary.classes == len(CLASSES)
    conn = sqlite3.connect(root / "ledger.sqlite")
    manifest = pd.read_parquet(mdir / "manifest.parquet")
    for cls, cells in table.items():
        row = dict(zip(header[1:], (int(c.replace(",", "")) for c in cells), strict=True))
        q = "SELECT count(*) FROM images im JOIN items it ON it.id = im.item_id WHERE it.class_name = ?"
        expect = {
            "items": conn.execute("SELECT count(*) FROM items WHERE class_name = ?", (cls,)).fetchone()[0],
            "images": conn.execute(q, (cls,)).fetchone()[0],
            "kept": conn.execute(
                q + " AND im.status='done' AND dup_of IS NULL AND conflict=0", (cls,)
            ).fetchone()[0],
            "duplicates": conn.execute(q + " AND dup_of IS NOT NULL", (cls,)).fetchone()[0],
            "conflicts": conn.execute(q + " AND conflict = 1", (cls,)).fetchone()[0],
            "quarantined": conn.execute(q + " AND im.status = 'quarantined'", (cls,)).fetchone()[0]
            + conn.execute(
                "SELECT count(*) FROM items WHERE class_name=? AND status='quarantined'", (cls,)
            ).fetchone()[0],
        }
        mine = manifest[manifest["class_name"] == cls]
        expect.update({s: int((mine["split"] == s).sum()) for s in ("train", "val", "test")})
        expect["manifest"] = len(mine)
        assert row == expect, cls
    assert table["Pikachu"][header.index("duplicates") - 1] == "2"


def test_class_pages_show_kept_groups_and_quarantine_with_provenance(built):
    root, _m, out, _summary = built
    page = Page(out / "class" / f"{class_key('Pikachu')}.html")
    kept = [t for t in page.tiles if t[0] == "kept-images"]
    groups = [t for t in page.tiles if t[0] == "groups"]
    assert len(kept) == 4  # 3 drawn + the survivor of the duplicate group
    assert len(kept) + 1 == len([t for t in kept + groups if "copy" not in t[1]])
    assert [t[2].get("distance") for t in groups] == [None, 0, 3]  # survivor first, then by distance
    assert "keep" in groups[0][1] and all("copy" in t[1] for t in groups[1:])
    info = kept[0][2]
    assert info["tags"] == EVIL_TAGS and info["rating"] == "g" and info["post id"] == info["source id"]
    assert info["page"] == EVIL_PAGE and info["split"] in ("train", "val")
    bad = Page(out / "class" / f"{class_key(DOTS)}.html")
    reasons = sorted(t[2]["reason"] for t in bad.tiles if t[0] == "quarantine")
    assert reasons == ["not-an-image: magic <script>x</script>", "too-small: 8x8 px <b>tiny</b>"]
    conflicts = Page(out / "conflicts.html")
    assert sorted(t[2]["class"] for t in conflicts.tiles) == sorted([EVIL, QUOTES])
    quarantine = Page(out / "quarantine.html")
    assert len(quarantine.tiles) == 2 and len(quarantine.rows("quarantined")) == 2


def test_sprite_sheets_hold_one_cell_per_tile(built):
    _root, _m, out, _summary = built
    for path, page in _pages(out).items():
        if not page.tiles:
            continue
        sheets = {link for link in page.links if link.endswith(".webp")}
        assert len(sheets) == 1, path.name
        with Image.open((path.parent / sheets.pop()).resolve()) as im:
            assert im.format == "WEBP"
            assert im.height == -(-len(page.tiles) // COLS) * 64
            assert im.width == min(len(page.tiles), COLS) * 64


def test_hostile_names_are_escaped(built):
    _root, _m, out, _summary = built
    for path, page in _pages(out).items():
        source = path.read_text(encoding="utf-8")
        assert "<script>alert" not in source and "<img src=x" not in source and "<b>" not in source, path.name
        assert all(s is not None and s.endswith("assets/report.js") for s in page.scripts), path.name
        for key, value in page.attrs:
            assert not key.startswith("on"), f"{path.name}: event handler {key}={value!r}"
            if key in ("href", "src"):
                assert not (value or "").lower().startswith(("javascript:", "data:")), path.name
    names = Page(out / "classes.html").rows("classes")
    assert EVIL in names and QUOTES in names and DOTS in names  # shown as text, exactly
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_overview_is_poke_status_json(built, runner):
    root, _m, out, _summary = built
    result = runner.invoke(app, ["status", "--data", str(root), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert json.loads((out / "status.json").read_text()) == status == dataset_status(root)
    dataset = Page(out / "index.html").rows("dataset-figures")
    assert dataset["ledger rows"] == [f"{status['items']:,}"]
    for st, n in status["by_status"].items():
        assert dataset[st] == [str(n)]
    by_source = Page(out / "index.html").rows("by-source")
    assert {k: int(v[-1]) for k, v in by_source.items()} == {
        k: v["total"] for k, v in status["by_source"].items()
    }


def test_rerun_writes_only_what_changed(built, tmp_path):
    root, mdir, out, _summary = built
    again = build_report(ReportConfig(data=root, manifest=mdir, out=out, workers=1))
    assert again.written == 0 and again.sheets_rendered == 0 and again.unchanged > 10
    other = out / "class" / f"{class_key(QUOTES)}.html"
    before = other.stat().st_mtime_ns
    conn = sqlite3.connect(root / "ledger.sqlite")  # fold one more Pikachu image into the group
    with conn:
        (img,) = conn.execute(
            "SELECT im.id FROM images im JOIN items it ON it.id = im.item_id WHERE it.class_name = 'Pikachu'"
            " AND dup_group IS NULL AND im.status = 'done' ORDER BY im.id LIMIT 1"
        ).fetchone()
        (group,) = conn.execute("SELECT dup_group FROM images WHERE dup_group IS NOT NULL LIMIT 1").fetchone()
        conn.execute(
            "UPDATE images SET dup_of = ?, dup_group = ?, dup_kind = 'near' WHERE id = ?", (group, group, img)
        )
    try:
        third = build_report(ReportConfig(data=root, manifest=mdir, out=out, workers=1))
        # the Pikachu page and its sheet, the overview, the classes table, status.json (conflicts and the
        # other classes are untouched)
        assert third.sheets_rendered == 1 and 3 <= third.written <= 5, third
        assert other.stat().st_mtime_ns == before
    finally:
        with conn:
            conn.execute(
                "UPDATE images SET dup_of = NULL, dup_group = NULL, dup_kind = NULL WHERE id = ?", (img,)
            )
        conn.close()
        build_report(ReportConfig(data=root, manifest=mdir, out=out, workers=1))


def test_run_page_curves_grids_and_unknown_steps(built, tmp_path):
    root, mdir, _out, _summary = built
    run = tmp_path / "run"
    (run / "classifier").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"manifest_dir": str(mdir)}))
    (run / "pipeline.json").write_text(
        json.dumps({"steps": {"classify": {"seconds": 12.5, "status": "done"}}})
    )
    (run / "classifier" / "done.json").write_text(json.dumps({"finished": "2026-01-01", "val_top1": 0.5}))
    rows = [{"epoch": e, "step": 10 * e, "train_loss": 2.0 / e, "val_top1": 0.1 * e} for e in range(1, 5)]
    (run / "classifier" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "pretrain" / "recon").mkdir(parents=True)
    for e in range(1, 13):
        Image.new("RGB", (16, 8), (e * 20, 0, 0)).save(run / "pretrain" / "recon" / f"epoch-{e:03d}.png")
    (run / "gan" / "grids").mkdir(parents=True)
    for step in (4, 8, 12):
        Image.new("RGB", (8, 8), (0, step * 10, 0)).save(run / "gan" / "grids" / f"step-{step:07d}.png")
    from torch.utils.tensorboard import SummaryWriter

    (run / "progan").mkdir()  # losses only in TensorBoard, samples as a GIF
    with SummaryWriter(str(run / "progan" / "tb")) as writer:
        for step in range(1, 6):
            writer.add_scalar("progan/d_loss", 1.0 / step, step)
            writer.add_scalar("progan/g_loss", 2.0 / step, step)
    frames = [Image.new("RGB", (8, 8), (c, c, 0)) for c in (0, 120, 240)]
    frames[0].save(run / "progan" / "all_samples.gif", save_all=True, append_images=frames[1:])
    (run / "judge").mkdir()  # a step the report does not know: still listed, curves drawn
    (run / "judge" / "metrics.jsonl").write_text(
        '{"step": 1, "judge_score": 3.5}\n{"step": 2, "judge_score": 4}\n'
    )
    out = tmp_path / "report"
    build_report(ReportConfig(data=root, run=run, out=out, workers=1))
    page = Page(out / "run.html")
    steps = page.rows("steps")
    assert steps["classifier"][:3] == ["done", "12.5", "2026-01-01"]
    assert steps["pretrain"][0] == "started, not finished" and steps["judge"][0] == "started, not finished"
    svg = (out / "run.html").read_text()
    assert svg.count("<svg") == 4  # classifier loss and fractions, progan loss, judge_score (not pretrain)
    assert "judge: judge_score" in svg and "classifier: loss" in svg and "progan: loss" in svg
    assert (out / "run" / "progan" / "all_samples.gif").is_file()
    grids = sorted(p.name for p in (out / "run" / "pretrain" / "recon").iterdir())
    assert len(grids) == 8 and grids[0] == "epoch-001.png" and grids[-1] == "epoch-012.png"
    assert len(list((out / "run" / "gan" / "grids").iterdir())) == 3  # fewer than 8: all of them
    assert Page(out / "index.html").rows("manifest-figures")  # the run's manifest is used without --manifest


def test_errors_are_clear(built, tmp_path, runner):
    root, mdir, _out, _summary = built
    with pytest.raises(UserError, match="no ledger"):
        build_report(ReportConfig(data=tmp_path / "nothing", out=tmp_path / "r"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["report", "--data", str(root), "--out", str(tmp_path / "busy")])
    assert result.exit_code == 2 and "not a poke report" in result.output
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    result = runner.invoke(
        app, ["report", "--data", str(root), "--run", str(tmp_path), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "no run.json" in result.output
    result = runner.invoke(
        app, ["report", "--data", str(root), "--page-size", "3", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "--page-size" in result.output
    other = make_dataset(tmp_path / "other")  # a manifest of another dataset directory
    args = ["report", "--data", str(other), "--manifest", str(mdir), "--out", str(tmp_path / "r2")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "was built from" in result.output


def test_cli_report_prints_the_index(built, tmp_path, runner):
    root, mdir, _out, _summary = built
    out = tmp_path / "cli-report"
    result = runner.invoke(
        app, ["report", "--data", str(root), "--manifest", str(mdir), "--out", str(out), "--format", "jpeg"]
    )
    assert result.exit_code == 0, result.output
    assert str(out / "index.html") in result.output.replace("\n", "")
    assert list((out / "sheets").glob("*.jpg")) and not list((out / "sheets").glob("*.webp"))


def test_per_pair_conflicts_of_the_dedup_report(tmp_path):
    """A dedup report listing cross-class pairs (not only ledger marks) shows them on the conflicts page;
    an older report (group ids) is read through the ledger's marks alone."""
    root = make_dataset(tmp_path / "ds")
    conn = sqlite3.connect(root / "ledger.sqlite")
    pika, dots = (
        conn.execute(
            "SELECT im.id FROM images im JOIN items it ON it.id = im.item_id WHERE it.class_name = ? AND conflict = 0"
            " AND im.status = 'done' ORDER BY im.id LIMIT 1",
            (cls,),
        ).fetchone()[0]
        for cls in ("Pikachu", DOTS)
    )
    conn.close()
    doc = {"settings": {"method": "phash"}, "summary": {}, "groups": [], "conflicts": [
        {"images": [pika, dots], "classes": ["Pikachu", DOTS], "distance": 2, "marked": []},
        {"images": [pika, 999999], "classes": ["Pikachu", "?"], "distance": 1, "marked": []},  # unknown: skipped
    ]}  # fmt: skip
    (root / "reports" / "dedup.json").write_text(json.dumps(doc))
    out = tmp_path / "report"
    build_report(ReportConfig(data=root, out=out, workers=1))
    page = Page(out / "conflicts.html")
    pairs = [t for t in page.tiles if t[0] == "conflict-pairs"]
    assert [t[2]["image"] for t in pairs] == [pika, dots]
    assert "distance 2: Pikachu / ../../etc/passwd" in "".join(page.text)
    doc["conflicts"] = [pika]  # the older format
    (root / "reports" / "dedup.json").write_text(json.dumps(doc))
    build_report(ReportConfig(data=root, out=out, workers=1))
    assert not [t for t in Page(out / "conflicts.html").tiles if t[0] == "conflict-pairs"]


def test_pages_split_a_large_class_and_every_tile_is_shown_once(tmp_path):
    from tests.helpers.report_data import Builder

    root = make_dataset(tmp_path / "ds")
    b = Builder(root)
    for j in range(37):
        b.image(b.item("Pikachu"), "Pikachu", colour=(j * 6, 120, 40))
    b.ledger.close()
    out = tmp_path / "report"
    build_report(ReportConfig(data=root, out=out, page_size=16, workers=1))
    key = class_key("Pikachu")
    pages = [out / "class" / name for name in (f"{key}.html", f"{key}-p2.html", f"{key}-p3.html")]
    assert sorted(pages) == sorted((out / "class").glob(f"{key}*.html"))
    shown = [t[2]["image"] for p in pages for t in Page(p).tiles if t[0] == "kept-images"]
    conn = sqlite3.connect(root / "ledger.sqlite")
    kept = conn.execute(
        "SELECT im.id FROM images im JOIN items it ON it.id = im.item_id WHERE it.class_name = 'Pikachu'"
        " AND im.status = 'done' AND dup_of IS NULL AND conflict = 0 ORDER BY im.id"
    ).fetchall()
    assert sorted(shown) == [i for (i,) in kept] and len(shown) == 41
    for p in pages:  # each page has its own sheet, and its pager links resolve
        page = Page(p)
        assert any(link.endswith(f"{key}-p{pages.index(p) + 1}.webp") for link in page.links)
        for link in page.links:
            if link.endswith(".html"):
                assert (p.parent / link).resolve().is_file(), link


def test_a_vanished_class_is_removed_and_force_redraws(tmp_path):
    root = make_dataset(tmp_path / "ds")
    out = tmp_path / "report"
    build_report(ReportConfig(data=root, out=out, workers=1))
    page = out / "class" / f"{class_key(QUOTES)}.html"
    sheet = out / "sheets" / f"{class_key(QUOTES)}-p1.webp"
    assert page.is_file() and sheet.is_file()
    conn = sqlite3.connect(root / "ledger.sqlite")
    with conn:  # the class is renamed (a catalog fix): its old pages must go
        conn.execute("UPDATE items SET class_name = 'Mr. Mime' WHERE class_name = ?", (QUOTES,))
    conn.close()
    again = build_report(ReportConfig(data=root, out=out, workers=1, force=True))
    assert not page.exists() and not sheet.exists() and again.removed >= 2
    assert (out / "class" / f"{class_key('Mr. Mime')}.html").is_file()
    assert again.sheets_reused == 0 and again.unchanged == 0  # --force redraws everything
    assert json.loads((out / ".poke-report.json").read_text())["files"].keys() == {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".poke-report.json"
    }


def test_a_killed_build_resumes_to_a_complete_report(tmp_path, monkeypatch):
    """A build killed while drawing sheets leaves complete files; the next build finishes the job."""
    import pokedata.report.site as site

    root = make_dataset(tmp_path / "ds")
    out = tmp_path / "report"

    def killed(jobs, workers):
        raise KeyboardInterrupt  # what a Ctrl-C in the middle of the sheets looks like

    monkeypatch.setattr(site, "render_many", killed)
    with pytest.raises(KeyboardInterrupt):
        build_report(ReportConfig(data=root, out=out, workers=1))
    assert not list(out.rglob(".tmp-*")) and (out / "index.html").is_file() and not (out / "sheets").exists()
    monkeypatch.undo()
    again = build_report(ReportConfig(data=root, out=out, workers=1))
    assert again.sheets_rendered > 0 and again.written >= again.sheets_rendered
    for path, page in _pages(out).items():
        for link in page.links:
            if not urlsplit(link).scheme:
                assert (path.parent / unquote(urlsplit(link).path)).resolve().is_file(), (path.name, link)
    assert build_report(ReportConfig(data=root, out=out, workers=1)).written == 0
