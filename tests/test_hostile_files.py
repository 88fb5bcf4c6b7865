"""Hostile files and folders (issue 14): symlinks, symlink loops, FIFOs and devices named like images,
non-UTF-8 file names, huge-but-legit images. Only regular files are opened, odd names get safe names, and
nothing stays ``planned`` forever or ends in a traceback."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from pokedata.fetch.folder import FolderImportConfig, import_folder
from pokedata.ledger import Ledger
from tests.helpers import images as H

posix_only = pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX file types")


def _png(seed: int, size: int = 24) -> bytes:
    return H.encode(H.noise((size, size), seed=seed), "PNG")


def _rows(data: Path) -> dict[str, object]:
    with Ledger(data / "ledger.sqlite") as ledger:
        return {r.source_id: r for r in ledger.select(source="folder")}


def _import(src: Path, data: Path, **kw):
    return import_folder(FolderImportConfig(root=src, data=data, progress=False, **kw))


@posix_only
def test_symlinked_files_are_imported_and_nothing_stays_planned(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "real.png").write_bytes(_png(1))
    src = tmp_path / "src" / "Pikachu"
    src.mkdir(parents=True)
    (src / "own.png").write_bytes(_png(2))
    os.symlink(outside / "real.png", src / "link.png")  # to a file outside the imported folder
    os.symlink(src / "own.png", src / "alias.png")  # to a file inside it (same bytes: a duplicate)
    data = tmp_path / "d"
    summary = _import(tmp_path / "src", data)
    rows = _rows(data)
    assert {k: r.status for k, r in rows.items()} == {
        "Pikachu/alias.png": "done",
        "Pikachu/link.png": "done",
        "Pikachu/own.png": "skipped",
    }  # fmt: skip (alias.png sorts first; own.png has the same bytes)
    assert rows["Pikachu/own.png"].error.startswith("duplicate-of:")
    assert (data / rows["Pikachu/link.png"].path).read_bytes() == _png(1)
    assert not (data / rows["Pikachu/link.png"].path).is_symlink()  # a copy, not a link to outside
    assert summary.done == 2
    assert _import(tmp_path / "src", data).planned == 0  # a rerun adds and leaves nothing pending


@posix_only
def test_symlink_loops_dangling_links_and_fifos_are_skipped_with_a_reason_never_opened(tmp_path):
    src = tmp_path / "src" / "Eevee"
    src.mkdir(parents=True)
    (src / "ok.png").write_bytes(_png(3))
    os.symlink(src / "loop-b.png", src / "loop-a.png")
    os.symlink(src / "loop-a.png", src / "loop-b.png")
    os.symlink(src / "gone.png", src / "dangling.png")
    os.mkfifo(src / "fifo.png")
    os.symlink("/dev/null", src / "zero.png")  # a device (harmless even if a regression opened it)
    data = tmp_path / "d"
    done = threading.Event()
    result: dict = {}

    def run() -> None:
        result["summary"] = _import(tmp_path / "src", data)
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    if not done.wait(60):  # a FIFO opened for reading would block forever: unblock it, then fail
        with open(src / "fifo.png", "wb"):
            pass
        pytest.fail("the import hung on a FIFO")
    rows = _rows(data)
    got = {k.split("/")[-1]: (r.status, r.error) for k, r in rows.items()}
    assert got["ok.png"] == ("done", None)
    assert got["loop-a.png"] == got["loop-b.png"] == ("skipped", "symlink-loop")
    assert got["dangling.png"] == ("skipped", "unreadable:enoent")
    assert got["fifo.png"] == ("skipped", "not-a-regular-file:fifo")
    assert got["zero.png"] == ("skipped", "not-a-regular-file:device")
    assert result["summary"].done == 1 and not [r for r in rows.values() if r.status == "planned"]


@posix_only
@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses non-UTF-8 file names")
def test_non_utf8_file_names_get_safe_names_and_lose_nothing(tmp_path):
    src = tmp_path / "src"
    (src / "Mew").mkdir(parents=True)
    raw_dir = os.fsencode(src / "Mew")
    names = [b"caf\xe9.png", b"\xff\xfe.png", b"plain.png"]
    for i, name in enumerate(names):
        with open(raw_dir + b"/" + name, "wb") as fh:
            fh.write(_png(10 + i))
    bad_class = os.fsencode(src) + b"/M\xe9w"
    os.mkdir(bad_class)
    with open(bad_class + b"/x.png", "wb") as fh:
        fh.write(_png(20))
    data = tmp_path / "d"
    summary = _import(src, data)
    assert summary.done == 4 and summary.failed == 0
    rows = _rows(data)
    assert set(rows) == {"Mew/caf\\xe9.png", "Mew/\\xff\\xfe.png", "Mew/plain.png", "M\\xe9w/x.png"}
    for r in rows.values():
        stored = data / r.path
        assert stored.is_file() and r.path.isascii()  # safe names under raw/
    assert (data / rows["Mew/\\xff\\xfe.png"].path).read_bytes() == _png(11)
    assert _import(src, data).planned == 0


# -- bug 11: a legit huge image is not lost for good ----------------------------------------------------------
@pytest.mark.slow
def test_a_legit_20000x20000_image_can_be_fetched_with_max_pixels_and_retried(tmp_path, runner):
    from PIL import Image

    from cli import app

    src = tmp_path / "src" / "Mew"
    src.mkdir(parents=True)
    im = Image.new("1", (20000, 20000), 1)  # 400 MP, 1 bit per pixel: a ~50 kB PNG
    im.paste(0, (5000, 5000, 15000, 15000))
    im.save(src / "huge.png", optimize=False)
    data = tmp_path / "d"
    args = ["fetch", "folder", str(tmp_path / "src"), "--data", str(data)]
    assert runner.invoke(app, args).exit_code == 0
    (row,) = _rows(data).values()
    assert row.status == "quarantined" and row.error.startswith("decompression-bomb")
    # raising the limit alone does not touch quarantined rows; --retry-quarantined does
    assert runner.invoke(app, [*args, "--max-pixels", "400000000"]).exit_code == 0
    assert next(iter(_rows(data).values())).status == "quarantined"
    result = runner.invoke(app, [*args, "--max-pixels", "400000000", "--retry-quarantined"])
    assert result.exit_code == 0, result.output
    (row,) = _rows(data).values()
    assert (row.status, row.width, row.height) == ("done", 20000, 20000)


def test_fetch_max_pixels_and_retry_quarantined_over_http(tmp_path):
    """The same over HTTP (fetch danbooru against a local server), at a small scale."""
    import hashlib
    import json

    from pokedata.fetch.danbooru import DanbooruConfig
    from pokedata.fetch.danbooru_run import fetch_danbooru
    from pokedata.fetch.http import HttpConfig
    from tests.servers.hostile import HostileServer, body, query_of, send

    img = H.encode(H.noise((120, 120), seed=5), "PNG")  # 14,400 px
    with HostileServer() as srv:
        srv.route("/1.png", body(img, "image/png"))
        post = {"id": 1, "md5": hashlib.md5(img).hexdigest(), "file_ext": "png", "file_url": srv.url("/1.png"),
                "tag_string": "mew", "rating": "g"}  # fmt: skip

        def listing(h) -> None:
            page = (query_of(h).get("page") or [None])[0]
            send(h, 200, json.dumps([post] if page is None else []).encode(), "application/json")

        srv.route("/posts.json", listing)

        def run(**kw):
            cfg = DanbooruConfig(data=tmp_path / "d", tags=("mew",), base_url=srv.origin, progress=False,
                                 http=HttpConfig(retries=1, timeout=5), api_rate=1000, file_rate=1000, **kw)  # fmt: skip
            return fetch_danbooru(cfg)

        assert run(max_pixels=5000).quarantined == 1
        assert run(max_pixels=100_000).quarantined == 0 and srv.hits["/1.png"] == 1  # not retried
        summary = run(max_pixels=100_000, retry_quarantined=True)
        assert summary.done == 1 and srv.hits["/1.png"] == 2
    with Ledger(tmp_path / "d" / "ledger.sqlite") as ledger:
        (row,) = ledger.select(source="danbooru")
    assert (row.status, row.width) == ("done", 120)
