"""Thumbnails packed into sprite sheets: one WebP (or JPEG) per page of tiles, not one file per image.

A page shows up to ``page_size`` tiles; each tile is a ``thumb`` x ``thumb`` cell of its page's sheet
(``COLS`` cells a row), drawn with a CSS background offset. A sheet is rendered again only when its
fingerprint changes: the list of files it shows with their sizes and modification times, and the settings.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from PIL import Image, ImageDraw

COLS = 16
FORMATS = {"webp": ("WEBP", "webp"), "jpeg": ("JPEG", "jpg")}
_BG, _MISSING, _RED = (236, 236, 236), (250, 250, 250), (200, 40, 40)


@dataclass(frozen=True)
class SheetSpec:
    """How sheets are drawn (part of every fingerprint)."""

    thumb: int = 64
    fmt: str = "webp"
    quality: int = 80

    @property
    def ext(self) -> str:
        return FORMATS[self.fmt][1]


def tile_style(sheet_url: str, index: int, thumb: int) -> str:
    """Inline CSS of tile ``index`` of a sheet (only integers and our own sheet path go in)."""
    x, y = (index % COLS) * thumb, (index // COLS) * thumb
    return f"background:url('{sheet_url}') -{x}px -{y}px"


def fingerprint(files: Sequence[str | None], spec: SheetSpec) -> str:
    """Hash of what a sheet shows: each file with its size and mtime (missing files count as such)."""
    digest = hashlib.sha1(json.dumps([spec.thumb, spec.fmt, spec.quality, COLS]).encode())
    for f in files:
        try:
            st = os.stat(f) if f else None
        except OSError:
            st = None
        digest.update(f"{f}\0{st.st_size if st else -1}\0{st.st_mtime_ns if st else -1}\n".encode())
    return digest.hexdigest()


def render_sheet(files: Sequence[str | None], spec: SheetSpec) -> bytes:
    """The sheet image: each file fitted into its cell; a crossed-out cell where it cannot be read."""

    t = spec.thumb
    rows = max(1, -(-len(files) // COLS))
    sheet = Image.new("RGB", (COLS * t if len(files) > COLS else max(1, len(files)) * t, rows * t), _BG)
    for i, f in enumerate(files):
        sheet.paste(_thumb(f, t), ((i % COLS) * t, (i // COLS) * t))
    buf = io.BytesIO()
    fmt = FORMATS[spec.fmt][0]
    sheet.save(buf, format=fmt, quality=spec.quality, **({"method": 2} if fmt == "WEBP" else {}))
    return buf.getvalue()


def render_many(jobs: Sequence[tuple[Sequence[str | None], SheetSpec]], workers: int) -> list[bytes]:
    """Render sheets, in ``workers`` processes when there are enough of them to pay for the pool."""
    if workers <= 1 or len(jobs) < 4:
        return [render_sheet(files, spec) for files, spec in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_render_job, jobs, chunksize=max(1, len(jobs) // (workers * 8))))


def _render_job(job: tuple[Sequence[str | None], SheetSpec]) -> bytes:
    return render_sheet(*job)


def _thumb(path: str | None, t: int):
    cell = Image.new("RGB", (t, t), _BG)
    try:
        if not path:
            raise FileNotFoundError
        with Image.open(path) as im:
            im.draft("RGB", (t, t))  # JPEG: decode at 1/2, 1/4 or 1/8 size directly
            if im.mode in ("P", "PA", "LA", "RGBA"):
                im = im.convert("RGBA")
                flat = Image.new("RGBA", im.size, _BG + (255,))
                im = Image.alpha_composite(flat, im)
            im = im.convert("RGB")
            im.thumbnail((t, t), resample=Image.Resampling.BILINEAR, reducing_gap=2.0)
            cell.paste(im, ((t - im.width) // 2, (t - im.height) // 2))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        cell.paste(_MISSING, (2, 2, t - 2, t - 2))
        d = ImageDraw.Draw(cell)
        d.line((8, 8, t - 8, t - 8), fill=_RED, width=2)
        d.line((8, t - 8, t - 8, 8), fill=_RED, width=2)
    return cell
