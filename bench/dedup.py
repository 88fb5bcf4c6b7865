"""Dedup at scale: ours vs imagededup, side by side in one run, as ratios.

(a) hashing throughput (phash) on the same files with the same number of processes:
    - the 8,165 sprite frames of ../shared/data/sprites-gen1, flattened onto white and saved as q95
      JPEGs (what ``poke clean`` writes); also ours end to end from the GIFs: the clean stage's worker
      (every frame flattened, encoded, published) then our hashing of its output;
    - ~2,000 generated large JPEGs of 1-3 MP (cached in bench/out/dedup-jpegs), hashed directly, and
      cleaned (downscaled to <= 1024 px, re-encoded) + hashed.
    imagededup: ``PHash().encode_images(image_dir, num_enc_workers=N)`` on the JPEGs (it cleans nothing).
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
import json, sys, time
from imagededup.methods import PHash
t = time.perf_counter()
enc = PHash(verbose=False).encode_images(image_dir=sys.argv[1], num_enc_workers=int(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t, "n": len(enc)}))
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


def row(name: str, n: int, ours: float, theirs: dict | None, unit: str = "img/s") -> None:
    t = None if theirs is None else theirs["seconds"]
    theirs_s = (
        "n/a" if t is None else ("timeout" if t == float("inf") else f"{t:8.2f} s ({n / t:8.0f} {unit})")
    )
    print(f"| {name} | {n:,} | {ours:.2f} s ({n / ours:.0f} {unit}) | {theirs_s} | {fmt_ratio(ours, t)} |")


# -- (a) hashing throughput -----------------------------------------------------------------------------


def write_sprite_frames(dest: Path, limit: int | None) -> int:
    from dedup_threshold import sprite_frames

    n = 0
    for dex, i, im in sprite_frames(limit_files=limit):
        im.save(dest / f"{dex:03d}-{i:03d}.jpg", quality=95)
        n += 1
    return n


def clean_then_hash(
    files: list[Path], frames: str, min_side: int, workers: int, *, in_clean: bool = False
) -> tuple[int, float]:
    """The real pipeline: the clean stage's worker (flatten, resize, encode, publish) then our hashing.

    ``in_clean``: what ``poke clean --dedup`` does now: the workers hash each written JPG from the
    pixels they decoded anyway (phash and the colour signature), and there is no hashing pass.
    """
    from pokedata.clean.flatten import parse_frames
    from pokedata.clean.worker import Settings, Task, clean_chunk
    from pokedata.dedup.hashing import hash_files

    methods = ("phash", "colour") if in_clean else ()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(min_side=min_side, frames=parse_frames(frames))
        tasks = [Task(i, f, root, "bench", f"{i:05d}", settings, methods) for i, f in enumerate(files)]
        chunks = [tasks[i : i + 16] for i in range(0, len(tasks), 16)]
        t = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            results = [r for chunk in pool.map(clean_chunk, chunks) for r in chunk]
        outputs = [f for r in results for f in r.frames if f.status == "done"]
        if in_clean:
            ok = all(len(f.hashes) == len(methods) for f in outputs)
        else:  # what `poke clean --dedup` did before: a phash pass, then a colour-signature pass
            paths = [f.path for f in outputs]
            ok = all(hash_files(paths, m, workers=workers).ok.all() for m in ("phash", "colour"))
        seconds = time.perf_counter() - t
    assert ok and outputs
    return len(outputs), seconds


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
    print("| files | n | ours | imagededup encode_images | speed-up |")
    print("|---|---|---|---|---|")
    if SPRITES.is_dir():
        limit = 40 if quick else None
        with tempfile.TemporaryDirectory() as tmp:
            n = write_sprite_frames(Path(tmp), limit)
            paths = sorted(Path(tmp).iterdir())
            hash_files(paths[:64], "phash", workers=1)  # warm imports
            t = time.perf_counter()
            res = hash_files(paths, "phash", workers=workers)
            ours = time.perf_counter() - t
            assert res.ok.all()
            theirs = run_idd(py, _IDD_ENCODE, tmp, str(workers))
            row("sprite frames (q95 JPEG, 31-128 px)", n, ours, theirs)
            gifs = sorted(SPRITES.glob("*.gif"), key=lambda p: int(p.stem))[:limit]
            n_gif, t_gif = clean_then_hash(gifs, "all", 16, workers)
            row(
                "  same from the GIFs: ours clean (every frame), then phash + colour passes",
                n_gif,
                t_gif,
                theirs,
            )
            n_gif, t_gif = clean_then_hash(gifs, "all", 16, workers, in_clean=True)
            row("  same from the GIFs: ours clean + phash + colour in the workers", n_gif, t_gif, theirs)
    else:
        print(f"| sprite frames | - | {SPRITES} absent | | |")
    n = 300 if quick else 2000
    folder = large_jpegs(n, workers)
    paths = sorted(folder.iterdir())
    t = time.perf_counter()
    res = hash_files(paths, "phash", workers=workers)
    ours = time.perf_counter() - t
    assert res.ok.all()
    theirs = run_idd(py, _IDD_ENCODE, str(folder), str(workers))
    row("generated JPEGs, 1-3 MP", n, ours, theirs)
    # the clean stage (full decode, resize, q95 encode, publish) dominates: time it on 300 of the files
    sub = large_jpegs(300, workers) if n > 300 else folder
    n_clean, t_clean = clean_then_hash(sorted(sub.iterdir()), "first", 64, workers)
    theirs_sub = theirs if sub == folder else run_idd(py, _IDD_ENCODE, str(sub), str(workers))
    row(
        "  300 of them: ours clean (<= 1024 px q95), then phash + colour passes", n_clean, t_clean, theirs_sub
    )
    n_clean, t_clean = clean_then_hash(sorted(sub.iterdir()), "first", 64, workers, in_clean=True)
    row("  300 of them: ours clean + phash + colour in the workers", n_clean, t_clean, theirs_sub)
    if quick:  # what the draft decode buys (left out of the full run to keep it under 10 minutes)
        t = time.perf_counter()
        hash_files(paths, "phash", workers=workers, fast=False)
        row("  same, ours without the JPEG draft decode (fast=False)", n, time.perf_counter() - t, theirs)


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
