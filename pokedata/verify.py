"""Is this file really an image? Magic bytes, then Pillow (decompression-bomb guard left on).

Shared by every way a file enters the store (HTTP download, dump mirror copy, folder import), so a
file is accepted or quarantined for the same reasons whatever its source.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pokedata.errors import UserError

# (prefix, offset, extension); WebP and AVIF/HEIF need two checks, done in sniff_image_type.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
)
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp", "tiff", "tif", "avif"})
SNIFF_BYTES = 32
"""How many leading bytes :func:`sniff_image_type` needs."""


class VerificationError(Exception):
    """A file that must not enter the store; ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str  # Pillow's format name, e.g. "JPEG"
    ext: str  # canonical extension from the magic bytes, e.g. "jpg"
    n_frames: int = 1


def sniff_image_type(head: bytes) -> str | None:
    """Canonical extension from the first bytes of a file, or None when it is not a known image."""
    for magic, offset, ext in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    return None


def looks_like_html(head: bytes) -> bool:
    h = head.lstrip()[:64].lower()
    return h.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"{", b"["))


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Pillow's decompression-bomb limit set to ``max_pixels`` inside the block (None: leave the default).

    Process-wide (Pillow keeps it in a module global): used around a whole fetch run, whose threads all
    verify under the same limit. ``--max-pixels`` of ``poke fetch``: a legit 20000x20000 image needs 4e8.
    """

    if max_pixels is None:
        yield
        return
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = int(max_pixels)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def check_max_pixels(max_pixels: int | None) -> None:
    if max_pixels is not None and max_pixels < 1:
        raise UserError(f"--max-pixels {max_pixels} must be positive", hint="e.g. --max-pixels 400000000")


def verify_image_file(path: Path, shown_as: str | None = None) -> ImageInfo:
    """Check magic bytes and that Pillow can fully decode the file; raise VerificationError otherwise.

    Reasons: ``empty``, ``not-an-image`` (HTML, JSON or unknown bytes), ``decompression-bomb``,
    ``truncated`` and ``undecodable``. ``shown_as`` names the file in messages instead of ``path`` (a temp
    file of the intake gate is gone by the time anyone reads the reason: name the source instead).
    """
    try:
        return _verify(Path(path))
    except VerificationError as exc:
        if shown_as is None or str(path) not in exc.detail:
            raise
        raise VerificationError(exc.reason, exc.detail.replace(str(path), shown_as)) from exc


def _verify(path: Path) -> ImageInfo:
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head:
        raise VerificationError("empty", "zero bytes")
    ext = sniff_image_type(head)
    if ext is None:
        kind = "HTML/text page" if looks_like_html(head) else f"unknown magic bytes {head[:8]!r}"
        raise VerificationError("not-an-image", kind)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt = im.format or ext.upper()
                width, height = im.size
                n_frames = getattr(im, "n_frames", 1)
                im.verify()
            # verify() does not decode pixel data: load() does, and catches truncated files.
            with Image.open(path) as im:
                im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise VerificationError("decompression-bomb", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise VerificationError("undecodable", str(exc)) from exc
    except OSError as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "undecodable"
        raise VerificationError(reason, str(exc)) from exc
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise VerificationError("undecodable", f"{type(exc).__name__}: {exc}") from exc
    return ImageInfo(width=width, height=height, format=fmt, ext=ext, n_frames=n_frames)
