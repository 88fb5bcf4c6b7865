"""``poke report`` at scale: time and bytes for 80k images, against the thumbnail floor, as ratios.

A synthetic dataset directory is made cheaply in a temp dir: a ledger with 80k items/images rows over the
799 catalog classes (Danbooru-like provenance: ~25 tags, rating, page URL; 30% of the images marked
duplicates in groups, 1% label conflicts, 2% quarantined at clean, phash cached for all) and one real
96x96 JPEG per clean image (256 distinct pictures, hard-linked, so making it costs seconds, while the
report still opens and decodes every path). Timed:

- ours, cold: ``build_report`` into an empty folder (read, every page, every sprite sheet);
- ours, rerun with nothing changed, and rerun after one class changed (incremental writes);
- anchor, "thumbnail floor": open + decode + thumbnail every clean JPG once in the same number of
  processes, writing nothing: the least any report that shows every image must do.

Bytes: the report folder vs the clean JPGs it shows (what a page of one ``<img>`` per image would load).
Run::

    python bench/report.py            # 80,000 images
    python bench/report.py --quick    # 20,000 images
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DISTINCT = 256
TAGS = [f"tag_{i}" for i in range(400)]


def _pictures(rng) -> list[bytes]:
    from PIL import Image, ImageDraw

    out = []
    for _ in range(DISTINCT):
        im = Image.new("RGB", (96, 96), tuple(int(v) for v in rng.integers(150, 256, 3)))
        d = ImageDraw.Draw(im)
        for _ in range(4):
            x, y = (int(v) for v in rng.integers(0, 80, 2))
            d.ellipse((x, y, x + int(rng.integers(10, 40)), y + int(rng.integers(10, 40))),
                      fill=tuple(int(v) for v in rng.integers(0, 200, 3)))  # fmt: skip
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def make_dataset(root: Path, n: int, seed: int = 0) -> int:
    """Ledger rows in bulk + one hard-linked JPEG per clean image; returns the clean JPG bytes."""
    from pokedata.catalog import load_catalog
    from pokedata.ledger import Ledger
    from pokedata.store import DatasetDir, safe_name

    rng = np.random.default_rng(seed)
    names = load_catalog().names
    ds = DatasetDir.at(root).create()
    cls = rng.integers(0, len(names), n)
    quarantined = rng.random(n) < 0.02
    dup = (rng.random(n) < 0.30) & ~quarantined
    conflict = (rng.random(n) < 0.01) & ~quarantined
    now = time.time()
    Ledger(ds.ledger_path).close()  # schema
    metas = [
        json.dumps(
            {
                "tags": " ".join(rng.choice(TAGS, 25)),
                "rating": "gsqe"[i % 4],
                "page_url": f"https://danbooru.example/posts/{100000 + i}",
            }
        )  # fmt: skip
        for i in range(n)
    ]
    conn = sqlite3.connect(ds.ledger_path)
    with conn:
        conn.executemany(
            "INSERT INTO items (id, source, source_id, class_name, url, status, meta, created_at, updated_at)"
            " VALUES (?, 'danbooru', ?, ?, ?, 'done', ?, ?, ?)",
            (
                (i + 1, str(100000 + i), names[cls[i]], f"https://cdn.example/{i}.jpg", metas[i], now, now)
                for i in range(n)
            ),  # fmt: skip
        )
        rows, paths = [], []
        for i in range(n):
            survivor = max(1, i - int(rng.integers(1, 50))) if dup[i] else None
            rel = None if quarantined[i] else f"clean/{safe_name(names[cls[i]])}/{100000 + i}.jpg"
            status = "quarantined" if quarantined[i] else "done"
            rows.append((i + 1, i + 1, status, "too-small: 10x10" if quarantined[i] else None, rel, 96, 96,
                         f"{i:064x}", survivor, survivor, "near" if survivor else None, int(conflict[i]), now, now))  # fmt: skip
            paths.append(rel)
        conn.executemany(
            "INSERT INTO images (id, item_id, status, error, path, width, height, pixel_sha256, dup_of,"
            " dup_group, dup_kind, conflict, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        hashes = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
        conn.executemany(
            "INSERT INTO hashes (image_id, method, value) VALUES (?, 'phash', ?)",
            ((i + 1, int(hashes[i])) for i in range(n)),
        )
    conn.close()
    pictures = root / "pictures"
    pictures.mkdir()
    for k, data in enumerate(_pictures(rng)):
        (pictures / f"{k}.jpg").write_bytes(data)
    total = 0
    for i, rel in enumerate(paths):
        if rel:
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            src = pictures / f"{i % DISTINCT}.jpg"
            os.link(src, p)
            total += src.stat().st_size
    return total


def _decode(paths: list[str]) -> int:
    from PIL import Image

    for p in paths:
        with Image.open(p) as im:
            im.draft("RGB", (64, 64))
            im = im.convert("RGB")
            im.thumbnail((64, 64))
    return len(paths)


def thumbnail_floor(root: Path, workers: int) -> float:
    """The anchor: decode + thumbnail every clean JPG once, in ``workers`` processes."""
    conn = sqlite3.connect(f"file:{root / 'ledger.sqlite'}?mode=ro", uri=True)
    paths = [str(root / p) for (p,) in conn.execute("SELECT path FROM images WHERE status = 'done'")]
    conn.close()
    t = time.perf_counter()
    chunks = [paths[i : i + 400] for i in range(0, len(paths), 400)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_decode, chunks))
    return time.perf_counter() - t


def ours(root: Path, out: Path, workers: int):
    from pokedata.report import ReportConfig, build_report

    t = time.perf_counter()
    s = build_report(ReportConfig(data=root, out=out, workers=workers))
    return time.perf_counter() - t, s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 images instead of 80,000")
    ap.add_argument("--n", type=int, default=None, help="number of images rows (overrides --quick)")
    ap.add_argument("--workers", type=int, default=2, help="processes for the sheets (and the anchor)")
    args = ap.parse_args()
    n = args.n or (20_000 if args.quick else 80_000)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root, out = Path(tmp) / "ds", Path(tmp) / "report"
        t = time.perf_counter()
        jpg_bytes = make_dataset(root, n)
        print(f"made a {n:,}-image dataset in {time.perf_counter() - t:.1f} s")
        floor = thumbnail_floor(root, args.workers)
        cold, s = ours(root, out, args.workers)
        stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
        warm, s2 = ours(root, out, args.workers)
        rewritten = sorted(
            p.name for p in out.rglob("*") if p.is_file() and stamps.get(p) != p.stat().st_mtime_ns
        )
        conn = sqlite3.connect(root / "ledger.sqlite")
        with conn:  # one class changes: its first clean image becomes a copy of its second
            ids = [i for (i,) in conn.execute(
                "SELECT im.id FROM images im JOIN items it ON it.id = im.item_id WHERE it.class_name ="
                " (SELECT class_name FROM items GROUP BY class_name ORDER BY count(*) DESC LIMIT 1)"
                " AND im.status = 'done' AND dup_of IS NULL AND conflict = 0 ORDER BY im.id LIMIT 2")]  # fmt: skip
            conn.execute("UPDATE images SET dup_of = ?, dup_group = ? WHERE id = ?", (ids[1], ids[1], ids[0]))
        conn.close()
        one, s3 = ours(root, out, args.workers)
        files = [p for p in out.rglob("*") if p.is_file()]
        html = [p for p in files if p.suffix == ".html"]
        sheets = [p for p in files if p.parent.name == "sheets"]
        big = max(html, key=lambda p: p.stat().st_size)
        biggest = (big.name, big.stat().st_size)
        sizes = {name: (out / name).stat().st_size for name in ("index.html", "classes.html")}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load {load:.1f}"
    )
    print(f"{'':36}{'seconds':>9}{'images/s':>11}")
    print(
        f"{'ours: poke report, cold':36}{cold:9.1f}{n / cold:11,.0f}   ({s.pages:,} pages, {s.sheets_rendered:,} sheets)"
    )
    print(
        f"{'ours: rerun, nothing changed':36}{warm:9.1f}{'':11}   ({s2.written} files written: {rewritten})"
    )
    print(f"{'ours: rerun, one class changed':36}{one:9.1f}{'':11}   ({s3.written} files written)")
    print(f"{'anchor: thumbnail floor':36}{floor:9.1f}{n / floor:11,.0f}   (decode + thumbnail only)")
    print(f"ratio cold / floor: {cold / floor:.2f}x; rerun / cold: {warm / cold:.2f}x")
    mb = s3.bytes / 1e6
    print(f"report: {mb:.1f} MB in {len(files):,} files ({len(html):,} pages, {len(sheets):,} sprite sheets);"
          f" clean JPGs it shows: {jpg_bytes / 1e6:.1f} MB -> report / JPGs {s3.bytes / jpg_bytes:.2f}x")  # fmt: skip
    print(f"index.html {sizes['index.html'] / 1e3:.0f} kB, classes.html {sizes['classes.html'] / 1e3:.0f} kB,"
          f" largest page {biggest[0]} {biggest[1] / 1e3:.0f} kB")  # fmt: skip


if __name__ == "__main__":
    main()
