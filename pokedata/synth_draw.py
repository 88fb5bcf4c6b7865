"""Drawing the synthetic creatures of :mod:`pokedata.synth`: poses, palettes, one function per body shape.

Each creature is drawn with flat colours on a 128 x 128 design canvas (centre (64, 64)), then flipped,
rotated and resized with nearest-neighbour sampling, so a sprite keeps a handful of exact colours and a
binary alpha: it fits a GIF palette exactly and its PNG and GIF encodings decode to the same pixels.
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

DESIGN = 128  # creatures are drawn on a 128 x 128 design canvas, then rotated and resized


@dataclass(frozen=True)
class Pose:
    bob: float  # vertical offset in design px
    phase: float  # limb / wing / tentacle phase, radians
    squash: float  # x scale (y scale is its inverse)
    look: float  # pupil offset -1..1
    rot: float  # degrees
    flip: bool
    scale: float  # share of the canvas the creature fills
    place: tuple[float, float] = (0.5, 0.5)  # where the creature sits in the canvas slack (0..1, 0..1)


@dataclass(frozen=True)
class Palette:
    body: tuple[int, int, int]
    dark: tuple[int, int, int]
    light: tuple[int, int, int]
    accent: tuple[int, int, int]


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def make_palette(hue: float, accent: float, variant: int) -> Palette:
    """Variant 0: the class colours; 1: a lighter, paler morph; 2: a shifted-hue "shiny" morph."""
    sat, val, dh = ((0.75, 0.85, 0.0), (0.45, 1.0, 0.0), (0.8, 0.8, 0.07))[variant]
    h = hue + dh
    return Palette(
        body=_hsv(h, sat, val),
        dark=_hsv(h, sat, val * 0.4),
        light=_hsv(h, sat * 0.45, min(1.0, val * 1.15)),
        accent=_hsv(accent + dh, 0.85, 0.9),
    )


# -- drawing: one function per creature, on the design canvas, centre (64, 64) ------------------------
Draw = Callable[[ImageDraw.ImageDraw, Palette, Pose], None]
EYE_WHITE, PUPIL = (250, 250, 250), (20, 20, 32)


def _pt(x: float, y: float, p: Pose) -> tuple[float, float]:
    """Design point with squash-and-stretch about the centre and the bob offset."""
    return (64 + (x - 64) * p.squash, 64 + (y - 64) / p.squash + p.bob)


def _ellipse(d: ImageDraw.ImageDraw, cx, cy, rx, ry, p: Pose, fill, outline=None, width=2) -> None:
    x0, y0 = _pt(cx - rx, cy - ry, p)
    x1, y1 = _pt(cx + rx, cy + ry, p)
    d.ellipse((x0, y0, x1, y1), fill=fill, outline=outline, width=width)


def _poly(d: ImageDraw.ImageDraw, pts, p: Pose, fill, outline=None) -> None:
    d.polygon([_pt(x, y, p) for x, y in pts], fill=fill, outline=outline)


def _eyes(d: ImageDraw.ImageDraw, p: Pose, y: float, dx: float, r: float = 6.0, cx: float = 64) -> None:
    for ex in (cx - dx, cx + dx):
        _ellipse(d, ex, y, r, r, p, EYE_WHITE, PUPIL, 1)
        _ellipse(d, ex + p.look * r * 0.45, y, r * 0.45, r * 0.45, p, PUPIL)


def _blob(d, c: Palette, p: Pose) -> None:
    for sx in (-1, 1):
        _ellipse(d, 64 + sx * 18, 96 + 3 * math.sin(p.phase + sx), 10, 6, p, c.dark)
    _ellipse(d, 64, 66, 36, 30, p, c.body, c.dark)
    _ellipse(d, 52, 54, 10, 7, p, c.light)
    _eyes(d, p, 62, 13)


def _spiky(d, c: Palette, p: Pose) -> None:
    for (x0, y0), (x1, y1) in (((22, 98), (64, 40)), ((64, 40), (106, 98))):
        ex, ey = x1 - x0, y1 - y0
        n = math.hypot(ex, ey)
        nx, ny = ey / n, -ex / n  # outward normal of the edge
        for k in range(3):
            t = 0.25 + 0.25 * k
            bx, by = x0 + ex * t, y0 + ey * t
            h = 14 + 5 * math.sin(p.phase + k)
            tip = (bx + nx * h, by + ny * h)
            _poly(
                d,
                [(bx - ex / n * 7, by - ey / n * 7), tip, (bx + ex / n * 7, by + ey / n * 7)],
                p,
                c.accent,
                c.dark,
            )
    _poly(d, [(22, 98), (64, 40), (106, 98)], p, c.body, c.dark)
    _eyes(d, p, 76, 12, 5)


def _cube(d, c: Palette, p: Pose) -> None:
    ant = 64 + 10 * math.sin(p.phase)
    d.line([_pt(64, 34, p), _pt(ant, 18, p)], fill=c.dark, width=3)
    _ellipse(d, ant, 16, 5, 5, p, c.accent)
    _poly(d, [(32, 34), (96, 34), (96, 98), (32, 98)], p, c.body, c.dark)
    _poly(d, [(40, 50), (88, 50), (88, 70), (40, 70)], p, c.light)
    for sx in (-1, 1):
        _poly(
            d, [(64 + sx * 32, 60), (64 + sx * 44, 64 + 8 * math.sin(p.phase)), (64 + sx * 32, 76)], p, c.dark
        )
    _eyes(d, p, 60, 12, 5)


def _star(d, c: Palette, p: Pose) -> None:
    pts = []
    for i in range(10):
        a = -math.pi / 2 + i * math.pi / 5 + 0.12 * math.sin(p.phase)
        r = 46 if i % 2 == 0 else 20
        pts.append((64 + r * math.cos(a), 66 + r * math.sin(a)))
    _poly(d, pts, p, c.body, c.dark)
    _ellipse(d, 64, 70, 12, 9, p, c.light)
    _eyes(d, p, 64, 9, 4)


def _wyrm(d, c: Palette, p: Pose) -> None:
    for i in range(7, -1, -1):
        x = 20 + i * 11
        y = 70 + 14 * math.sin(p.phase + i * 0.9)
        r = 13 - i * 0.8
        _ellipse(d, x, y, r, r, p, c.body if i % 2 else c.accent, c.dark)
    hy = 70 + 14 * math.sin(p.phase)
    _ellipse(d, 18, hy - 2, 15, 13, p, c.body, c.dark)
    _eyes(d, p, hy - 6, 6, 4, cx=16)


def _flutter(d, c: Palette, p: Pose) -> None:
    flap = 18 * math.sin(p.phase)
    for sx in (-1, 1):
        _poly(d, [(64, 60), (64 + sx * 56, 26 + flap), (64 + sx * 50, 80), (64, 74)], p, c.accent, c.dark)
        _poly(d, [(64, 72), (64 + sx * 36, 104 - flap / 2), (64 + sx * 12, 96)], p, c.light, c.dark)
    _ellipse(d, 64, 70, 10, 30, p, c.body, c.dark)
    _eyes(d, p, 48, 6, 4)


def _jelly(d, c: Palette, p: Pose) -> None:
    for i in range(5):
        x0 = 38 + 13 * i
        pts = [(x0 + 6 * math.sin(p.phase + i + t / 4), 64 + t * 4) for t in range(10)]
        d.line([_pt(x, y, p) for x, y in pts], fill=c.accent, width=4)
    d.pieslice([_pt(28, 30, p), _pt(100, 98, p)], 180, 360, fill=c.body, outline=c.dark, width=2)
    _ellipse(d, 50, 50, 8, 6, p, c.light)
    _eyes(d, p, 56, 12, 5)


def _crab(d, c: Palette, p: Pose) -> None:
    for sx in (-1, 1):
        for k in range(3):
            d.line([_pt(64 + sx * 20, 80, p), _pt(64 + sx * (38 + 6 * k), 100 + 4 * math.sin(p.phase + k), p)],
                   fill=c.dark, width=3)  # fmt: skip
        cy = 40 + 6 * math.sin(p.phase)
        _ellipse(d, 64 + sx * 46, cy, 13, 11, p, c.accent, c.dark)
        _poly(d, [(64 + sx * 46, cy - 2), (64 + sx * 60, cy - 14), (64 + sx * 56, cy + 2)], p, (0, 0, 0, 0))
    _ellipse(d, 64, 72, 40, 22, p, c.body, c.dark)
    _eyes(d, p, 58, 12, 5)


def _mushroom(d, c: Palette, p: Pose) -> None:
    _poly(d, [(50, 64), (78, 64), (82, 104), (46, 104)], p, (236, 226, 205), c.dark)
    d.pieslice([_pt(18, 22 + 4 * math.sin(p.phase), p), _pt(110, 104, p)], 180, 360, fill=c.body,
               outline=c.dark, width=2)  # fmt: skip
    for x, y, r in ((42, 42, 7), (64, 34, 8), (86, 44, 6), (56, 54, 5)):
        _ellipse(d, x, y, r, r, p, c.light)
    _eyes(d, p, 82, 7, 4)


def _ghost(d, c: Palette, p: Pose) -> None:
    pts = [(28 + 72 * i / 8, 96 + 8 * math.sin(p.phase + i * 1.6) * (i % 2)) for i in range(9)]
    _poly(d, [(28, 62), *pts, (100, 62)], p, c.body)
    _ellipse(d, 64, 60, 36, 34, p, c.body)
    d.line([_pt(x, y, p) for x, y in pts], fill=c.dark, width=2)
    _ellipse(d, 64, 80, 8, 5 + 3 * math.sin(p.phase), p, c.dark)
    _eyes(d, p, 54, 13, 7)


def _fish(d, c: Palette, p: Pose) -> None:
    tail = 12 * math.sin(p.phase)
    _poly(d, [(86, 64), (114, 40 + tail), (114, 88 + tail)], p, c.accent, c.dark)
    _poly(d, [(50, 44), (70, 24), (78, 46)], p, c.accent, c.dark)
    _ellipse(d, 60, 64, 36, 22, p, c.body, c.dark)
    for x in (58, 70, 82):
        d.arc([_pt(x - 8, 50, p), _pt(x + 8, 78, p)], 300, 60, fill=c.light, width=2)
    _ellipse(d, 38, 58, 6, 6, p, EYE_WHITE, PUPIL, 1)
    _ellipse(d, 38 + p.look * 2.5, 58, 3, 3, p, PUPIL)


def _rock(d, c: Palette, p: Pose) -> None:
    for sx in (-1, 1):
        _ellipse(d, 64 + sx * 44, 70 + 10 * math.sin(p.phase + sx), 12, 12, p, c.dark)
    pts = [(30, 60), (44, 32), (70, 26), (94, 40), (100, 72), (86, 100), (46, 102), (28, 84)]
    _poly(d, pts, p, c.body, c.dark)
    for a, b in (((46, 48), (58, 60)), ((78, 80), (90, 70)), ((52, 88), (62, 82))):
        d.line([_pt(*a, p), _pt(*b, p)], fill=c.dark, width=2)
    _ellipse(d, 64, 56, 14, 5, p, c.accent)
    _eyes(d, p, 56, 9, 4)


DRAWERS: tuple[Draw, ...] = (
    _blob, _spiky, _cube, _star, _wyrm, _flutter, _jelly, _crab, _mushroom, _ghost, _fish, _rock,
)  # fmt: skip


def render(kind: int, palette: Palette, pose: Pose, size: int) -> Image.Image:
    """One creature as an RGBA sprite of ``size`` x ``size`` px: flat colours, binary alpha."""
    im = Image.new("RGBA", (DESIGN, DESIGN), (0, 0, 0, 0))
    DRAWERS[kind](ImageDraw.Draw(im), palette, pose)
    if pose.flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if pose.rot:
        im = im.rotate(pose.rot, resample=Image.Resampling.NEAREST, center=(64, 64))
    inner = max(8, round(size * pose.scale))
    sprite = im.resize((inner, inner), Image.Resampling.NEAREST)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    slack = size - inner
    canvas.alpha_composite(sprite, (round(slack * pose.place[0]), round(slack * pose.place[1])))
    return binary_alpha(canvas)


def binary_alpha(im: Image.Image) -> Image.Image:
    a = np.asarray(im).copy()
    opaque = a[..., 3] >= 128
    a[..., 3] = np.where(opaque, 255, 0)
    a[~opaque, :3] = 0
    return Image.fromarray(a, "RGBA")


def to_palette(im: Image.Image) -> Image.Image:
    """RGBA with binary alpha -> P with an exact palette and a transparency index (no dithering)."""
    a = np.asarray(im)
    opaque = a[..., 3] > 0
    colours, inverse = np.unique(a[..., :3][opaque], axis=0, return_inverse=True)
    if len(colours) > 255:
        raise ValueError(f"{len(colours)} colours do not fit a GIF palette")
    idx = np.zeros(a.shape[:2], np.uint8)  # index 0 = transparent
    idx[opaque] = inverse.reshape(-1) + 1
    pal = [0, 0, 0] + colours.astype(np.uint8).reshape(-1).tolist()
    out = Image.fromarray(idx, "P")
    out.putpalette(pal + [0] * (768 - len(pal)))
    out.info["transparency"] = 0
    return out


def encode_png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def encode_gif(frames: list[Image.Image], duration: int = 120) -> bytes:
    """Palette GIF (transparency index 0); several frames make an animated, looping GIF."""
    pal = [to_palette(f) for f in frames]
    buf = io.BytesIO()
    if len(pal) == 1:
        pal[0].save(buf, "GIF", transparency=0)
    else:
        pal[0].save(buf, "GIF", save_all=True, append_images=pal[1:], duration=duration, loop=0,
                    disposal=2, transparency=0, optimize=False)  # fmt: skip
    return buf.getvalue()


def random_pose(rng: np.random.Generator) -> Pose:
    return Pose(
        bob=float(rng.uniform(-6, 6)),
        phase=float(rng.uniform(0, 2 * math.pi)),
        squash=float(rng.uniform(0.8, 1.2)),
        look=float(rng.uniform(-1, 1)),
        rot=float(rng.choice([0.0, 0.0, rng.uniform(-25, 25)])),
        flip=bool(rng.random() < 0.5),
        scale=float(rng.uniform(0.7, 0.98)),
        place=(float(rng.random()), float(rng.random())),
    )
