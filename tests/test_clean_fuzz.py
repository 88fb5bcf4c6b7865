"""Fuzz: random and mutated image bytes never crash the clean stage; every failure is a quarantine row."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pokedata.clean import run_clean
from pokedata.clean.flatten import FrameSpec
from pokedata.clean.run import CleanConfig
from pokedata.clean.worker import (
    ASPECT,
    BOMB,
    EMPTY,
    ENCODE,
    MISSING,
    TOO_SMALL,
    TRUNCATED,
    UNREADABLE,
    UNSUPPORTED,
    Settings,
    Task,
    clean_item,
)
from tests.helpers import images as H

REASONS = {MISSING, EMPTY, UNREADABLE, TRUNCATED, BOMB, TOO_SMALL, ASPECT, UNSUPPORTED, ENCODE}

SEEDS = {
    "png": H.encode(H.sprite(24), "PNG"),
    "gif": H.animated("GIF", n=3, size=24),
    "apng": H.animated("PNG", n=3, size=24),
    "webp": H.animated("WEBP", n=2, size=24),
    "jpg": H.encode(H.noise((24, 24)), "JPEG", quality=80),
    "pal": H.encode(H.mode_p_index().image, "PNG"),
    "tiff16": H.encode(H.mode_i16().image, "TIFF"),
    "bmp": H.encode(H.noise((16, 16)), "BMP"),
}


@st.composite
def mutated(draw) -> bytes:
    """A valid image file with a few bytes flipped, a slice cut out, garbage inserted, or truncated."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[pos:]
    return bytes(data)


def _check(data: bytes, frames: str = "all") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "raw" / "x.bin"
        src.parent.mkdir(parents=True)
        src.write_bytes(data)
        spec = FrameSpec("all") if frames == "all" else FrameSpec("first")
        task = Task(
            1, src, root, "Fuzz", "x", Settings(min_side=4, max_side=64, frames=spec, background=(0, 9, 0))
        )
        result = clean_item(task)  # must not raise
        assert result.frames, "every item yields at least one row"
        assert len({f.frame for f in result.frames}) == len(result.frames)
        for f in result.frames:
            assert f.status in ("done", "quarantined")
            if f.status == "quarantined":
                assert f.error and f.error.split(":")[0] in REASONS, f.error
                assert str(root) not in f.error
            else:
                with Image.open(f.path) as im:  # every written JPG re-decodes
                    im.load()
                    assert im.format == "JPEG" and im.size == (f.width, f.height)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_images_never_crash(data):
    _check(data)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_crash(data):
    _check(data, frames="first")


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(SEEDS)), st.binary(min_size=1, max_size=16))
def test_magic_prefix_with_garbage(kind, tail):
    """The first bytes of a real file (a plausible header) followed by garbage."""
    _check(SEEDS[kind][:24] + tail)


def test_fuzzed_files_through_the_stage(tmp_path):
    """A batch of broken files through run_clean (pool of 2): one row or more per item, no crash."""
    root = tmp_path / "ds"
    seeds = sorted(SEEDS)
    for i in range(12):
        data = bytearray(SEEDS[seeds[i % len(seeds)]])
        data[len(data) // 3 :: 7] = bytes(len(data[len(data) // 3 :: 7]))  # zero every 7th byte of the tail
        H.add_raw(root, "Fuzz", f"f{i}.bin", bytes(data))
    s = run_clean(CleanConfig(data=root, min_side=4, frames="all", workers=2, progress=False))
    rows = H.image_rows(root)
    assert s.processed == 12 and {r["item_id"] for r in rows} == set(range(1, 13))
    assert all(r["status"] == "done" or r["error"].split(":")[0] in REASONS for r in rows)
