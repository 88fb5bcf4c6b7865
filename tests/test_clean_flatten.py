"""flatten_to_rgb / iter_frames: every Pillow mode, palette transparency, animations, EXIF orientation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pokedata.clean.flatten import (
    FrameSpec,
    flatten_to_rgb,
    has_transparency,
    iter_frames,
    parse_background,
    parse_frames,
)
from pokedata.errors import UserError
from tests.helpers import images as H

BG = (1, 250, 3)  # a colour no test image contains, so a wrong composite cannot pass by accident


@pytest.mark.parametrize("make", H.ALL_CASES, ids=lambda f: f.__name__)
def test_every_mode_exact_pixels(make):
    case = make()
    out = flatten_to_rgb(case.image, BG)
    assert out.mode == "RGB" and out.size == case.image.size
    arr = np.asarray(out)
    assert (arr[:, H.HALF :] == case.opaque_rgb).all(), f"{case.name}: opaque half changed"
    if case.transparent is not None:
        assert (arr[case.transparent] == BG).all(), f"{case.name}: transparent pixels are not the background"
    else:
        assert not (arr == BG).all(axis=2).any(), f"{case.name}: background leaked into an opaque image"


@pytest.mark.parametrize(
    "make", [H.mode_p_index, H.mode_p_rgba_palette, H.mode_rgba, H.mode_pa], ids=lambda f: f.__name__
)
def test_naive_convert_would_have_been_wrong(make):
    """Guard the premise: convert('RGB') turns these transparent pixels into something else."""
    case = make()
    assert has_transparency(case.image)
    naive = np.asarray(case.image.convert("RGB"))
    assert not (naive[case.transparent] == BG).all()


def test_partial_alpha_blends_linearly():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    out = flatten_to_rgb(im, (0, 0, 255)).getpixel((0, 0))
    assert abs(out[0] - 128) <= 1 and out[1] == 0 and abs(out[2] - 127) <= 1


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_encoded_transparency_round_trip(fmt):
    """Real files: the decoder's transparency info (GIF index, PNG tRNS/alpha, WebP alpha) is honoured."""
    src = H.sprite(32, (220, 40, 40))
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = H.encode(src, fmt, **kw)
    with Image.open(io.BytesIO(data)) as im:
        ((index, frame),) = list(iter_frames(im, "first"))
        out = np.asarray(flatten_to_rgb(frame, BG))
    assert index == 0
    assert (out[0, 0] == BG).all() and (out[-1, -1] == BG).all()
    assert (out[16, 16] == (220, 40, 40)).all()


def test_gif_index_zero_black_palette_becomes_background():
    """A sprite GIF whose transparent index is palette entry 0 = black: corners must be the background."""
    im = Image.frombytes("P", (8, 8), bytes([0] * 32 + [1] * 32))
    im.putpalette([0, 0, 0, 255, 255, 0] + [0, 0, 0] * 254)
    data = H.encode(im, "GIF", transparency=0)
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.mode == "P" and gif.info.get("transparency") == 0
        out = np.asarray(flatten_to_rgb(gif, (255, 255, 255)))
    assert (out[:4] == 255).all() and (out[4:] == (255, 255, 0)).all()


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
@pytest.mark.parametrize(
    "spec,expected", [("all", [0, 1, 2, 3, 4, 5]), ("every:2", [0, 2, 4]), ("first", [0])]
)
def test_animated_frames(fmt, spec, expected):
    data = H.animated(fmt, n=6)
    with Image.open(io.BytesIO(data)) as im:
        frames = list(iter_frames(im, spec))
        got = [i for i, _ in frames]
        outs = {i: np.asarray(flatten_to_rgb(f, BG)) for i, f in frames}
    assert got == expected
    for i, out in outs.items():
        assert (out[0, 0] == BG).all(), f"frame {i}: corner is not the background"
        q = 64 // 4
        centre = out[q + i % 4 + 2, 32]
        assert np.abs(centre.astype(int) - H.frame_colour(i)).max() <= 2, f"frame {i}: wrong colour {centre}"


def test_gif_disposal_leaves_no_trail():
    """Disposal 2 restores the background: pixels only frame 0 covered are background in frame 3."""
    data = H.animated("GIF", n=4)
    with Image.open(io.BytesIO(data)) as im:
        frames = dict(iter_frames(im, "all"))
    out = np.asarray(flatten_to_rgb(frames[3], BG))
    q = 64 // 4
    assert (out[q, 32] == BG).all()  # row q was covered by frame 0 only (frame 3 is shifted by 3)


@pytest.mark.parametrize(
    "orientation,size,left_colour",
    [(1, (40, 20), (255, 0, 0)), (3, (40, 20), (0, 0, 255)), (6, (20, 40), None), (8, (20, 40), None)],
)
def test_exif_orientation_applied(orientation, size, left_colour):
    data = H.jpeg_with_orientation(orientation)
    with Image.open(io.BytesIO(data)) as im:
        ((_, frame),) = list(iter_frames(im))
        out = flatten_to_rgb(frame, BG)
    assert out.size == size
    arr = np.asarray(out).astype(int)
    if left_colour is not None:
        assert np.abs(arr[10, 2] - left_colour).max() < 40
    else:  # rotated by 90 degrees: red and blue are now top and bottom
        top, bottom = arr[2, 10], arr[-3, 10]
        red, blue = np.array([255, 0, 0]), np.array([0, 0, 255])
        expect_top = red if orientation == 6 else blue  # 6: turn 90 cw to view, left -> top
        expect_bottom = blue if orientation == 6 else red
        assert np.abs(top - expect_top).max() < 40 and np.abs(bottom - expect_bottom).max() < 40


def test_parse_background():
    assert parse_background("white") == (255, 255, 255)
    assert parse_background("#FF8000") == (255, 128, 0)
    assert parse_background("00ff00") == (0, 255, 0)
    with pytest.raises(UserError, match="--background"):
        parse_background("purple-ish")


def test_parse_frames():
    assert parse_frames("first") == FrameSpec("first", 1)
    assert parse_frames("every:1") == FrameSpec("all", 1)
    assert str(parse_frames("every:3")) == "every:3"
    for bad in ("every:0", "some", "every:x"):
        with pytest.raises(UserError, match="--frames"):
            parse_frames(bad)
