"""Build small dataset directories for the dedup tests directly (ledger rows + clean JPGs).

The dedup stage reads only ``items`` (class, source) and ``images`` (done rows with a clean JPG),
so tests write those rows themselves instead of running fetch + clean.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pokedata.ledger import Ledger
from pokedata.store import DatasetDir


@dataclass
class Spec:
    """One clean image to create."""

    class_name: str
    image: Image.Image
    source: str = "folder"
    source_id: str | None = None
    frame: int = 0
    status: str = "done"


def pattern(seed: int, size: int = 96) -> Image.Image:
    """A distinct, structured RGB image (random ellipses and bars) for seed."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        w, h = (int(v) for v in rng.integers(size // 6, size // 2, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            d.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            d.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
    return im


def near_copy(im: Image.Image, *, scale: float = 0.8, quality: int = 70) -> Image.Image:
    """A resized + JPEG-recompressed copy (a typical near duplicate)."""
    import io

    small = im.resize(
        (max(8, int(im.width * scale)), max(8, int(im.height * scale))), Image.Resampling.BICUBIC
    )
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def pixel_sha256(im: Image.Image) -> str:
    rgb = im.convert("RGB")
    return hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()


def make_dataset(root: Path, specs: list[Spec]) -> list[int]:
    """Create ``root`` with one item + one images row + one clean JPG per spec; returns images ids."""
    ds = DatasetDir.at(root).create()
    ids = []
    now = time.time()
    with Ledger(ds.ledger_path) as ledger, ledger.transaction() as conn:
        for n, s in enumerate(specs):
            sid = s.source_id or f"img{n}"
            cur = conn.execute(
                "INSERT OR IGNORE INTO items (source, source_id, class_name, status, created_at, updated_at)"
                " VALUES (?, ?, ?, 'done', ?, ?)",
                (s.source, sid, s.class_name, now, now),
            )
            item_id = (
                cur.lastrowid
                if cur.rowcount
                else conn.execute(
                    "SELECT id FROM items WHERE source = ? AND source_id = ? AND class_name = ?",
                    (s.source, sid, s.class_name),
                ).fetchone()[0]
            )
            path = ds.clean_path(s.class_name, f"{s.source}-{sid}", s.frame)
            path.parent.mkdir(parents=True, exist_ok=True)
            s.image.convert("RGB").save(path, format="JPEG", quality=95)
            cur = conn.execute(
                "INSERT INTO images (item_id, frame, status, path, width, height, pixel_sha256, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, s.frame, s.status, ds.rel(path), s.image.width, s.image.height, pixel_sha256(s.image),
                 now, now),
            )  # fmt: skip
            ids.append(cur.lastrowid)
    return ids


def marks(root: Path) -> dict[int, tuple]:
    """images.id -> (dup_of, dup_group, dup_kind, conflict)."""
    with Ledger(Path(root) / "ledger.sqlite") as ledger:
        rows = ledger.conn.execute("SELECT id, dup_of, dup_group, dup_kind, conflict FROM images").fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}
