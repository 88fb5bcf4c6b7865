"""Benchmark: scanning Danbooru20xx metadata (dump mode) against a naive json.loads-every-line scan.

Writes N lines of synthetic Danbooru2019-style metadata (``tags`` as a list of ``{id, name, category}``
with string values, ~30 tags and ~1.3 KB a line, like the real dump) to a temp folder, then times, in one
run and on the same file:

- ``ours``: :func:`pokedata.fetch.dump.scan_file` (byte-level pre-check, then exact tag matching on the
  lines that can match);
- ``anchor``: the naive scan: ``json.loads`` every line, then the same exact-match filter.

for a selective query (a character tag on ~1% of posts), a catalog-sized one (799 tags OR-ed, as
``--catalog`` does), a rating-only one (the pre-check reads the rating bytes) and an exclude-only one (the
worst case: nearly every line matches, so nearly every line is parsed). Prints lines/s of each and ours/anchor as a ratio, plus
the peak Python heap of our scan (it streams: the peak does not grow with the file).

    python bench/dump_scan.py            # 1,000,000 lines (~1.3 GB of temp files, removed afterwards)
    python bench/dump_scan.py --quick    # 100,000 lines
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokedata.fetch.dump import ScanStats, TagFilter, parse_record, scan_file  # noqa: E402

GENERAL = [f"general_tag_{i}" for i in range(3000)]
CHARACTERS = [f"character_{i}" for i in range(400)] + ["pikachu_(cosplay)"]
RARE = "pikachu"  # on ~1% of the posts
# A catalog-sized include_or (``--catalog`` over a dump): 799 tags, 40 of them common characters.
CATALOG = frozenset([RARE] + [f"character_{i}" for i in range(40)] + [f"absent_tag_{i}" for i in range(758)])


def write_metadata(path: Path, n: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    size = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            chars = rng.sample(CHARACTERS, 2)
            if rng.random() < 0.01:
                chars[0] = RARE
            tags = [
                {"id": str(rng.randrange(10**6)), "name": t, "category": "0"} for t in rng.sample(GENERAL, 28)
            ]
            tags += [{"id": str(rng.randrange(10**6)), "name": c, "category": "4"} for c in chars]
            rec = {
                "id": str(i + 1), "created_at": "2019-01-01 00:00:00.00000 UTC", "uploader_id": "1",
                "score": str(rng.randrange(100)), "source": f"https://example.invalid/{i}", "md5": f"{i:032x}",
                "last_commented_at": "1970-01-01 00:00:00 UTC", "rating": rng.choice("sqe"),
                "image_width": "800", "image_height": "600", "is_note_locked": False, "file_ext": "jpg",
                "last_noted_at": "1970-01-01 00:00:00 UTC", "is_rating_locked": False, "parent_id": "0",
                "has_children": False, "approver_id": "0", "file_size": "123456", "is_status_locked": False,
                "up_score": "10", "down_score": "0", "is_pending": False, "is_flagged": False,
                "is_deleted": False, "tags": tags, "pools": [], "favs": ["1", "2", "3"], "is_banned": False,
                "pixiv_id": "0",
            }  # fmt: skip
            line = json.dumps(rec) + "\n"
            size += len(line)
            fh.write(line)
    return size


def naive_scan(path: Path, flt: TagFilter) -> int:
    """The anchor: parse every line, then filter exactly (what a straightforward scanner does)."""
    matched = 0
    with open(path, "rb") as fh:
        for line in fh:
            post = parse_record(json.loads(line))
            if flt.accepts(post.tags, post.rating):
                matched += 1
    return matched


def ours_scan(path: Path, flt: TagFilter) -> int:
    return sum(1 for _ in scan_file(path, flt, ScanStats()))


def timed(fn, *args) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100,000 lines instead of 1,000,000")
    ap.add_argument("--lines", type=int, default=None, help="number of metadata lines")
    args = ap.parse_args()
    n = args.lines or (100_000 if args.quick else 1_000_000)
    tmp = Path(tempfile.mkdtemp(prefix="poke-dump-bench-"))
    try:
        path = tmp / "2019000000000000.json"
        t0 = time.perf_counter()
        size = write_metadata(path, n)
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        print(f"wrote {n:,} lines ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s\n")
        cases = {
            f"include_and={{{RARE}}} (~1% match)": TagFilter(include_and=frozenset({RARE})),
            "include_or=799 catalog tags (~20% match)": TagFilter(include_or=CATALOG),
            "rating=s only (~1/3 match)": TagFilter(ratings=frozenset({"s"})),
            "exclude_or only (every line parsed)": TagFilter(exclude_or=frozenset({"general_tag_7"})),
        }
        print(
            f"{'filter':40s} {'ours lines/s':>14s} {'anchor lines/s':>15s} {'ours/anchor':>12s} {'matches':>9s}"
        )
        for label, flt in cases.items():
            t_ours, m_ours = timed(ours_scan, path, flt)
            t_naive, m_naive = timed(naive_scan, path, flt)
            assert m_ours == m_naive, (m_ours, m_naive)
            print(
                f"{label:40s} {n / t_ours:14,.0f} {n / t_naive:15,.0f} {t_naive / t_ours:11.2f}x {m_ours:9,d}"
            )
            print(f"{'':42s} {t_ours:13.1f}s {t_naive:14.1f}s")
        sub = tmp / "small.json"
        write_metadata(sub, min(n, 50_000), seed=1)
        for p in (sub, path):
            tracemalloc.start()
            ours_scan(p, cases[next(iter(cases))])
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"peak Python heap of our scan over {p.stat().st_size / 1e6:.0f} MB: {peak / 1e3:.0f} KB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
