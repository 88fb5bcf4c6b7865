"""A labelled yardstick for dedup: precision and recall of pair decisions on real sprites, and what a
run keeps. Ours (this branch) vs the code at ``main`` (connected components, grayscale only) vs
imagededup's ``find_duplicates`` / ``find_duplicates_to_remove`` (pHash, the same threshold).

Data: the 151 animated GIFs of ../shared/data/sprites-gen1. Every frame is flattened onto white by the
clean stage's own functions and stored as a q95 JPEG, as ``poke clean --frames all`` does; each
Pokemon is one class. Added to the same image set:

- a **shiny** animation per Pokemon: every frame with the GIF palette hue-rotated by 120 degrees (same
  class: a recolour of the same drawing, which a generator should see as another image);
- **edited copies** of every 10th frame: re-encoded (q95 again), resized 0.5x / 0.75x / 1.5x,
  recompressed (q50 / q70), cropped 2 % / 4 % per side;
- **palette swaps** of frame 0: hue rotated 60 / 180 degrees, and the palette permuted (each used
  colour replaced by the next one in the palette order).

Labelled pairs: duplicates = each edit with its frame; consecutive frames of one animation that
differ in at most 2 % of their pixels. Distinct = far-apart poses (frame 0 and the frame of its
animation differing most from it, when >= 25 % of pixels differ); each palette swap and each shiny
frame with its original; frame 0 of every two different Pokemon.

Reported per method: recall (duplicates judged duplicates) and the share kept apart (distinct judged
distinct) by kind, precision over all pairs; the share of dropped images with no kept image of their
class within the threshold; kept frames per animation (normal and shiny). "Judged duplicates" means
what the method acts on: for ``main``, the same connected component; for ours, the same survivor
(the pair test alone is shown too); for imagededup, ``find_duplicates`` listing the pair. Run:

    python bench/dedup_quality.py [--quick] [--threshold 10] [--colour-tolerance 44]
"""

from __future__ import annotations

import argparse
import colorsys
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
SPRITES = REPO.parent / "shared" / "data" / "sprites-gen1"

_IDD = """
import json, sys
from imagededup.methods import PHash
ph = PHash(verbose=False)
enc = ph.encode_images(image_dir=sys.argv[1], num_enc_workers=2)
t = int(sys.argv[2])
dups = ph.find_duplicates(encoding_map=enc, max_distance_threshold=t, search_method="brute_force_cython")
remove = ph.find_duplicates_to_remove(encoding_map=enc, max_distance_threshold=t)
print(json.dumps({"dups": dups, "remove": sorted(remove)}))
"""


@dataclass
class Data:
    paths: list[Path] = field(default_factory=list)
    cls: list[int] = field(default_factory=list)  # dex number
    anim: list[str] = field(default_factory=list)  # normal | shiny | edit | palette
    frame: list[int] = field(default_factory=list)
    area: list[int] = field(default_factory=list)
    sha: list[str] = field(default_factory=list)
    pairs: list[tuple[int, int, str, str]] = field(default_factory=list)  # (i, j, dup|distinct, kind)

    def add(self, root: Path, im, cls: int, anim: str, frame: int) -> int:
        from pokedata.clean.worker import pixel_sha256

        i = len(self.paths)
        p = root / f"{i:06d}.jpg"
        im.save(p, quality=95)
        self.paths.append(p)
        self.cls.append(cls)
        self.anim.append(anim)
        self.frame.append(frame)
        self.area.append(im.width * im.height)
        self.sha.append(pixel_sha256(im))
        return i


def _jpeg(im, q):
    from PIL import Image

    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=q)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _edits(im):
    from PIL import Image

    def scale(f):
        return im.resize(
            (max(8, round(im.width * f)), max(8, round(im.height * f))), Image.Resampling.BICUBIC
        )

    def crop(f):
        dx, dy = round(im.width * f), round(im.height * f)
        return im.crop((dx, dy, im.width - dx, im.height - dy))

    return [("re-encoded q95", _jpeg(im, 95)), ("resized 0.5x", scale(0.5)), ("resized 0.75x", scale(0.75)),
            ("resized 1.5x", scale(1.5)), ("recompressed q50", _jpeg(im, 50)), ("recompressed q70", _jpeg(im, 70)),
            ("cropped 2 %", crop(0.02)), ("cropped 4 %", crop(0.04))]  # fmt: skip


def _recolour(rgba, mapping: dict[tuple[int, int, int], tuple[int, int, int]]):
    """Replace palette colours in an RGBA frame (exact matches; transparency untouched)."""
    from PIL import Image

    a = np.asarray(rgba).copy()
    rgb = a[..., :3].reshape(-1, 3)
    u, inv = np.unique(rgb, axis=0, return_inverse=True)
    new = np.array(
        [mapping.get(tuple(int(v) for v in c), tuple(int(v) for v in c)) for c in u], dtype=np.uint8
    )
    a[..., :3] = new[inv.reshape(-1)].reshape(*a.shape[:2], 3)
    return Image.fromarray(a, "RGBA")


def _palette(gif) -> list[tuple[int, int, int]]:
    """The GIF's palette colours in palette order, without the transparency entry."""
    pal = gif.getpalette() or []
    skip = gif.info.get("transparency")
    cols = [tuple(pal[i : i + 3]) for i in range(0, len(pal), 3)]
    return list(dict.fromkeys(c for k, c in enumerate(cols) if k != skip))


def hue_rotation(palette, degrees: float) -> dict:
    out = {}
    for c in palette:
        h, s, v = colorsys.rgb_to_hsv(*(x / 255 for x in c))
        out[c] = tuple(round(x * 255) for x in colorsys.hsv_to_rgb((h + degrees / 360) % 1.0, s, v))
    return out


def permutation(palette, used: set) -> dict:
    """Each used colour -> the next used colour in palette order (a cyclic palette permutation)."""
    order = [c for c in palette if c in used]
    return {c: order[(k + 1) % len(order)] for k, c in enumerate(order)} if len(order) > 1 else {}


def _changed(a, b) -> float:
    """Share of pixels whose colour differs by more than 16 in some channel (same-size frames)."""
    x, y = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
    if x.shape != y.shape:
        return 1.0
    return float((np.abs(x - y).max(axis=2) > 16).mean())


def build(root: Path, quick: bool, only: list[int] | None = None, *, copies: bool = True) -> Data:
    """The image set and labelled pairs (``copies=False``: only the animations and their shiny ones)."""
    from PIL import Image

    from pokedata.clean.flatten import flatten_to_rgb, iter_frames

    d = Data()
    files = sorted(SPRITES.glob("*.gif"), key=lambda p: int(p.stem))[: 30 if quick else None]
    if only:
        files = [f for f in files if int(f.stem) in only]
    first: dict[int, int] = {}
    for path in files:
        dex = int(path.stem)
        with Image.open(path) as gif:
            palette = _palette(gif)
            rgba = [f.copy() for _, f in iter_frames(gif, "all")]
        shiny_map = hue_rotation(palette, 120)
        flat = [flatten_to_rgb(f) for f in rgba]
        ids = [d.add(root, im, dex, "normal", k) for k, im in enumerate(flat)]
        shiny = [
            d.add(root, flatten_to_rgb(_recolour(f, shiny_map)), dex, "shiny", k) for k, f in enumerate(rgba)
        ]
        first[dex] = ids[0]
        for k in range(len(ids) - 1):
            if _changed(flat[k], flat[k + 1]) <= 0.02:
                d.pairs.append((ids[k], ids[k + 1], "dup", "consecutive near-identical frames"))
        for k in range(len(ids)):
            d.pairs.append((ids[k], shiny[k], "distinct", "shiny (palette hue +120) frame"))
        if len(flat) > 1:
            far = max(range(1, len(flat)), key=lambda k: _changed(flat[0], flat[k]))
            if _changed(flat[0], flat[far]) >= 0.25:
                d.pairs.append((ids[0], ids[far], "distinct", "far-apart poses"))
        if not copies:
            continue
        for k in range(0, len(ids), 10):
            for kind, im in _edits(flat[k]):
                d.pairs.append((ids[k], d.add(root, im, dex, "edit", k), "dup", kind))
        used = {
            tuple(int(v) for v in c) for c in np.unique(np.asarray(rgba[0])[..., :3].reshape(-1, 3), axis=0)
        }
        for kind, mapping in (("palette hue +60", hue_rotation(palette, 60)),
                              ("palette hue +180", hue_rotation(palette, 180)),
                              ("palette permuted", permutation(palette, used))):  # fmt: skip
            if mapping:
                j = d.add(root, flatten_to_rgb(_recolour(rgba[0], mapping)), dex, "palette", 0)
                d.pairs.append((ids[0], j, "distinct", kind))
    dexes = sorted(first)
    for a in range(len(dexes)):
        for b in range(a + 1, len(dexes)):
            d.pairs.append((first[dexes[a]], first[dexes[b]], "distinct", "different species"))
    return d


# -- the three methods -----------------------------------------------------------------------------------


def main_groups():
    """``pokedata/dedup/groups.py`` as it is at ``main`` (the code before this change), as a module."""
    src = subprocess.run(
        ["git", "-C", str(REPO), "show", "main:pokedata/dedup/groups.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "groups_main.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("groups_main", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["groups_main"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@dataclass
class Outcome:
    name: str
    same: np.ndarray  # (P,) bool: the method judged the labelled pair duplicates
    kept: np.ndarray  # (N,) bool
    dropped: np.ndarray  # (N,) bool: removed as a duplicate (not as a conflict)
    seconds: float = 0.0


def run_main(d: Data, h: np.ndarray, cls: np.ndarray, area: np.ndarray, t: int, cross: int, P: np.ndarray):
    from pokedata.dedup.groups import pick_survivors

    g = main_groups()
    t0 = time.perf_counter()
    comp, _ = g.duplicate_components(h, cls, d.sha, t, cross)
    n = len(h)
    ids = np.arange(n)
    size = np.bincount(comp)[comp]
    unit = np.unique(np.stack([comp, cls], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
    class_surv = pick_survivors(unit, area, np.zeros(n, dtype=np.int64), ids)
    comp_classes = np.bincount(
        np.unique(np.stack([comp, cls], axis=1), axis=0)[:, 0], minlength=comp.max() + 1
    )
    conflict = comp_classes[comp] > 1
    dropped = (size > 1) & (class_surv != ids)
    sec = time.perf_counter() - t0
    return Outcome("main (components)", comp[P[:, 0]] == comp[P[:, 1]], ~dropped & ~conflict, dropped, sec)


def run_ours(h, colours, cls, area, t: int, cross: int, tol: int | None, P: np.ndarray) -> Outcome:
    from pokedata.dedup.groups import group_images, policy_order

    n = len(h)
    t0 = time.perf_counter()
    g = group_images(h, colours, cls, policy_order(area, np.zeros(n, dtype=np.int64), np.arange(n)),
                     threshold=t, conflict_threshold=cross, colour_tolerance=tol, conflicts="drop")  # fmt: skip
    sec = time.perf_counter() - t0
    kept = (g.survivor == np.arange(n)) & ~g.conflict
    name = "ours (bounded groups, colour)" if colours is not None else "ours, --ignore-colour"
    return Outcome(name, g.survivor[P[:, 0]] == g.survivor[P[:, 1]], kept, g.survivor != np.arange(n), sec)


def pair_test(h, colours, t: int, tol: int | None, P: np.ndarray) -> np.ndarray:
    from pokedata.dedup.colour import colour_distance
    from pokedata.dedup.hashing import hamming

    near = hamming(h[P[:, 0]], h[P[:, 1]]) <= t
    if colours is not None:
        near &= colour_distance(colours[P[:, 0]], colours[P[:, 1]]) <= tol
    return near


def run_imagededup(root: Path, n: int, t: int, P: np.ndarray) -> Outcome | None:
    from dedup import imagededup_python

    py = imagededup_python()
    if py is None:
        return None
    t0 = time.perf_counter()
    res = subprocess.run(
        [str(py), "-c", _IDD, str(root), str(t)], capture_output=True, text=True, timeout=1800
    )
    if res.returncode:
        print("imagededup failed:", res.stderr.strip().splitlines()[-1:])
        return None
    sec = time.perf_counter() - t0
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    index = {f"{i:06d}.jpg": i for i in range(n)}
    partners = {index[k]: {index[v] for v in vs} for k, vs in doc["dups"].items()}
    same = np.array([int(b) in partners.get(int(a), ()) for a, b in P], dtype=bool)
    dropped = np.zeros(n, dtype=bool)
    dropped[[index[f] for f in doc["remove"]]] = True
    return Outcome("imagededup find_duplicates (pHash)", same, ~dropped, dropped, sec)


# -- metrics ----------------------------------------------------------------------------------------------


def orphans(o: Outcome, h: np.ndarray, cls: np.ndarray, t: int) -> tuple[int, int]:
    """(dropped images with no kept image of their class within t bits, dropped images)."""
    from pokedata.dedup.hashing import hamming

    kept_by_cls: dict[int, np.ndarray] = {}
    for c in np.unique(cls):
        kept_by_cls[int(c)] = h[o.kept & (cls == c)]
    lonely = 0
    for i in np.nonzero(o.dropped)[0]:
        k = kept_by_cls[int(cls[i])]
        if len(k) == 0 or hamming(k, h[i]).min() > t:
            lonely += 1
    return lonely, int(o.dropped.sum())


def per_animation(o: Outcome, d: Data, anims: tuple[str, ...]) -> tuple[float, int, int, int]:
    """(median kept images per animation, animations with none kept, animations, images kept).

    The normal animation's images include the edited copies of its frames (a larger resized copy
    rightly survives in place of its frame)."""
    cls, kinds = np.asarray(d.cls), np.asarray(d.anim)
    counts = []
    for c in np.unique(cls):
        rows = (cls == c) & np.isin(kinds, anims)
        counts.append(int((o.kept & rows).sum()))
    counts = np.asarray(counts)
    return float(np.median(counts)), int((counts == 0).sum()), len(counts), int(counts.sum())


def table(outcomes: list[Outcome], extra: dict[str, np.ndarray], d: Data, P, labels, kinds) -> None:
    cols = [o.name for o in outcomes] + list(extra)
    same = {o.name: o.same for o in outcomes} | extra
    print("| pairs | n | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for label, verb in (("dup", "recall"), ("distinct", "kept apart")):
        for kind in dict.fromkeys(k for k, lab in zip(kinds, labels, strict=True) if lab == label):
            m = (kinds == kind) & (labels == label)
            vals = [same[c][m].mean() if label == "dup" else 1 - same[c][m].mean() for c in cols]
            print(f"| {verb}: {kind} | {int(m.sum()):,} | " + " | ".join(f"{v:.1%}" for v in vals) + " |")
    for label, verb in (("dup", "recall, all duplicates"), ("distinct", "kept apart, all distinct")):
        m = labels == label
        vals = [same[c][m].mean() if label == "dup" else 1 - same[c][m].mean() for c in cols]
        print(f"| **{verb}** | {int(m.sum()):,} | " + " | ".join(f"**{v:.1%}**" for v in vals) + " |")
    prec = []
    for c in cols:
        tp = (same[c] & (labels == "dup")).sum()
        fp = (same[c] & (labels == "distinct")).sum()
        prec.append(tp / (tp + fp) if tp + fp else float("nan"))
    print(f"| **precision** | {len(labels):,} | " + " | ".join(f"**{v:.1%}**" for v in prec) + " |")


def sheets(dexes: list[int], out: Path, t: int, cross: int, tol: int) -> None:
    """docs pictures: each Pokemon's animation and its shiny recolour, folded by ours (contact sheet)."""
    from pokedata.dedup.groups import group_images, policy_order
    from pokedata.dedup.hashing import hamming, hash_files
    from pokedata.dedup.report import sequence_sheet

    with tempfile.TemporaryDirectory() as tmp:
        d = build(Path(tmp), False, only=dexes, copies=False)
        h = hash_files(d.paths, "phash", workers=1).values
        colours = hash_files(d.paths, "colour", workers=1).values
        n = len(h)
        cls, area = np.asarray(d.cls), np.asarray(d.area, dtype=np.int64)
        g = group_images(h, colours, cls, policy_order(area, np.zeros(n, dtype=np.int64), np.arange(n)),
                         threshold=t, conflict_threshold=cross, colour_tolerance=tol)  # fmt: skip
        for dex in dexes:
            rows = [i for i in range(n) if d.cls[i] == dex and d.anim[i] in ("normal", "shiny")]
            pos = {r: k for k, r in enumerate(rows)}
            surv = [pos.get(int(g.survivor[r]), -1) for r in rows]
            dist = [int(hamming(h[r], h[g.survivor[r]])) for r in rows]
            kept = sum(s == k for k, s in enumerate(surv))
            frames = sum(d.anim[r] == "normal" for r in rows)
            title = (f"#{dex}: {frames} frames + {frames} shiny frames (palette hue +120) -> {kept} kept "
                     f"(phash <= {t} bits of its survivor, colour <= {tol})")  # fmt: skip
            path = out / f"dedup-folded-{dex}.png"
            sequence_sheet([d.paths[r] for r in rows], surv, dist, title=title).save(path)
            print(f"wrote {path}: {title}")


def main(argv: list[str] | None = None) -> int:
    from pokedata.dedup.colour import DEFAULT_COLOUR_TOLERANCE
    from pokedata.dedup.hashing import hash_files

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 sprites instead of 151")
    ap.add_argument("--threshold", type=int, default=10, help="phash bits (all methods)")
    ap.add_argument("--conflict-threshold", type=int, default=4, help="phash bits across classes")
    ap.add_argument("--colour-tolerance", type=int, default=DEFAULT_COLOUR_TOLERANCE)
    ap.add_argument("--no-imagededup", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--sheet", default="", help="only write contact sheets of these Pokemon (e.g. 25,6) to docs/img"
    )
    args = ap.parse_args(argv)
    if not SPRITES.is_dir():
        print(f"{SPRITES} is absent: nothing to measure")
        return 1
    t, cross, tol = args.threshold, args.conflict_threshold, args.colour_tolerance
    if args.sheet:
        sheets([int(x) for x in args.sheet.split(",")], REPO / "docs" / "img", t, cross, tol)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        d = build(root, args.quick)
        n = len(d.paths)
        P = np.array([(a, b) for a, b, _, _ in d.pairs], dtype=np.int64)
        labels = np.array([lab for _, _, lab, _ in d.pairs])
        kinds = np.array([k for _, _, _, k in d.pairs])
        print(f"{n:,} images ({d.anim.count('normal'):,} frames, {d.anim.count('shiny'):,} shiny frames, "
              f"{d.anim.count('edit'):,} edits, {d.anim.count('palette'):,} palette swaps) of "
              f"{len(set(d.cls))} Pokemon, {len(P):,} labelled pairs; built in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        h = hash_files(d.paths, "phash", workers=args.workers).values
        colours = hash_files(d.paths, "colour", workers=args.workers).values
        cls, area = np.asarray(d.cls), np.asarray(d.area, dtype=np.int64)
        outcomes = [
            run_main(d, h, cls, area, t, cross, P),
            run_ours(h, colours, cls, area, t, cross, tol, P),
            run_ours(h, None, cls, area, t, cross, None, P),
        ]
        idd = None if args.no_imagededup else run_imagededup(root, n, t, P)
        if idd is not None:
            outcomes.append(idd)
    print(
        f"\n### pair decisions (phash threshold {t} bits, across classes {cross}, colour tolerance {tol})\n"
    )
    extra = {"ours, pair test alone": pair_test(h, colours, t, tol, P)}
    table(outcomes, extra, d, P, labels, kinds)
    print("\n### what a run keeps (`--conflicts drop`)\n")
    print("| method | kept images | dropped as duplicates | dropped without a kept neighbour (same class, "
          f"<= {t} bits) | duplicate pairs folded (not both kept) | kept images per animation, median "
          "(normal / shiny) | animations with none kept (normal / shiny) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for o in outcomes:
        lonely, dropped = orphans(o, h, cls, t)
        med_n, none_n, anims, _ = per_animation(o, d, ("normal", "edit"))
        med_s, none_s, _, _ = per_animation(o, d, ("shiny",))
        share = lonely / dropped if dropped else 0.0
        both_kept = o.kept[P[:, 0]] & o.kept[P[:, 1]]
        folded = 1 - both_kept[labels == "dup"].mean()
        print(f"| {o.name} | {int(o.kept.sum()):,} of {n:,} | {dropped:,} | {lonely:,} ({share:.1%}) | "
              f"{folded:.1%} | {med_n:.0f} / {med_s:.0f} | {none_n} / {none_s} of {anims} |")  # fmt: skip
    print("\n### colour tolerance (pair test, phash within the threshold)\n")
    swap_kinds = [k for k in dict.fromkeys(kinds.tolist()) if k.startswith(("palette", "shiny"))]
    print("| tolerance | recall: edits | recall: consecutive frames | kept apart: palette swaps + shiny | "
          + " | ".join(f"kept apart: {k}" for k in swap_kinds) + " |")  # fmt: skip
    print("|---|---|---|---|" + "---|" * len(swap_kinds))
    edits = (labels == "dup") & (kinds != "consecutive near-identical frames")
    cons = kinds == "consecutive near-identical frames"
    swaps = np.isin(kinds, swap_kinds)
    for tv in (16, 24, 28, 32, 36, 40, 44, 56, 72):
        near = pair_test(h, colours, t, tv, P)
        mark = " **default**" if tv == DEFAULT_COLOUR_TOLERANCE else ""
        per = " | ".join(f"{1 - near[kinds == k].mean():.1%}" for k in swap_kinds)
        print(
            f"| {tv}{mark} | {near[edits].mean():.1%} | {near[cons].mean():.1%} | {1 - near[swaps].mean():.2%} | {per} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
