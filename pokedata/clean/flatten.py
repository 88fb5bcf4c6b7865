"""Pure image functions of the clean stage: any Pillow image -> an opaque RGB image; frames of animations.

Nothing here touches the disk or the ledger, so the dedup benchmark and the demo can call it directly::

    from pokedata.clean.flatten import flatten_to_rgb, iter_frames, parse_background, parse_frames

    with Image.open(path) as im:
        for index, frame in iter_frames(im, parse_frames("all")):
            rgb = flatten_to_rgb(frame, parse_background("white"))

Transparency is composited onto the background, never dropped: ``convert("RGB")`` on an image with an
alpha channel or palette transparency turns transparent pixels black or a stray palette colour, so it is
only used for modes that carry no transparency at all. High-bit-depth modes (``I;16*``, ``I``, ``F``)
are scaled to 8 bits (see :func:`_to_uint8`) rather than clipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pokedata.errors import UserError

RGB = tuple[int, int, int]

NAMED_BACKGROUNDS: dict[str, RGB] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
}
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")

# Modes that carry an alpha channel (premultiplied ones are un-premultiplied by Pillow's convert).
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
# Modes that convert("RGB") handles exactly and that cannot carry transparency in their pixels.
_PLAIN_MODES = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_HIGH_DEPTH = {"I", "F"}

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112


class FlattenError(Exception):
    """An image this module cannot turn into RGB; ``reason`` is a short code (e.g. ``unsupported-mode``)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def parse_background(value: str) -> RGB:
    """``white`` / ``black`` / ``gray`` or ``#RRGGBB`` -> an RGB triple; UserError names ``--background``."""
    text = str(value).strip().lower()
    if text in NAMED_BACKGROUNDS:
        return NAMED_BACKGROUNDS[text]
    m = _HEX.match(text)
    if not m:
        raise UserError(
            f"--background {value!r} is not a colour",
            hint=f"give one of {', '.join(sorted(NAMED_BACKGROUNDS))} or #RRGGBB, e.g. #ffffff",
        )
    h = m.group(1)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@dataclass(frozen=True)
class FrameSpec:
    """Which frames of an animation to keep: ``first``, ``all`` or ``every:N`` (frames 0, N, 2N, ...)."""

    mode: str = "first"  # first | all | every
    step: int = 1

    def __str__(self) -> str:
        return f"every:{self.step}" if self.mode == "every" else self.mode

    def wants(self, index: int) -> bool:
        if self.mode == "first":
            return index == 0
        return index % self.step == 0


def parse_frames(value: str | FrameSpec) -> FrameSpec:
    """``first`` | ``all`` | ``every:N`` -> FrameSpec; UserError names ``--frames``."""
    if isinstance(value, FrameSpec):
        return value
    text = str(value).strip().lower()
    if text == "first":
        return FrameSpec("first", 1)
    if text == "all":
        return FrameSpec("all", 1)
    m = re.fullmatch(r"every:(\d+)", text)
    if m and int(m.group(1)) >= 1:
        n = int(m.group(1))
        return FrameSpec("all", 1) if n == 1 else FrameSpec("every", n)
    raise UserError(
        f"--frames {value!r} is not a frame selection",
        hint="give first, all, or every:N with N >= 1 (e.g. every:4 keeps frames 0, 4, 8, ...)",
    )


# -- orientation -------------------------------------------------------------------------------------


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8) of an image, 1 when absent or unreadable."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not lose the image
        return 1
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if value in _TRANSPOSE or value == 1 else 1


def apply_orientation(im: Image.Image, value: int) -> Image.Image:
    """Rotate/flip ``im`` as EXIF orientation ``value`` says (1 = unchanged, returned as is)."""
    method = _TRANSPOSE.get(value)
    return im.transpose(method) if method is not None else im


def exif_upright(im: Image.Image) -> Image.Image:
    """``ImageOps.exif_transpose`` that never raises on a broken EXIF block, and returns ``im`` itself
    (no copy: 15-20 ms on a 2 MP photo) when it is already upright."""
    return apply_orientation(im, orientation(im))


# -- frames --------------------------------------------------------------------------------------------


def frame_count(im: Image.Image) -> int:
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:
        return 1


def is_animated(im: Image.Image) -> bool:
    return bool(getattr(im, "is_animated", False)) and frame_count(im) > 1


def iter_frames(im: Image.Image, spec: FrameSpec | str = "first") -> Iterator[tuple[int, Image.Image]]:
    """Yield ``(frame index, upright image)`` for the selected frames of ``im``.

    A still image yields ``(0, image)`` in its own mode (EXIF-transposed), so :func:`flatten_to_rgb`
    sees palette transparency as it is. An animation's frames come as RGBA: Pillow's ``seek`` applies
    each frame's disposal and blending onto the previous canvas, and the RGBA copy keeps transparent
    areas transparent. Decoding errors propagate (the caller records them per frame).
    """
    spec = parse_frames(spec)
    if not is_animated(im):
        im.load()
        yield 0, exif_upright(im)
        return
    turn = orientation(im)
    n = frame_count(im)
    last = 0 if spec.mode == "first" else n - 1
    for index in range(n):
        if index > last:
            break
        try:
            if index:
                im.seek(index)
            if not spec.wants(index):
                continue
            im.load()
            frame = _frame_rgba(im)
        except Exception as exc:
            exc.frame_index = index  # type: ignore[attr-defined]  # which frame failed, for the caller
            raise
        yield index, apply_orientation(frame, turn)


def _frame_rgba(im: Image.Image) -> Image.Image:
    """The current frame of an animation as a new RGBA image (transparency kept)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return flatten_to_rgb(im, (0, 0, 0)).convert("RGBA")
    if im.mode == "La":
        return im.convert("LA").convert("RGBA")
    return im.convert("RGBA")


# -- downscaling ---------------------------------------------------------------------------------------

RESAMPLE = Image.Resampling.BICUBIC
"""The downscale filter. Bicubic, not Lanczos (the filter until clean ``PARAMS_VERSION`` 2): support 2
instead of 3 (a third fewer taps), 16 vs 22 ms on a 2 MP photo, and on the benchmark's images within
49.5 dB PSNR / 0.993 SSIM of the Lanczos output, less of a change than the q95 encode itself makes
(41.8 dB / 0.964); bench/README.md has the figures."""


def downscale(im: Image.Image, max_side: int) -> Image.Image:
    """``im`` with its longer side brought down to ``max_side`` (aspect kept, each side >= 1 px) by one
    :data:`RESAMPLE` resize (an integer box reduction first where the scale is below 1/3); ``im`` itself
    when it already fits."""
    longest = max(im.size)
    if longest <= max_side:
        return im
    k = max_side / longest
    size = (max(1, round(im.width * k)), max(1, round(im.height * k)))
    return im.resize(size, RESAMPLE, reducing_gap=3.0)


# -- flattening ----------------------------------------------------------------------------------------


def has_transparency(im: Image.Image) -> bool:
    """Alpha channel, palette transparency (index or RGBA palette), or a tRNS colour key."""
    if im.mode in _ALPHA_MODES:
        return True
    if "transparency" in im.info:
        return True
    return im.mode == "P" and im.palette is not None and im.palette.mode == "RGBA"


def flatten_to_rgb(im: Image.Image, background: RGB = (255, 255, 255)) -> Image.Image:
    """Any Pillow image -> an opaque RGB image, transparency composited onto ``background``.

    Fully transparent pixels become exactly ``background``; fully opaque ones keep their colour exactly;
    partial alpha blends linearly. Raises :class:`FlattenError` for a mode Pillow cannot convert.
    An opaque RGB image is returned as is (not copied): treat the result as read-only.
    """
    mode = im.mode
    if mode.startswith("I;16") or mode in _HIGH_DEPTH:
        return _flatten_high_depth(im, background)
    if has_transparency(im):
        return _composite(_to_rgba(im), background)
    if mode == "RGB":
        return im
    if mode in _PLAIN_MODES:
        return _convert(im, "RGB")
    # Anything else Pillow knows (e.g. BGR;15): go through RGBA so any alpha it has is honoured.
    return _composite(_convert(im, "RGBA"), background)


def _convert(im: Image.Image, mode: str) -> Image.Image:
    try:
        return im.convert(mode)
    except (ValueError, OSError) as exc:
        raise FlattenError("unsupported-mode", f"{im.mode} -> {mode}: {exc}") from exc


def _to_rgba(im: Image.Image) -> Image.Image:
    if im.mode == "RGBA":
        return im  # read only by _composite: no copy (every animation frame arrives as RGBA)
    if im.mode == "La":  # Pillow converts La (premultiplied) only to LA
        return _convert(_convert(im, "LA"), "RGBA")
    if im.mode == "P" and im.palette is not None and im.palette.mode == "RGBA":
        return _convert(im, "RGBA")  # the palette's own alpha
    # convert("RGBA") honours info["transparency"] for 1/L/P/RGB (index, grey level or colour key).
    return _convert(im, "RGBA")


def _composite(rgba: Image.Image, background: RGB) -> Image.Image:
    out = Image.new("RGB", rgba.size, background)
    out.paste(rgba.convert("RGB") if rgba.mode != "RGB" else rgba, mask=rgba.getchannel("A"))
    return out


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale a high-depth array to 0..255: ``I;16*`` by 1/257; ``I``/``F`` by their range.

    ``F`` in [0, 1] is taken as normalised (x255); ``I``/``F`` within 0..255 as 8-bit; within 0..65535
    as 16-bit (/257); anything else is min-max stretched. NaN becomes 0.
    """
    a = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if mode.startswith("I;16"):
        scaled = a / 257.0
    else:
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = a * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            scaled = a
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = a / 257.0
        else:
            scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _flatten_high_depth(im: Image.Image, background: RGB) -> Image.Image:
    arr = np.asarray(im)  # (H, W) uint16 / int32 / float32
    grey = _to_uint8(arr, im.mode)
    rgb = Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), "RGB")
    key = im.info.get("transparency")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        mask = Image.fromarray(np.where(arr == key, 0, 255).astype(np.uint8), "L")
        out = Image.new("RGB", im.size, background)
        out.paste(rgb, mask=mask)
        return out
    return rgb
