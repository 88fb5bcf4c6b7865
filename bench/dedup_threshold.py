"""Measure Hamming distances of true near duplicates vs unrelated images, per hash method.

Data: the 151 animated sprites in ../shared/data/sprites-gen1 (8,165 frames). Every frame is
flattened onto white by the clean stage's functions and saved as a q95 JPEG, exactly as ``poke clean`` stores it, then hashed the way
the dedup stage hashes (``hash_files``, fast path). Pairs measured:

- **edits**: an image and its resized (0.5x, 0.75x, 1.5x), recompressed (JPEG q 50 / 70 / 95) or
  slightly cropped (2 % / 5 % per side) copy: true duplicates, which dedup must merge;
- **frames**: consecutive frames of one animation: near duplicates of one Pokemon (merging them is
  the point of folding frames; some consecutive frames are genuinely different poses);
- **unrelated**: frames of two different Pokemon: must never merge.

For thresholds 0..20 it prints recall on edits and frames, the false-merge rate on unrelated pairs, and
the fraction of frames that have *any* frame of another Pokemon within the threshold (what a real
dataset suffers: that image would be joined to another class's group). Run:

    python bench/dedup_threshold.py [--quick] [--methods phash,dhash,whash,ahash]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SPRITES = REPO.parent / "shared" / "data" / "sprites-gen1"


def sprite_frames(limit_files: int | None = None):
    """Yield (dex, frame index, flattened RGB image) for every frame of the sprite GIFs.

    The frames come from the clean stage's own pure functions, so they are exactly what
    ``poke clean --frames all`` stores (before the JPEG encode).
    """
    from PIL import Image

    from pokedata.clean.flatten import flatten_to_rgb, iter_frames

    files = sorted(SPRITES.glob("*.gif"), key=lambda p: int(p.stem))
    if limit_files:
        files = files[:limit_files]
    for path in files:
        with Image.open(path) as im:
            for i, frame in iter_frames(im, "all"):
                yield int(path.stem), i, flatten_to_rgb(frame)


def edits(im):
    """(name, edited copy) pairs: resized, recompressed, cropped, and one combination."""
    from PIL import Image

    def jpeg(x, q):
        buf = io.BytesIO()
        x.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        return Image.open(buf).convert("RGB")

    def scale(x, f):
        return x.resize((max(8, round(x.width * f)), max(8, round(x.height * f))), Image.Resampling.BICUBIC)

    def crop(x, f):
        dx, dy = round(x.width * f), round(x.height * f)
        return x.crop((dx, dy, x.width - dx, x.height - dy))

    return [
        ("resize 0.5x", scale(im, 0.5)),
        ("resize 0.75x", scale(im, 0.75)),
        ("resize 1.5x", scale(im, 1.5)),
        ("jpeg q50", jpeg(im, 50)),
        ("jpeg q70", jpeg(im, 70)),
        ("jpeg q95", jpeg(im, 95)),
        ("crop 2%", crop(im, 0.02)),
        ("crop 5%", crop(im, 0.05)),
        ("0.75x + q70 + crop 2%", jpeg(crop(scale(im, 0.75), 0.02), 70)),
    ]


def build(tmp: Path, quick: bool):
    """Write the frames and edited copies as q95 JPEGs; returns the file list and the pair index."""
    frames = list(sprite_frames(limit_files=40 if quick else None))
    paths, dex, frame_no = [], [], []
    for n, (d, i, im) in enumerate(frames):
        p = tmp / f"f{n:05d}.jpg"
        im.save(p, quality=95)
        paths.append(p)
        dex.append(d)
        frame_no.append(i)
    dex_a = np.asarray(dex)
    frame_pairs = np.array(
        [(n, n + 1) for n in range(len(frames) - 1) if dex[n] == dex[n + 1]], dtype=np.int64
    ).reshape(-1, 2)
    # edits of every 10th frame (first frames always)
    edit_pairs, edit_kind = [], []
    for n, (_, i, im) in enumerate(frames):
        if i % 10:
            continue
        for name, copy in edits(im):
            p = tmp / f"e{len(paths):06d}.jpg"
            copy.save(p, quality=95)
            edit_pairs.append((n, len(paths)))
            edit_kind.append(name)
            paths.append(p)
    return paths, dex_a, frame_pairs, np.asarray(edit_pairs, dtype=np.int64), np.asarray(edit_kind)


def folding(h: np.ndarray, dex: np.ndarray, t: int, cross: int) -> dict:
    """What the stage does to the frames at (threshold t, cross-class threshold), --conflicts drop."""
    from pokedata.dedup.groups import group_images

    n = len(h)
    g = group_images(h, None, dex, np.arange(n), threshold=t, conflict_threshold=cross, colour_tolerance=None)
    kept = (g.survivor == np.arange(n)) & ~g.conflict  # leaders outside conflicts (structure only)
    per = np.bincount(dex[kept], minlength=int(dex.max()) + 1)[np.unique(dex)]
    return {
        "kept": int(kept.sum()),
        "classes_kept": int((per > 0).sum()),
        "classes": len(per),
        "median_per_class": float(np.median(per)),
        "conflict_frames": float(g.conflict.mean()),
    }


def measure(methods: list[str], quick: bool) -> dict:
    from pokedata.dedup.hashing import hamming, hash_files
    from pokedata.dedup.search import pairs_within

    rng = np.random.default_rng(0)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths, dex, frame_pairs, edit_pairs, edit_kind = build(Path(tmp), quick)
        n_frames = len(dex)
        print(
            f"{n_frames} frames of {len(set(dex.tolist()))} sprites, {len(edit_pairs)} edited copies "
            f"({time.perf_counter() - t0:.1f} s to write)"
        )
        a = rng.integers(0, n_frames, 200_000)
        b = rng.integers(0, n_frames, 200_000)
        unrelated = np.stack([a, b], axis=1)[dex[a] != dex[b]]
        for method in methods:
            res = hash_files(paths, method)
            h = res.values
            d_edit = hamming(h[edit_pairs[:, 0]], h[edit_pairs[:, 1]])
            d_frame = hamming(h[frame_pairs[:, 0]], h[frame_pairs[:, 1]])
            d_unrel = hamming(h[unrelated[:, 0]], h[unrelated[:, 1]])
            rows = []
            frames_h = h[:n_frames]
            for t in range(0, 21):
                pairs = pairs_within(frames_h, t)
                cross = pairs[dex[pairs[:, 0]] != dex[pairs[:, 1]]]
                touched = np.zeros(n_frames, dtype=bool)
                touched[cross.ravel()] = True
                rows.append(
                    {
                        "t": t,
                        "edit_recall": float((d_edit <= t).mean()),
                        "frame_recall": float((d_frame <= t).mean()),
                        "unrelated_fmr": float((d_unrel <= t).mean()),
                        "frames_with_cross_match": float(touched.mean()),
                    }
                )
            stage = []
            for t in (4, 6, 8, 10, 12, 14):
                for cross in sorted({0, 2, 4, 6, t}):
                    if cross <= t:
                        stage.append({"t": t, "cross": cross, **folding(frames_h, dex, t, cross)})
            per_edit = {k: int(np.percentile(d_edit[edit_kind == k], 95)) for k in dict.fromkeys(edit_kind)}
            out[method] = {
                "rows": rows,
                "edit_pct": np.percentile(d_edit, [50, 90, 95, 99, 100]).tolist(),
                "frame_pct": np.percentile(d_frame, [10, 50, 90]).tolist(),
                "unrel_pct": np.percentile(d_unrel, [0.1, 1, 5, 50]).tolist(),
                "per_edit_p95": per_edit,
                "stage": stage,
                "n_frames": n_frames,
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 sprites instead of 151")
    ap.add_argument("--methods", default="phash,dhash,whash,ahash", help="comma-separated hash methods")
    args = ap.parse_args(argv)
    if not SPRITES.is_dir():
        print(f"{SPRITES} is absent: nothing to measure")
        return 1
    from pokedata.dedup.hashing import HASHERS

    results = measure(args.methods.split(","), args.quick)
    for method, r in results.items():
        default = HASHERS[method].default_threshold
        print(f"\n## {method} (default threshold {default})")
        print("edit distance p50/p90/p95/p99/max:", " / ".join(f"{v:.0f}" for v in r["edit_pct"]))
        print("edit p95 by kind:", ", ".join(f"{k} {v}" for k, v in r["per_edit_p95"].items()))
        print("consecutive-frame distance p10/p50/p90:", " / ".join(f"{v:.0f}" for v in r["frame_pct"]))
        print("unrelated distance p0.1/p1/p5/p50:", " / ".join(f"{v:.0f}" for v in r["unrel_pct"]))
        print(
            "| t | edit recall | frame recall | unrelated pairs merged | frames with a cross-Pokemon match |"
        )
        print("|---|---|---|---|---|")
        for row in r["rows"]:
            mark = " **default**" if row["t"] == default else ""
            print(
                f"| {row['t']}{mark} | {row['edit_recall']:.3f} | {row['frame_recall']:.3f} | "
                f"{row['unrelated_fmr']:.5f} | {row['frames_with_cross_match']:.4f} |"
            )
        print(f"\nstage on all {r['n_frames']} frames (--conflicts drop): threshold x cross-class threshold")
        print(
            "| t | cross | frames kept | Pokemon with a frame | median kept per Pokemon | frames dropped as conflicts |"
        )
        print("|---|---|---|---|---|---|")
        for row in r["stage"]:
            mark = (
                " **default**"
                if (row["t"], row["cross"]) == (default, HASHERS[method].default_conflict_threshold)
                else ""
            )
            print(
                f"| {row['t']}{mark} | {row['cross']} | {row['kept']} | {row['classes_kept']}/{row['classes']} | "
                f"{row['median_per_class']:.0f} | {row['conflict_frames']:.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
