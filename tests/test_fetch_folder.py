"""`poke fetch folder`: import a local image folder (dirname / filename / catalog labels, copy or link)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cli import app
from pokedata.catalog import load_catalog
from pokedata.errors import UserError
from pokedata.fetch.folder import CatalogMatcher, FolderImportConfig, import_folder, raw_label
from pokedata.ledger import Ledger
from tests.conftest import REPO
from tests.helpers.kill import count_rows, stop_when


def _png(color: tuple[int, int, int], size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "PNG")
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _rows(data: Path):
    with Ledger(data / "ledger.sqlite") as ledger:
        return ledger.select(source="folder")


@pytest.fixture
def class_tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    _write(root / "Pikachu" / "a.png", _png((255, 255, 0)))
    _write(root / "Pikachu" / "b.png", _png((250, 250, 0)))
    _write(root / "Pikachu" / "sub" / "c.png", _png((240, 240, 0)))
    _write(root / "Bulbasaur" / "a.png", _png((0, 200, 0)))
    _write(root / "Bulbasaur" / "notes.txt", b"not an image")
    _write(root / ".hidden" / "x.png", _png((1, 2, 3)))
    _write(root / "Bulbasaur" / "broken.png", b"<html>oops</html>")
    return root


def test_dirname_import_and_rerun_adds_nothing(class_tree: Path, tmp_path: Path, runner):
    data = tmp_path / "data"
    result = runner.invoke(app, ["fetch", "folder", str(class_tree), "--data", str(data)])
    assert result.exit_code == 0, result.output
    rows = {r.source_id: r for r in _rows(data)}
    assert set(rows) == {"Pikachu/a.png", "Pikachu/b.png", "Pikachu/sub/c.png", "Bulbasaur/a.png",
                         "Bulbasaur/broken.png"}  # fmt: skip
    assert rows["Pikachu/sub/c.png"].class_name == "Pikachu"
    assert rows["Bulbasaur/broken.png"].status == "quarantined"
    assert rows["Bulbasaur/broken.png"].error.startswith("not-an-image")
    done = [r for r in rows.values() if r.status == "done"]
    assert len(done) == 4
    for r in done:
        stored = data / r.path
        assert stored.is_file() and r.path.startswith(f"raw/{r.class_name}/")
        assert stored.read_bytes() == (class_tree / r.source_id).read_bytes()
    before = sorted(p for p in (data / "raw").rglob("*") if p.is_file())

    again = runner.invoke(app, ["fetch", "folder", str(class_tree), "--data", str(data)])
    assert again.exit_code == 0, again.output
    assert len(_rows(data)) == 5
    assert sorted(p for p in (data / "raw").rglob("*") if p.is_file()) == before
    assert not list((data / "tmp").iterdir())


def test_filename_labels_and_duplicates(tmp_path: Path):
    root = tmp_path / "kaggle"
    _write(root / "pikachu.png", _png((255, 255, 0)))
    _write(root / "bulbasaur.png", _png((0, 200, 0)))
    _write(root / "copy" / "pikachu.png", _png((255, 255, 0)))  # same bytes, same class
    summary = import_folder(
        FolderImportConfig(root=root, data=tmp_path / "d", class_from="filename", progress=False)
    )
    rows = {r.source_id: r for r in _rows(tmp_path / "d")}
    assert rows["pikachu.png"].class_name == "pikachu"
    assert rows["bulbasaur.png"].class_name == "bulbasaur"
    dup = rows["copy/pikachu.png"]
    assert dup.status == "skipped" and dup.error == f"duplicate-of:{rows['pikachu.png'].id}"
    assert (summary.done, summary.skipped, summary.planned) == (2, 1, 3)


def test_catalog_matching_and_unmatched_skipped(tmp_path: Path, runner):
    root = tmp_path / "kaggle"
    _write(root / "mr-mime.png", _png((200, 0, 200)))
    _write(root / "Pikachu_2.png", _png((255, 255, 0)))
    _write(root / "charizard-mega-x.png", _png((255, 100, 0)))
    _write(root / "Flabebe.png", _png((255, 200, 200)))
    _write(root / "digimon.png", _png((0, 0, 255)))
    data = tmp_path / "data"
    result = runner.invoke(
        app, ["fetch", "folder", str(root), "--class-from", "catalog", "--data", str(data)]
    )
    assert result.exit_code == 0, result.output
    rows = {r.source_id: r for r in _rows(data)}
    assert rows["mr-mime.png"].class_name == "Mr. Mime"
    assert rows["Pikachu_2.png"].class_name == "Pikachu"
    assert rows["Flabebe.png"].class_name == "Flabébé"
    assert rows["Flabebe.png"].path.startswith("raw/Flabebe/")
    assert rows["digimon.png"].status == "skipped"
    assert rows["digimon.png"].error == "no-catalog-match:digimon"
    assert rows["digimon.png"].class_name == ""
    # "charizard-mega-x" is not how the catalog spells it (Mega Charizard X): skipped, not guessed.
    assert rows["charizard-mega-x.png"].status == "skipped"
    assert "no-catalog-match" in result.output


def test_catalog_matcher_rules():
    m = CatalogMatcher(load_catalog())
    assert m.match("Nidoran").name == "Nidoran"
    assert m.match("mega_charizard_x").name == "Mega Charizard X"
    assert m.match("porygon2").name == "Porygon2"  # a name ending in a digit stays itself
    assert m.match("pikachu (3)").name == "Pikachu"
    assert m.match("nidoran-f").name == "Nidoran" and m.match("Nidoran♂").name == "Nidoran"
    assert m.match("farfetchd").name == "Farfetch'd"
    assert m.match("meowstic_male").name == "Meowstic Male" and m.match("meowstic-m") is None  # not guessed
    assert m.match("") is None and m.match("zzz") is None
    assert raw_label("a/b/c.png", "dirname") == "a"
    assert raw_label("c.png", "dirname") == ""
    assert raw_label("a/c.png", "filename") == "c"
    assert raw_label("c.png", "catalog") == "c"


def test_link_mode_hard_links(class_tree: Path, tmp_path: Path):
    data = tmp_path / "data"
    import_folder(FolderImportConfig(root=class_tree, data=data, link=True, progress=False))
    rows = [r for r in _rows(data) if r.status == "done"]
    assert rows and all(r.meta["linked"] for r in rows)
    stored = data / rows[0].path
    assert os.stat(stored).st_ino == os.stat(class_tree / rows[0].source_id).st_ino


def test_missing_file_fails_then_retry(class_tree: Path, tmp_path: Path):
    data = tmp_path / "data"
    cfg = FolderImportConfig(root=class_tree, data=data, limit=1, progress=False)
    import_folder(cfg)  # plans everything, imports one (Bulbasaur/a.png comes first)
    moved = class_tree / "Pikachu" / "a.png"
    keep = moved.read_bytes()
    moved.unlink()
    summary = import_folder(FolderImportConfig(root=class_tree, data=data, progress=False))
    assert summary.failed == 1 and summary.planned == 0
    failed = [r for r in _rows(data) if r.status == "failed"]
    assert [r.source_id for r in failed] == ["Pikachu/a.png"]
    assert failed[0].error.startswith("missing-file")
    moved.write_bytes(keep)
    assert import_folder(FolderImportConfig(root=class_tree, data=data, progress=False)).done == 0
    again = import_folder(FolderImportConfig(root=class_tree, data=data, retry_failed=True, progress=False))
    assert again.done == 1


def test_bad_options_are_user_errors(tmp_path: Path, runner):
    with pytest.raises(UserError, match="--class-from"):
        FolderImportConfig(root=tmp_path, data=tmp_path / "d", class_from="parent").validate()
    with pytest.raises(UserError, match="inside the imported folder"):
        FolderImportConfig(root=tmp_path, data=tmp_path / "d").validate()
    result = runner.invoke(app, ["fetch", "folder", str(tmp_path / "nope"), "--data", str(tmp_path / "d")])
    assert result.exit_code == 2 and "does not exist" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["fetch", "folder", str(empty), "--data", str(tmp_path / "d")])
    assert result.exit_code == 2 and "no image files" in result.output


def test_same_layout_from_another_folder_is_reported(tmp_path: Path, caplog):
    first, second = tmp_path / "one", tmp_path / "two"
    _write(first / "Pikachu" / "a.png", _png((1, 1, 1)))
    _write(second / "Pikachu" / "a.png", _png((2, 2, 2)))
    _write(second / "Pikachu" / "b.png", _png((3, 3, 3)))
    data = tmp_path / "data"
    import_folder(FolderImportConfig(root=first, data=data, progress=False))
    with caplog.at_level("WARNING", logger="pokedata.fetch.folder"):
        summary = import_folder(FolderImportConfig(root=second, data=data, progress=False))
    assert summary.done == 1  # b.png; a.png clashes with one/Pikachu/a.png
    assert "Pikachu/a.png" in caplog.text and "another --data" in caplog.text


# The import in a child process, each file's copy slowed a little so the kill lands mid-run.
CHILD = """
import sys, time
from pathlib import Path
from pokedata.fetch import folder

real = folder.stage_local_file
folder.stage_local_file = lambda *a, **k: time.sleep(0.02) or real(*a, **k)
folder.import_folder(folder.FolderImportConfig(root=Path(sys.argv[1]), data=Path(sys.argv[2]), progress=False))
"""
DONE = "SELECT count(*) FROM items WHERE status = 'done'"


@pytest.mark.slow
def test_kill_9_mid_import_then_resume(tmp_path: Path):
    root = tmp_path / "src"
    for i in range(300):
        _write(root / f"c{i % 4}" / f"{i:04d}.png", _png((i % 256, i // 256, 7), size=16))
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(data)], cwd=REPO, env=env,
                            stderr=subprocess.PIPE)  # fmt: skip
    stop_when(proc, lambda: count_rows(data, DONE) >= 40)  # kill -9 mid-run, after some progress
    done_before = count_rows(data, DONE)
    assert 40 <= done_before < 300
    summary = import_folder(FolderImportConfig(root=root, data=data, progress=False))
    rows = _rows(data)
    assert len(rows) == 300 and all(r.status == "done" for r in rows)
    assert summary.planned == 0  # the killed run had planned every file before copying
    assert summary.done == 300 - done_before  # nothing done is copied again
    stored = sorted(p for p in (data / "raw").rglob("*") if p.is_file())
    assert len(stored) == 300 and not [p for p in (data / "raw").rglob(".tmp-*")]
    for r in rows:
        assert (data / r.path).read_bytes() == (root / r.source_id).read_bytes()
    assert not list((data / "tmp").iterdir())
