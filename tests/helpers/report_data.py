"""A small dataset directory for the report tests, written straight into the ledger (no fetch/clean).

Hostile on purpose: class names, tags, URLs and error texts carry ``<script>``, quotes, ``&`` and ``../``.
Holds kept images, a near-duplicate group with hashes (distances 0 and 3), a label conflict across two
classes, an image quarantined at clean (its raw file kept) and an item quarantined at fetch (no file).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from PIL import Image

from pokedata.catalog import Catalog, PokemonClass, write_catalog_csv
from pokedata.ledger import Ledger
from pokedata.store import DatasetDir

EVIL = '<script>alert("x")</script>'
QUOTES = "Mr. \"Mime\" & 'Jr'"
DOTS = "../../etc/passwd"
CLASSES = ["Pikachu", EVIL, QUOTES, DOTS]
EVIL_TAGS = 'pikachu <img src=x onerror="alert(1)"> solo'
EVIL_PAGE = "javascript:alert(1)"


def jpg(colour: tuple[int, int, int], size: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="JPEG")
    return buf.getvalue()


def catalog_csv(path: Path, names=CLASSES) -> Path:
    classes = tuple(PokemonClass(i, n, i + 1, 1, "base", f"tag_{i}", f"q{i}") for i, n in enumerate(names))
    write_catalog_csv(Catalog(classes, str(path)), path)
    return path


class Builder:
    def __init__(self, root: Path):
        self.ds = DatasetDir.at(root).create()
        self.ledger = Ledger(self.ds.ledger_path)
        with self.ledger.lock:  # go on after the rows already there
            self.n = self.ledger.conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0]

    def item(self, cls: str, *, source="danbooru", status="done", error=None, meta=None, url=None, raw=True):
        self.n += 1
        now = time.time()
        raw_rel = None
        if raw:
            raw_path = self.ds.raw_path(cls, f"{source}-{self.n}", "jpg")
            raw_path.parent.mkdir(parents=True, exist_ok=True)
            raw_path.write_bytes(jpg((self.n * 37 % 255, 90, 160)))
            raw_rel = self.ds.rel(raw_path)
        with self.ledger.transaction() as conn:
            return conn.execute(
                "INSERT INTO items (source, source_id, class_name, url, status, error, path, meta, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    source,
                    str(1000 + self.n),
                    cls,
                    url,
                    status,
                    error,
                    raw_rel,
                    json.dumps(meta or {}),
                    now,
                    now,
                ),
            ).lastrowid

    def image(self, item_id: int, cls: str, *, status="done", error=None, phash=None, colour=(200, 30, 30)):
        now = time.time()
        path = self.ds.clean_path(cls, f"i{item_id}")
        rel = None
        if status == "done":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpg(colour))
            rel = self.ds.rel(path)
        with self.ledger.transaction() as conn:
            img = conn.execute(
                "INSERT INTO images (item_id, frame, status, error, path, width, height, pixel_sha256, created_at,"
                " updated_at) VALUES (?, 0, ?, ?, ?, 24, 24, ?, ?, ?)",
                (item_id, status, error, rel, f"{item_id:064x}", now, now),
            ).lastrowid
            if phash is not None:
                conn.execute(
                    "INSERT INTO hashes (image_id, method, value) VALUES (?, 'phash', ?)", (img, phash)
                )
        return img

    def mark(self, img: int, *, dup_of=None, group=None, kind=None, conflict=0):
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE images SET dup_of = ?, dup_group = ?, dup_kind = ?, conflict = ? WHERE id = ?",
                (dup_of, group, kind, conflict, img),
            )


def make_dataset(root: Path) -> Path:
    """The dataset; returns its root."""
    b = Builder(root)
    meta = {"tags": EVIL_TAGS, "rating": "g", "page_url": EVIL_PAGE}
    for k, cls in enumerate(CLASSES):
        for j in range(3 + k):
            item = b.item(cls, meta=meta, url=f'https://cdn.test/{k}/{j}.jpg?a=1&b="2"')
            b.image(item, cls, phash=(k << 8) | j << 20, colour=(40 * k, 60 * j, 90))
    # a near-duplicate group in Pikachu: survivor + two copies at distances 0 and 3
    survivor = b.image(b.item("Pikachu", source="ddg", url="https://img.test/a.png"), "Pikachu", phash=0b1111)
    copy0 = b.image(b.item("Pikachu", source="ddg"), "Pikachu", phash=0b1111)
    copy3 = b.image(b.item("Pikachu", source="folder"), "Pikachu", phash=0b1000)
    b.mark(survivor, group=survivor)
    b.mark(copy0, dup_of=survivor, group=survivor, kind="exact")
    b.mark(copy3, dup_of=survivor, group=survivor, kind="near")
    # a label conflict: the same picture under EVIL and QUOTES (both dropped)
    a = b.image(b.item(EVIL), EVIL, phash=0xF0F0)
    c = b.image(b.item(QUOTES), QUOTES, phash=0xF0F1)
    b.mark(a, group=a, conflict=1)
    b.mark(c, dup_of=a, group=a, kind="near", conflict=1)
    # quarantined at clean (raw file kept) and at fetch (no file)
    b.image(b.item(DOTS), DOTS, status="quarantined", error="too-small: 8x8 px <b>tiny</b>")
    b.item(DOTS, status="quarantined", error="not-an-image: magic <script>x</script>", raw=False)
    b.item("Pikachu", status="failed", error="http-404: Not Found", raw=False)
    b.ledger.close()
    return b.ds.root
