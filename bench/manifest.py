"""build-manifest at scale: ``build_manifest`` on 80k images vs the I/O floor, side by side, as a ratio.

A synthetic dataset directory (ledger with 80k items/images rows over 799 classes, 30% of them marked
duplicates in groups, 1% label conflicts, 2% quarantined, phash cached for all; one small file per
clean image so the missing-file check runs for real) is made in a temp dir, then timed:

- ours: ``build_manifest`` end to end (read + keep rules + file checks + grouped hash splits +
  parquet + csv + classes.json + stats.json + the class-count chart);
- anchor, "I/O floor": the same joined SQL read into pandas and written as parquet + csv, nothing else
  (no rules, no splits, no file checks, no chart) - the least any manifest builder must do.

Goal: 80k rows in a few seconds. Run::

    python bench/manifest.py           # 80,000 images
    python bench/manifest.py --quick   # 20,000 images
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_dataset(root: Path, n: int, seed: int = 0) -> None:
    """Ledger rows + one tiny file per done image, written in bulk."""
    from pokedata.catalog import load_catalog
    from pokedata.ledger import Ledger
    from pokedata.store import DatasetDir, safe_name

    rng = np.random.default_rng(seed)
    names = load_catalog().names
    ds = DatasetDir.at(root).create()
    cls = rng.integers(0, len(names), n)
    status = np.where(rng.random(n) < 0.02, "quarantined", "done")
    dup = rng.random(n) < 0.30
    conflict = rng.random(n) < 0.01
    now = time.time()
    Ledger(ds.ledger_path).close()  # schema
    conn = sqlite3.connect(ds.ledger_path)
    with conn:
        conn.executemany(
            "INSERT INTO items (id, source, source_id, class_name, status, meta, created_at, updated_at)"
            " VALUES (?, 'folder', ?, ?, 'done', '{}', ?, ?)",
            ((i + 1, f"f{i}", names[cls[i]], now, now) for i in range(n)),
        )
        rows = []
        for i in range(n):
            done = status[i] == "done"
            survivor = max(1, i - int(rng.integers(1, 50))) if dup[i] else None
            rel = f"clean/{safe_name(names[cls[i]])}/f{i}.jpg" if done else None
            rows.append(
                (i + 1, i + 1, str(status[i]), None if done else "too-small: 10x10", rel, 64, 64, f"{i:064x}",
                 survivor, survivor, int(conflict[i]), now, now)
            )  # fmt: skip
        conn.executemany(
            "INSERT INTO images (id, item_id, status, error, path, width, height, pixel_sha256, dup_of,"
            " dup_group, conflict, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        hashes = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
        conn.executemany(
            "INSERT INTO hashes (image_id, method, value) VALUES (?, 'phash', ?)",
            ((i + 1, int(hashes[i])) for i in range(n)),
        )
    conn.close()
    for *_, rel, _w, _h, _sha, _dup, _grp, _c, _t0, _t1 in rows:
        if rel:
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"\xff\xd8\xff")


def io_floor(root: Path, out: Path) -> float:
    """The anchor: the joined read into pandas, then parquet + csv."""
    import pandas as pd

    from pokedata.manifest import _QUERY

    t = time.perf_counter()
    conn = sqlite3.connect(f"file:{root / 'ledger.sqlite'}?mode=ro", uri=True)
    df = pd.read_sql_query(_QUERY, conn)
    conn.close()
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    (out / "floor.parquet").write_bytes(buf.getvalue())
    (out / "floor.csv").write_bytes(df.to_csv(index=False).encode())
    return time.perf_counter() - t


def ours(root: Path, out: Path) -> tuple[float, int]:
    from pokedata.manifest import ManifestConfig, build_manifest

    t = time.perf_counter()
    s = build_manifest(ManifestConfig(data=root, name="bench", out=out, val=0.1, test=0.05))
    return time.perf_counter() - t, s.rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 images instead of 80,000")
    ap.add_argument("--n", type=int, default=None, help="number of images rows (overrides --quick)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best is reported")
    args = ap.parse_args()
    n = args.n or (20_000 if args.quick else 80_000)
    with tempfile.TemporaryDirectory(prefix="bench-manifest-") as tmp:
        root = Path(tmp) / "ds"
        t = time.perf_counter()
        make_dataset(root, n)
        print(f"made a {n:,}-image dataset in {time.perf_counter() - t:.1f} s")
        ours(root, Path(tmp) / "m")  # warm-up: imports, page cache
        io_floor(root, Path(tmp) / "floor")
        best_ours, rows = min(ours(root, Path(tmp) / "m") for _ in range(args.repeat))
        best_floor = min(io_floor(root, Path(tmp) / "floor") for _ in range(args.repeat))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load {load:.1f}"
    )
    print(f"{'':28}{'seconds':>10}{'rows/s':>12}")
    print(f"{'ours: build_manifest':28}{best_ours:10.2f}{rows / best_ours:12,.0f}   ({rows:,} kept of {n:,})")
    print(f"{'anchor: I/O floor':28}{best_floor:10.2f}{n / best_floor:12,.0f}")
    print(f"ratio ours / floor: {best_ours / best_floor:.2f}x the time of the floor")


if __name__ == "__main__":
    main()
