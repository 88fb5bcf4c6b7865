"""Issue 17 (clean fast): chunk scheduling by weight, the bicubic downscale, the output check and the
lean publish of clean JPGs."""

from __future__ import annotations

import heapq
import io
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pokedata.clean import CleanConfig, run_clean
from pokedata.clean.flatten import downscale
from pokedata.clean.run import plan_chunks
from pokedata.clean.worker import check_output
from pokedata.dedup.hashing import cache_hasher
from pokedata.store import DatasetDir, publish_bytes
from tests.helpers import images as H


def _makespan(chunks: list[list[int]], weights: list[int], workers: int) -> int:
    """Finish time when each chunk, in order, goes to whichever worker is free first (the pool's way)."""
    free = [0] * workers
    for chunk in chunks:
        heapq.heappush(free, heapq.heappop(free) + sum(max(1, weights[i]) for i in chunk))
    return max(free)


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.integers(0, 10_000), max_size=300),
    workers=st.integers(1, 8),
    max_items=st.integers(1, 40),
)
def test_every_item_is_planned_exactly_once_heaviest_first(weights, workers, max_items):
    chunks = plan_chunks(weights, workers, max_items)
    flat = [i for chunk in chunks for i in chunk]
    assert sorted(flat) == list(range(len(weights)))  # each item once, none lost
    assert all(1 <= len(c) <= max_items for c in chunks)
    w = [max(1, weights[i]) for i in flat]
    assert w == sorted(w, reverse=True)  # heaviest first, so the tail is made of the light items
    if weights:  # no worker idles longer than the heaviest item (list scheduling's bound, plus one chunk
        total, heaviest = sum(max(1, x) for x in weights), max(max(1, x) for x in weights)  # of the tail)
        assert _makespan(chunks, weights, workers) <= total / workers + 2 * heaviest


def test_the_bench_case_keeps_both_workers_busy():
    """40 animations of similar size on 2 workers: chunks of 16 left one worker with 24 of them."""
    weights = [50 + (i * 7) % 20 for i in range(40)]
    chunks = plan_chunks(weights, 2, 16)
    ideal = sum(weights) / 2
    assert _makespan(chunks, weights, 2) <= ideal + max(weights)
    assert len(chunks[-1]) == 1 and len(chunks[-2]) == 1  # the last chunks are single items
    fixed = [list(range(i, min(i + 16, 40))) for i in range(0, 40, 16)]  # the old plan
    assert _makespan(fixed, weights, 2) > 1.15 * ideal  # 24 items on one worker, 16 on the other


def test_a_pool_run_records_every_frame_of_every_item_once(tmp_path):
    root = tmp_path / "ds"
    frames = {}
    for i, n in enumerate([1, 9, 2, 7, 3, 12, 1, 5]):  # animations of very different lengths and sizes
        data = H.animated("GIF", n=n, size=40 + 4 * i) if n > 1 else H.encode(H.sprite(40 + 4 * i), "PNG")
        frames[H.add_raw(root, "Abra", f"{i}.{'gif' if n > 1 else 'png'}", data)] = n
    cfg = CleanConfig(data=root, min_side=16, workers=2, chunk_size=3, frames="all", progress=False)
    s = run_clean(cfg)
    rows = H.image_rows(root)
    got = sorted((r["item_id"], r["frame"]) for r in rows)
    assert got == sorted((item, f) for item, n in frames.items() for f in range(n))
    assert s.images == sum(frames.values()) and s.processed == len(frames)
    ds = DatasetDir.at(root)
    assert all(ds.abs(r["path"]).stat().st_size > 0 for r in rows)
    assert not list(ds.clean_dir.rglob(".tmp-*"))


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return 10 * math.log10(255**2 / np.mean((x - y) ** 2))


@pytest.mark.parametrize("size", [(1600, 1200), (1250, 900), (3000, 2000)])
def test_the_bicubic_downscale_is_close_to_the_old_lanczos_output(size):
    with Image.open(io.BytesIO(H.large_jpeg(size, seed=3))) as im:
        im.load()
        out = downscale(im, 1024)
        k = 1024 / max(size)
        assert out.size == (round(size[0] * k), round(size[1] * k))
        # clean's filter until version 2
        old = im.resize(out.size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    assert _psnr(out, old) > 40  # dB: below what the q95 encode itself changes


def test_downscale_leaves_an_image_that_fits_alone():
    im = Image.new("RGB", (300, 200))
    assert downscale(im, 300) is im
    assert downscale(Image.new("RGB", (5000, 3)), 1024).size == (1024, 1)  # a side never rounds to 0


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_the_output_check_fails_on_a_cut_or_resized_jpeg():
    im = Image.open(io.BytesIO(H.large_jpeg((640, 480)))).convert("RGB")
    data = _jpeg(im)
    assert check_output(data, im.size, ()) == ()
    with pytest.raises(ValueError, match="640, 480"):
        check_output(data, (641, 480), ())
    with pytest.raises(OSError):
        check_output(data[: len(data) // 2], im.size, ())
    with pytest.raises(OSError):
        check_output(data[: len(data) // 2], im.size, ("phash", "colour"))


@pytest.mark.parametrize("size", [(96, 80), (640, 480)])  # below and above dedup's draft threshold
def test_the_output_check_gives_what_dedup_computes_from_the_file(tmp_path, size):
    im = Image.open(io.BytesIO(H.large_jpeg(size, seed=1))).convert("RGB")
    data = _jpeg(im)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    prepared = dict(check_output(data, im.size, ("colour", "phash", "whash")))
    assert list(prepared) == ["colour", "phash", "whash"]
    for method, array in prepared.items():
        assert np.array_equal(array, cache_hasher(method).open(path))


def test_publish_bytes_writes_atomically_and_makes_the_folder(tmp_path):
    path = tmp_path / "a" / "b" / "x.jpg"
    publish_bytes(path, b"one")
    assert path.read_bytes() == b"one"
    stale = path.with_name(f".tmp-x.jpg-{os.getpid()}")
    stale.write_bytes(b"left by a killed run with the same pid, longer than the new data")
    publish_bytes(path, b"two")
    assert path.read_bytes() == b"two" and not stale.exists()
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    with pytest.raises(TypeError):
        publish_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"two" and list(path.parent.iterdir()) == [path]


def _signatures_by_the_formula(rgb: np.ndarray) -> np.ndarray:
    """The colour signature computed over every pixel at once (its definition, before blocks and the
    chroma mask made it ~3x faster on sprites)."""
    from pokedata.dedup.colour import BINS

    n = len(rgb)
    x = rgb.reshape(n, -1, 3).astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    chroma = x.max(axis=2) - x.min(axis=2)
    hue = (np.arctan2(np.sqrt(3.0) / 2.0 * (g - b), r - 0.5 * (g + b)) / (2 * np.pi)) % 1.0
    pos = hue * BINS - 0.5
    lo = np.floor(pos).astype(np.int64)
    w = pos - lo
    base = (np.arange(n, dtype=np.int64) * BINS)[:, None]
    hist = np.bincount((base + lo % BINS).ravel(), (chroma * (1 - w)).ravel(), minlength=n * BINS)
    hist += np.bincount((base + (lo + 1) % BINS).ravel(), (chroma * w).ravel(), minlength=n * BINS)
    hist = hist.reshape(n, BINS) / x.shape[1]
    q = np.round(np.sqrt(np.clip(hist, 0.0, 1.0)) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(q).view(">u8").reshape(-1).astype(np.uint64)


@pytest.mark.parametrize("n,coloured", [(600, 1.0), (513, 0.05), (3, 0.0), (1, 0.5)])
def test_colour_signatures_are_bit_identical_to_the_formula(n, coloured):
    from pokedata.dedup.colour import signatures

    rng = np.random.default_rng(n)
    x = np.full((n, 32, 32, 3), 255, np.uint8)  # a white background, as on sprites
    mask = rng.random((n, 32, 32)) < coloured
    x[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
    grey = rng.random((n, 32, 32)) < 0.1
    x[grey] = rng.integers(0, 256, (int(grey.sum()), 1), dtype=np.uint8)
    assert np.array_equal(signatures(x), _signatures_by_the_formula(x))
