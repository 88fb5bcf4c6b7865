"""Dedup at scale: ours vs imagededup, side by side in one run, as ratios.

(a) hashing throughput (phash) on the same files with the same number of processes:
    - the 8,165 sprite frames of ../shared/data/sprites-gen1, flattened onto white and saved as q95
      JPEGs (what ``poke clean`` writes); also ours end to end from the GIFs: the clean stage of
      ``poke clean --dedup`` (``run_clean`` with phash + colour computed in its workers, rows recorded);
    - 2,000 generated large JPEGs of 1-3 MP (400 with --quick; cached in bench/out/dedup-jpegs), hashed
      directly, and through the same clean stage (downscaled to <= 1024 px, q95, hashed).
    imagededup: ``PHash().encode_images(image_dir, num_enc_workers=N)`` on the JPEGs (it cleans nothing).
    Both sides time the call alone: worker pool start-up counted, interpreter start and imports not.
(b) all pairs within Hamming distance k among synthetic 64-bit hashes with planted near pairs: ours
    at 100k hashes (k = 4 and 10) and 1M (k = 2 and 4); imagededup's ``find_duplicates`` (bktree and
    brute_force_cython) where it finishes in minutes (1,000-6,000 hashes: both are O(n^2) over hex
    strings here), side by side with ours on the same hashes, then extrapolated (n^2) to 100k.
(c) the whole grouping step (search + bounded groups + per-pair conflicts, ``group_images``) at
    100k hashes (k = 10) and 1M (k = 4), against the scale goals (15 s and 10 s on 2 cores).

imagededup runs in a throwaway venv, bench/.venv-imagededup (created and filled by this script with
``--system-site-packages``, so the torch already installed is reused). Run:

    python bench/dedup.py            # full (~10 min on 2 cores)
    python bench/dedup.py --quick    # smaller sets (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
VENV = HERE / ".venv-imagededup"
OUT = HERE / "out"
IDD_TIMEOUT = 240  # seconds per imagededup call before it is reported as "> limit"

_IDD_ENCODE = """
import json, resource, sys, time
from imagededup.methods import PHash
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
t, c = time.perf_counter(), cpu()
enc = PHash(verbose=False).encode_images(image_dir=sys.argv[1], num_enc_workers=int(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": cpu() - c, "n": len(enc)}))
"""

_IDD_SEARCH = """
import json, sys, time
import numpy as np
from imagededup.methods import PHash
h = np.load(sys.argv[1]).view(np.uint64)
k, method, workers = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
enc = {str(i): f"{int(v):016x}" for i, v in enumerate(h)}
t = time.perf_counter()
dups = PHash(verbose=False).find_duplicates(encoding_map=enc, max_distance_threshold=k, search_method=method,
                                            num_dist_workers=workers)
sec = time.perf_counter() - t
print(json.dumps({"seconds": sec, "pairs": sum(len(v) for v in dups.values()) // 2}))
"""


# -- imagededup venv ------------------------------------------------------------------------------------


def imagededup_python() -> Path | None:
    """The venv's python with imagededup importable, creating the venv on first use; None if impossible."""
    py = VENV / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", "import imagededup"], capture_output=True).returncode == 0:
        return py
    try:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "imagededup"], check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"imagededup could not be installed into {VENV}: {exc}")
        return None
    return py


def run_idd(py: Path | None, script: str, *args: str) -> dict | None:
    if py is None:
        return None
    try:
        res = subprocess.run(
            [str(py), "-c", script, *args], capture_output=True, text=True, timeout=IDD_TIMEOUT, check=True
        )
    except subprocess.TimeoutExpired:
        return {"seconds": float("inf"), "timeout": True}
    except subprocess.CalledProcessError as exc:
        print(f"imagededup failed: {exc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt_ratio(ours: float, theirs: float | None) -> str:
    if theirs is None:
        return "n/a"
    if theirs == float("inf"):
        return f"> {IDD_TIMEOUT / ours:.0f}x (imagededup over {IDD_TIMEOUT} s)"
    return f"{theirs / ours:.1f}x"


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (both sides' pools are joined when done)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def clocked(fn, *args, **kw):
    """(fn's result, wall seconds, CPU seconds of this process and its children)."""
    t, c = time.perf_counter(), cpu_seconds()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t, cpu_seconds() - c


def hash_row(name: str, n: int, wall: float, cpu: float, theirs: dict | None) -> None:
    """A throughput row with wall and CPU time: on a loaded machine the wall-clock ratio depends on how
    much of the cores each side got; CPU-ms per image is the work done, whatever the load."""
    if theirs is None or theirs.get("timeout"):
        print(f"| {name} | {n:,} | {wall:.2f} s, {1000 * cpu / n:.2f} CPU-ms/img | n/a | n/a | n/a |")
        return
    tw, tc = theirs["seconds"], theirs["cpu"]
    print(
        f"| {name} | {n:,} | {wall:.2f} s ({n / wall:.0f} img/s), {1000 * cpu / n:.2f} CPU-ms/img "
        f"| {tw:.2f} s ({n / tw:.0f} img/s), {1000 * tc / n:.2f} CPU-ms/img "
        f"| **{tw / wall:.2f}x** | **{tc / cpu:.2f}x** |"
    )


# -- (a) hashing throughput -----------------------------------------------------------------------------


def write_sprite_frames(dest: Path, limit: int | None) -> int:
    from dedup_threshold import sprite_frames

    n = 0
    for dex, i, im in sprite_frames(limit_files=limit):
        im.save(dest / f"{dex:03d}-{i:03d}.jpg", quality=95)
        n += 1
    return n


def raw_dataset(files: list[Path], root: Path) -> None:
    """A dataset directory whose ledger holds ``files`` as fetched items (hard links, one class)."""
    import hashlib
    import shutil

    from pokedata.ledger import Candidate, Ledger
    from pokedata.store import DatasetDir

    ds = DatasetDir.at(root).create()
    with Ledger(ds.ledger_path) as ledger:
        ledger.plan([Candidate("folder", f"{i:05d}", "bench") for i in range(len(files))])
        for i, f in enumerate(files):
            (item,) = ledger.find("folder", f"{i:05d}", "bench")
            dest = ds.raw_path("bench", f"{i:05d}", f.suffix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, dest)
            except OSError:  # another file system
                shutil.copyfile(f, dest)
            data = f.read_bytes()
            ledger.mark_done(
                item.id, path=ds.rel(dest), sha256=hashlib.sha256(data).hexdigest(), md5="",
                nbytes=len(data), width=0, height=0,
            )  # fmt: skip


def clean_and_hash(files: list[Path], frames: str, min_side: int, workers: int) -> tuple[int, float, float]:
    """The clean stage of ``poke clean --dedup`` as it runs: ``run_clean`` on a dataset holding ``files``
    (the worker pool started once, chunks planned by weight, every frame flattened, resized, encoded,
    checked, published, phash + colour signature computed in the workers, rows and hashes recorded in
    the ledger). Timed from the call to the summary: the pool's start-up is in, the interpreter's and
    the imports are not (the same as imagededup's side, timed around ``encode_images``)."""
    from pokedata.clean import CleanConfig, run_clean
    from pokedata.clean.worker import Settings

    Settings()  # imports done before the clock starts, as on imagededup's side
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        raw_dataset(files, root)
        cfg = CleanConfig(
            data=root, frames=frames, min_side=min_side, workers=workers, progress=False,
            hashes=("phash", "colour"),
        )  # fmt: skip
        summary, wall, cpu = clocked(run_clean, cfg)
    assert summary.images and not summary.quarantined
    return summary.images, wall, cpu


def _large_jpeg(args: tuple[Path, int]) -> None:
    from PIL import Image

    path, seed = args
    rng = np.random.default_rng(seed)
    mp = rng.uniform(1.0, 3.0) * 1e6
    aspect = rng.uniform(0.6, 1.6)
    w, h = int((mp * aspect) ** 0.5), int((mp / aspect) ** 0.5)
    base = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(
        (w, h), Image.Resampling.BICUBIC
    )
    noise = rng.integers(-12, 13, (h, w, 1), dtype=np.int16)
    arr = np.clip(np.asarray(base, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    tmp = path.with_suffix(".part")
    Image.fromarray(arr).save(tmp, format="JPEG", quality=90)
    os.replace(tmp, path)


def large_jpegs(n: int, workers: int) -> Path:
    d = OUT / "dedup-jpegs"
    d.mkdir(parents=True, exist_ok=True)
    todo = [(d / f"{i:05d}.jpg", i) for i in range(n) if not (d / f"{i:05d}.jpg").exists()]
    if todo:
        print(f"generating {len(todo)} large JPEGs into {d} (kept for later runs) ...", flush=True)
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_large_jpeg, todo, chunksize=8))
    sub = OUT / f"dedup-jpegs-{n}"  # a folder holding exactly n files (imagededup hashes a whole dir)
    if not sub.is_dir() or len(list(sub.iterdir())) != n:
        sub.mkdir(exist_ok=True)
        for p in sub.iterdir():
            p.unlink()
        for i in range(n):
            os.link(d / f"{i:05d}.jpg", sub / f"{i:05d}.jpg")
    return sub


def bench_hashing(py: Path | None, quick: bool, workers: int) -> None:
    from dedup_threshold import SPRITES

    from pokedata.dedup.hashing import hash_files

    print(f"\n### (a) phash throughput, {workers} processes each\n")
    print("| files | n | ours | imagededup encode_images | speed-up (wall) | speed-up (CPU) |")
    print("|---|---|---|---|---|---|")
    if SPRITES.is_dir():
        limit = 40 if quick else None
        with tempfile.TemporaryDirectory() as tmp:
            n = write_sprite_frames(Path(tmp), limit)
            paths = sorted(Path(tmp).iterdir())
            hash_files(paths[:64], "phash", workers=1)  # warm imports
            res, wall, cpu = clocked(hash_files, paths, "phash", workers=workers)
            assert res.ok.all()
            theirs = run_idd(py, _IDD_ENCODE, tmp, str(workers))
            hash_row("sprite frames (q95 JPEG, 31-128 px), our hashing alone", n, wall, cpu, theirs)
            gifs = sorted(SPRITES.glob("*.gif"), key=lambda p: int(p.stem))[:limit]
            n_gif, wall, cpu = clean_and_hash(gifs, "all", 16, workers)
            assert n_gif == n  # the same frames on both sides
            hash_row(
                "  same from the GIFs: `clean --dedup`'s clean stage (+ phash + colour)", n, wall, cpu, theirs
            )
    else:
        print(f"| sprite frames | - | {SPRITES} absent | | | |")
    n = 400 if quick else 2000  # multiples of 200: imagededup's chunks of 100 fall evenly on 2 workers
    folder = large_jpegs(n, workers)
    paths = sorted(folder.iterdir())
    res, wall, cpu = clocked(hash_files, paths, "phash", workers=workers)
    assert res.ok.all()
    theirs = run_idd(py, _IDD_ENCODE, str(folder), str(workers))
    hash_row("generated JPEGs, 1-3 MP, our hashing alone", n, wall, cpu, theirs)
    n_clean, wall, cpu = clean_and_hash(paths, "first", 64, workers)
    hash_row("  same: `clean --dedup`'s clean stage (<= 1024 px q95 + phash + colour)", n, wall, cpu, theirs)
    if quick:  # what the draft decode buys (left out of the full run to keep it under 10 minutes)
        _, wall, cpu = clocked(hash_files, paths, "phash", workers=workers, fast=False)
        hash_row("  same, our hashing without the JPEG draft decode (fast=False)", n, wall, cpu, theirs)


# -- (b) search -------------------------------------------------------------------------------------------


def planted_hashes(n: int, k: int, seed: int = 0) -> np.ndarray:
    """n random hashes, 10 % of them replaced by copies of others with 0..k bits flipped."""
    return _plant(n, k, seed)[0]


def _plant(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, source rows, planted rows) of :func:`planted_hashes`."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    m = n // 10
    src, dst = rng.integers(0, n, m), rng.choice(n, m, replace=False)
    flips = np.zeros(m, dtype=np.uint64)
    nbits = rng.integers(0, k + 1, m)
    for b in range(k):
        bit = rng.integers(0, 64, m).astype(np.uint64)
        flips ^= np.where(b < nbits, np.left_shift(np.uint64(1), bit), np.uint64(0))
    h[dst] = h[src] ^ flips
    return h, src, dst


def bench_grouping(quick: bool) -> None:
    """The whole grouping step (pair search + bounded groups + per-pair conflicts) at the scale goals."""
    from pokedata.dedup.groups import group_images
    from pokedata.dedup.search import pairs_within

    print("\n### (c) bounded groups end to end: pair search + leader clustering + per-pair conflicts\n")
    print("| n | k | pair search alone | group_images (all of it) | kept | goal |")
    print("|---|---|---|---|---|---|")
    cases = [(100_000, 10, 15.0), (300_000 if quick else 1_000_000, 4, 10.0)]
    for n, k, goal in cases:
        h, src, dst = _plant(n, k, seed=200 + k)
        rng = np.random.default_rng(k)
        cls = rng.integers(0, 800, n)
        cls[dst] = cls[src]  # planted copies in their source's class; 1 in 20 moved: label conflicts
        moved = dst[::20]
        cls[moved] = (cls[moved] + 1) % 800
        colours = rng.integers(0, 2**63, n).astype(np.uint64)
        colours[dst] = colours[src]
        search, _ = _time(pairs_within, h, k)
        options = {
            "threshold": k,
            "conflict_threshold": min(4, k),
            "colour_tolerance": 32,
            "conflicts": "drop",
        }
        sec, g = _time(partial(group_images, **options), h, colours, cls, np.arange(n))
        kept = int(((g.survivor == np.arange(n)) & ~g.conflict).sum())
        ok = "met" if sec < goal else "missed"
        print(f"| {n:,} | {k} | {search:.2f} s | **{sec:.2f} s** | {kept:,} | < {goal:.0f} s: {ok} |")


def bench_search(py: Path | None, quick: bool, workers: int) -> None:
    from pokedata.dedup.search import pairs_within, plan_search

    print(
        f"\n### (b) all pairs within k bits, synthetic hashes with 10 % planted near copies "
        f"(imagededup: {workers} workers)\n"
    )
    print(
        "| n | k | ours | pairs | imagededup bktree | imagededup brute_force_cython | speed-up (bktree / cython) |"
    )
    print("|---|---|---|---|---|---|---|")
    # imagededup's searches are O(n^2) in Python / Cython over hex strings: ~2 s (cython) and ~45 s (bktree)
    # at 2,000 hashes here, so 100k is out of reach in one run; measure where it finishes, extrapolate.
    cases = [(1000, 4), (1000, 10)] if quick else [(2000, 4), (1000, 10), (6000, 10)]
    largest: dict[tuple[str, int], tuple[int, float]] = {}
    for n, k in cases:
        h = planted_hashes(n, k, seed=k)
        ours, pairs = _time(pairs_within, h, k)
        cells, secs = [], []
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "h.npy"
            np.save(f, h.view(np.int64))
            for method in ("bktree", "brute_force_cython"):
                if method == "bktree" and (n > 2000 or (k > 4 and (quick or n > 1000))):
                    cells.append("not run (minutes)")
                    secs.append(None)
                    continue
                r = run_idd(py, _IDD_SEARCH, str(f), str(k), method, str(workers))
                secs.append(None if r is None else r["seconds"])
                if r is None:
                    cells.append("n/a")
                elif r.get("timeout"):
                    cells.append(f"> {IDD_TIMEOUT} s")
                else:
                    largest[(method, k)] = (n, r["seconds"])
                    agree = "same pairs" if r["pairs"] == len(pairs) else f"{r['pairs']:,} pairs (!)"
                    cells.append(f"{r['seconds']:.2f} s, {agree}")
        ratios = " / ".join(fmt_ratio(ours, t) for t in secs)
        print(f"| {n:,} | {k} | {ours:.3f} s | {len(pairs):,} | {cells[0]} | {cells[1]} | {ratios} |")
    for n, k in ((100_000, 4), (100_000, 10)):
        h = planted_hashes(n, k, seed=k)
        ours, pairs = _time(pairs_within, h, k)
        extra = []
        for (method, k0), (n0, t0) in largest.items():
            if k0 != k:
                continue
            est = t0 * (n / n0) ** 2
            extra.append(f"{method} ~{est / 3600:.1f} h (extrapolated n^2 from {n0:,}: {est / ours:,.0f}x)")
        print(f"| {n:,} | {k} | {ours:.2f} s | {len(pairs):,} | {'; '.join(extra) or 'n/a'} | | |")
    n_big = 300_000 if quick else 1_000_000
    for k in (2, 4):
        h = planted_hashes(n_big, k, seed=100 + k)
        ours, pairs = _time(pairs_within, h, k)
        plan = plan_search(n_big, k)
        print(
            f"| {n_big:,} | {k} | {ours:.2f} s | {len(pairs):,} | ours alone ({len(plan.bands)} bands, "
            f"probe radius {plan.radius}) | | |"
        )


def _time(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="smaller sets: 40 sprites, 300 JPEGs, 20k / 300k hashes"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for both sides")
    ap.add_argument("--skip-hashing", action="store_true", help="only the search benchmark (b)")
    ap.add_argument("--skip-search", action="store_true", help="only the hashing benchmark (a)")
    args = ap.parse_args(argv)
    import platform

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )
    py = imagededup_python()
    if py is not None:
        v = subprocess.run(
            [py, "-c", "import imagededup; print(imagededup.__version__)"], capture_output=True, text=True
        )
        print(f"imagededup {v.stdout.strip()} from {VENV}")
    if not args.skip_hashing:
        bench_hashing(py, args.quick, args.workers)
    if not args.skip_search:
        bench_search(py, args.quick, args.workers)
        bench_grouping(args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
