from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pokedata.ledger import Candidate, Ledger
from pokedata.store import DatasetDir, atomic_writer, remove_stale_temps, safe_name
from pokedata.verify import VerificationError, sniff_image_type, verify_image_file


@given(st.text(min_size=0, max_size=300))
def test_safe_name_is_one_safe_component(name):
    s = safe_name(name)
    assert s and "/" not in s and "\\" not in s and "\x00" not in s
    assert not s.startswith(".")
    assert all(ch.isprintable() for ch in s)
    assert len(s) <= 120


def test_safe_name_examples():
    assert safe_name("Nidoran♀") != safe_name("Nidoran♂")
    assert safe_name("../../x") == "x"


def test_atomic_writer_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "a" / "f.bin"
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write(b"partial")
        raise RuntimeError("killed")
    assert not target.exists()
    assert os.listdir(target.parent) == []
    with atomic_writer(target) as fh:
        fh.write(b"whole")
    assert target.read_bytes() == b"whole"
    (target.parent / ".tmp-f.bin-zz").write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == 1


def test_verify_accepts_images_and_rejects_html(tmp_path):
    good = tmp_path / "g.png"
    Image.new("RGBA", (8, 6), (1, 2, 3, 0)).save(good)
    info = verify_image_file(good)
    assert (info.width, info.height, info.ext) == (8, 6, "png")
    html = tmp_path / "h.jpg"
    html.write_bytes(b"<!DOCTYPE html><html>nope</html>")
    with pytest.raises(VerificationError) as e:
        verify_image_file(html)
    assert e.value.reason == "not-an-image"
    empty = tmp_path / "e.jpg"
    empty.write_bytes(b"")
    with pytest.raises(VerificationError, match="empty"):
        verify_image_file(empty)
    trunc = tmp_path / "t.jpg"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "full.jpg")
    trunc.write_bytes((tmp_path / "full.jpg").read_bytes()[:200])
    with pytest.raises(VerificationError) as e:
        verify_image_file(trunc)
    assert e.value.reason in ("truncated", "undecodable")
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"


def test_ledger_plan_is_idempotent_and_tracks_status(tmp_path):
    ds = DatasetDir.at(tmp_path / "data").create()
    with Ledger(ds.ledger_path) as led:
        cands = [
            Candidate("danbooru", "1", "Pikachu", "http://x/1.jpg", {"tags": ["pikachu"]}),
            Candidate("danbooru", "1", "Raichu", "http://x/1.jpg"),
            Candidate("danbooru", "2", "Pikachu", "http://x/2.jpg"),
        ]
        assert led.plan(cands) == 3
        assert led.plan(cands) == 0
        first = led.pending()[0]
        led.mark_done(
            first.id,
            path="raw/Pikachu/1.jpg",
            sha256="ab",
            md5="cd",
            nbytes=3,
            width=4,
            height=5,
            meta={"score": 7},
        )
        led.mark(led.pending()[0].id, "failed", "http-500")
        assert len(led.pending()) == 1
        assert len(led.pending(retry_failed=True)) == 2
        done = led.find_done_by_sha256("ab")
        assert done.meta == {"tags": ["pikachu"], "score": 7}
        assert [r.class_name for r in led.find("danbooru", "1")] == ["Pikachu", "Raichu"]
        assert dict(((s, st_), n) for s, st_, n in led.counts()) == {
            ("danbooru", "done"): 1,
            ("danbooru", "failed"): 1,
            ("danbooru", "planned"): 1,
        }
        assert led.common_errors() == [("failed", "http-500", 1)]
