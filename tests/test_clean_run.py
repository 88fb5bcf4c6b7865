"""The clean stage: ledger items -> images rows + JPGs; quarantine reasons, frames, idempotence, resume, CLI."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from pokedata.clean import CleanConfig, run_clean
from pokedata.errors import UserError
from pokedata.store import DatasetDir
from tests.helpers import images as H

BG = "#01fa03"
BG_RGB = (1, 250, 3)


def _cfg(root, **kw) -> CleanConfig:
    base = {"data": root, "background": BG, "min_side": 16, "workers": 1, "progress": False}
    return CleanConfig(**{**base, **kw})


def _by_item(rows):
    out = {}
    for r in rows:
        out.setdefault(r["item_id"], []).append(r)
    return out


def _corner(root, rel) -> np.ndarray:
    with Image.open(DatasetDir.at(root).abs(rel)) as im:
        assert im.format == "JPEG"
        return np.asarray(im.convert("RGB"))[0, 0].astype(int)


@pytest.fixture
def mixed(tmp_path):
    """A dataset with one file of each kind the clean stage must handle."""
    root = tmp_path / "ds"
    ids = {
        "png": H.add_raw(root, "Pikachu", "a.png", H.encode(H.sprite(64), "PNG")),
        "gif": H.add_raw(root, "Pikachu", "b.gif", H.gif_with_transparency(64)),
        "jpg": H.add_raw(root, "Eevee", "c.jpg", H.large_jpeg((400, 300))),
        "anim": H.add_raw(root, "Eevee", "d.gif", H.animated("GIF", n=5)),
        "small": H.add_raw(root, "Eevee", "e.png", H.encode(H.sprite(8), "PNG")),
        "thin": H.add_raw(root, "Eevee", "f.png", H.encode(Image.new("RGB", (200, 20), "red"), "PNG")),
        "empty": H.add_raw(root, "Eevee", "g.png", b""),
        "corrupt": H.add_raw(root, "Eevee", "h.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
        "truncated": H.add_raw(root, "Eevee", "i.png", H.truncated_png()),
        "missing": H.add_raw(root, "Eevee", "j.png", None),
    }  # fmt: skip
    return root, ids


def test_clean_writes_rows_and_quarantines_with_reasons(mixed):
    root, ids = mixed
    summary = run_clean(_cfg(root))
    rows = _by_item(H.image_rows(root))
    assert summary.items == len(ids) and summary.processed == len(ids)
    for key in ("png", "gif", "jpg", "anim"):
        (row,) = rows[ids[key]]
        assert row["status"] == "done" and row["frame"] == 0, row
        assert (DatasetDir.at(root).abs(row["path"])).is_file()
        assert len(row["pixel_sha256"]) == 64
        assert json.loads(row["params"])["background"] == BG
    for key in ("png", "gif", "anim"):  # sprites on transparency: corner is the background, not black
        assert np.abs(_corner(root, rows[ids[key]][0]["path"]) - BG_RGB).max() <= 3
    assert rows[ids["png"]][0]["path"].startswith("clean/Pikachu/")
    assert rows[ids["anim"]][0]["path"].endswith("-f0000.jpg")
    # same pixels in a PNG and a GIF -> the same pixel sha256
    assert rows[ids["png"]][0]["pixel_sha256"] == rows[ids["gif"]][0]["pixel_sha256"]
    expected = {
        "small": "too-small", "thin": "aspect-ratio", "empty": "empty", "corrupt": "unreadable",
        "truncated": "truncated", "missing": "missing-file",
    }  # fmt: skip
    for key, reason in expected.items():
        (row,) = rows[ids[key]]
        assert row["status"] == "quarantined" and row["path"] is None
        assert row["error"].split(":")[0] == reason, (key, row["error"])
    assert summary.quarantined == len(expected)
    assert summary.reasons["too-small"] == 1


def test_rerun_is_idempotent_and_force_or_new_params_redo(mixed):
    root, ids = mixed
    run_clean(_cfg(root))
    before = H.image_rows(root)
    again = run_clean(_cfg(root))
    assert again.processed == 0 and again.up_to_date == len(ids)
    assert H.image_rows(root) == before
    forced = run_clean(_cfg(root, force=True))
    assert forced.processed == len(ids)
    assert [r["id"] for r in H.image_rows(root)] == [r["id"] for r in before]  # rows updated in place
    changed = run_clean(_cfg(root, quality=80))
    assert changed.processed == len(ids)
    assert all(json.loads(r["params"])["quality"] == 80 for r in H.image_rows(root))


def test_frames_all_then_every_then_first_removes_stale_rows(tmp_path):
    root = tmp_path / "ds"
    item = H.add_raw(root, "Ditto", "anim.gif", H.animated("GIF", n=6))
    run_clean(_cfg(root, frames="all"))
    rows = H.image_rows(root)
    assert [r["frame"] for r in rows] == [0, 1, 2, 3, 4, 5]
    paths = [DatasetDir.at(root).abs(r["path"]) for r in rows]
    assert all(p.is_file() for p in paths) and len({r["pixel_sha256"] for r in rows}) == 6
    assert paths[3].name.endswith("-f0003.jpg")
    for r in rows:  # each frame's corner is the background, its square the frame's colour
        with Image.open(DatasetDir.at(root).abs(r["path"])) as im:
            arr = np.asarray(im.convert("RGB")).astype(int)
        assert np.abs(arr[0, 0] - BG_RGB).max() <= 3
        assert np.abs(arr[16 + r["frame"] % 4 + 2, 32] - H.frame_colour(r["frame"])).max() <= 6
    s = run_clean(_cfg(root, frames="every:2"))
    assert [r["frame"] for r in H.image_rows(root)] == [0, 2, 4] and s.removed == 3
    assert not paths[1].exists() and paths[2].exists()
    run_clean(_cfg(root, frames="first"))
    assert [(r["item_id"], r["frame"]) for r in H.image_rows(root)] == [(item, 0)]


def test_shared_file_cleaned_per_class_and_skipped_or_multiclass_left_out(tmp_path):
    root = tmp_path / "ds"
    a = H.add_raw(root, "Mew", "x.png", H.encode(H.sprite(64), "PNG"))
    b = H.share_file(root, a, "Mewtwo")
    H.add_raw(
        root, "", "multi.png", H.encode(H.sprite(64, (9, 9, 9)), "PNG"), meta={"classes": ["Mew", "Mewtwo"]}
    )
    with sqlite3.connect(DatasetDir.at(root).ledger_path) as conn:  # a skipped duplicate-of row
        conn.execute(
            "INSERT INTO items (source, source_id, class_name, status, error, path, created_at, updated_at)"
            " VALUES ('folder', 'dup.png', 'Mew', 'skipped', 'duplicate-of:1', 'raw/Mew/folder-x.png', 0, 0)"
        )
    s = run_clean(_cfg(root))
    rows = _by_item(H.image_rows(root))
    assert set(rows) == {a, b} and s.multiclass_left_out == 1
    assert rows[a][0]["path"].startswith("clean/Mew/") and rows[b][0]["path"].startswith("clean/Mewtwo/")
    assert rows[a][0]["pixel_sha256"] == rows[b][0]["pixel_sha256"]
    s = run_clean(_cfg(root, include_multiclass=True))
    assert s.processed == 1 and len(H.image_rows(root)) == 3
    assert any(r["path"].startswith("clean/_unlabelled/") for r in H.image_rows(root))


def test_resume_after_kill_leftovers(tmp_path):
    """A killed run leaves temp files and JPGs without rows; the rerun removes / rewrites them."""
    root = tmp_path / "ds"
    a = H.add_raw(root, "Mew", "x.png", H.encode(H.sprite(64), "PNG"))
    ds = DatasetDir.at(root)
    (ds.clean_dir / "Mew").mkdir(parents=True)
    stray = ds.clean_dir / "Mew" / ".tmp-folder-x.jpg-abc"
    stray.write_bytes(b"partial")
    (ds.clean_dir / "Mew" / "folder-x.jpg").write_bytes(b"written before the kill, no row yet")
    run_clean(_cfg(root))
    assert not stray.exists()
    (row,) = H.image_rows(root)
    assert row["item_id"] == a and row["status"] == "done"
    with Image.open(ds.abs(row["path"])) as im:
        im.load()
    ds.abs(row["path"]).unlink()  # a clean file deleted by hand is redone
    assert run_clean(_cfg(root)).processed == 1 and ds.abs(row["path"]).is_file()


def test_changed_pixels_clear_stale_dedup_marks(tmp_path):
    root = tmp_path / "ds"
    H.add_raw(root, "Mew", "x.png", H.encode(H.sprite(64), "PNG"))
    H.add_raw(root, "Mew", "y.png", H.encode(H.sprite(64, (1, 2, 200)), "PNG"))
    run_clean(_cfg(root))
    ids = [r["id"] for r in H.image_rows(root)]
    with sqlite3.connect(DatasetDir.at(root).ledger_path) as conn:
        conn.execute(
            "UPDATE images SET dup_of = ?, dup_group = ?, dup_kind = 'near' WHERE id = ?",
            (ids[0], ids[0], ids[1]),
        )
        conn.execute("INSERT INTO hashes (image_id, method, value) VALUES (?, 'phash', 5)", (ids[1],))
    assert run_clean(_cfg(root)).dedup_marks_cleared == 0  # nothing changed: marks stay
    s = run_clean(_cfg(root, background="black"))
    assert s.dedup_marks_cleared == 1
    rows = H.image_rows(root)
    assert all(r["dup_of"] is None and r["dup_group"] is None for r in rows)
    with sqlite3.connect(DatasetDir.at(root).ledger_path) as conn:
        assert conn.execute("SELECT count(*) FROM hashes").fetchone()[0] == 0


def test_large_jpeg_downscaled_with_draft_and_bomb_quarantined(tmp_path):
    root = tmp_path / "ds"
    big = H.add_raw(root, "Onix", "big.jpg", H.large_jpeg((1600, 1200)))
    bomb = H.add_raw(root, "Onix", "bomb.png", H.encode(Image.new("L", (1500, 1500)), "PNG"))
    run_clean(_cfg(root, max_side=256, max_pixels=2_000_000))
    rows = _by_item(H.image_rows(root))
    assert (rows[big][0]["width"], rows[big][0]["height"]) == (256, 192)
    assert rows[bomb][0]["status"] == "quarantined"
    assert rows[bomb][0]["error"].startswith("decompression-bomb")


def test_process_pool_matches_in_process(tmp_path):
    root1, root2 = tmp_path / "one", tmp_path / "two"
    for root in (root1, root2):
        for i in range(5):
            H.add_raw(root, "Abra", f"{i}.gif", H.animated("GIF", n=3, size=48 + 8 * i))
        H.add_raw(root, "Abra", "bad.png", b"not an image at all")
    run_clean(_cfg(root1, workers=1, frames="all"))
    s = run_clean(_cfg(root2, workers=2, frames="all", chunk_size=2))
    strip = [
        {k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at")}
        for r in H.image_rows(root1)
    ]
    assert strip == [
        {k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at")}
        for r in H.image_rows(root2)
    ]
    assert s.images == 15 and s.quarantined == 1


@pytest.mark.parametrize(
    "kw,flag",
    [
        ({"background": "nope"}, "--background"),
        ({"frames": "every:0"}, "--frames"),
        ({"quality": 0}, "--quality"),
        ({"min_side": 100, "max_side": 50}, "--max-side"),
        ({"workers": -1}, "--workers"),
        ({"max_aspect": 0.5}, "--max-aspect"),
    ],
)
def test_bad_options_name_the_flag(tmp_path, kw, flag):
    with pytest.raises(UserError, match=flag):
        CleanConfig(data=tmp_path, **kw).settings()


def test_cli_clean_and_errors(tmp_path, runner):
    from cli import app

    root = tmp_path / "ds"
    H.add_raw(root, "Mew", "x.png", H.encode(H.sprite(64), "PNG"))
    res = runner.invoke(app, ["clean", "--data", str(root), "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len(H.image_rows(root)) == 1
    res = runner.invoke(app, ["clean", "--data", str(root), "--frames", "sometimes"])
    assert res.exit_code == 2 and "--frames" in res.output
    res = runner.invoke(app, ["clean", "--data", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not a dataset directory" in res.output


def test_unwritable_output_stops_with_a_user_error(tmp_path):
    """Disk full / permissions are not the image's fault: the run stops with a clear error, no quarantine."""
    root = tmp_path / "ds"
    H.add_raw(root, "Mew", "x.png", H.encode(H.sprite(64), "PNG"))
    ds = DatasetDir.at(root)
    ds.clean_dir.mkdir(parents=True, exist_ok=True)
    (ds.clean_dir / "Mew").write_bytes(b"a file where the class folder should be")
    with pytest.raises(UserError, match="clean stopped: cannot write"):
        run_clean(_cfg(root))
    assert H.image_rows(root) == []


def test_cli_dedup_wiring_and_reset(tmp_path, runner):
    """`poke clean --dedup` marks the same picture stored as PNG and GIF; `--reset-dedup` clears it."""
    from cli import app

    root = tmp_path / "ds"
    H.add_raw(root, "Mew", "x.png", H.encode(H.sprite(64), "PNG"))
    H.add_raw(root, "Mew", "y.gif", H.gif_with_transparency(64))
    H.add_raw(root, "Mew", "z.png", H.encode(H.noise((64, 64), seed=3), "PNG"))
    base = ["clean", "--data", str(root), "--workers", "1", "--no-progress"]
    res = runner.invoke(app, [*base, "--dedup", "--hash", "dhash", "--threshold", "4"])
    assert res.exit_code == 0, res.output
    rows = H.image_rows(root)
    assert [r["dup_kind"] for r in rows].count("exact") == 1 and sum(
        r["dup_of"] is not None for r in rows
    ) == 1
    res = runner.invoke(app, [*base, "--reset-dedup"])
    assert res.exit_code == 0, res.output
    assert all(r["dup_of"] is None and r["dup_group"] is None for r in H.image_rows(root))
    res = runner.invoke(app, [*base, "--dedup", "--conflicts", "maybe"])
    assert res.exit_code == 2 and "--conflicts" in res.output
