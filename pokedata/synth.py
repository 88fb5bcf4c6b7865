"""A synthetic sprite set drawn procedurally: the offline stand-in for a web crawl (``poke demo``).

Twelve classes of made-up creatures, each a distinct body shape and palette, drawn as pixel art on
transparent backgrounds in several poses, sizes and colour variants, and written as a class-per-folder
tree (``OUT/<Class>/<file>``) the way a crawl or a Kaggle download would leave it:

- RGBA PNGs, palette GIFs with a transparency index, and animated GIFs (a bobbing walk cycle);
- planted problems the pipeline must find: exact byte copies (caught by the fetch gate's sha256),
  pixel-identical re-encodes (PNG -> GIF, caught by dedup's pixel hash), near duplicates (rescaled with
  a slight colour shift, caught by the perceptual hash), corrupt and truncated files (quarantined on
  import), a sprite too small to train on (quarantined by ``clean``), and one class-conflict pair (the
  same file under two class folders).

:func:`make_sprite_set` returns a :class:`SynthReport` listing every planted file so a test can check
the pipeline found them; :func:`write_demo_catalog` writes the matching catalog CSV. Deterministic for a
seed (same bytes every run), numpy + Pillow only, well under a second for the default set.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pokedata.catalog import Catalog, PokemonClass, danbooru_tag_for, validate, write_catalog_csv
from pokedata.errors import UserError
from pokedata.synth_draw import Pose, binary_alpha, encode_gif, encode_png, make_palette, random_pose, render

REPORT_NAME = "synth.json"
SIZES = (48, 64, 80, 96)  # output canvas sizes (px)

# name, base hue, accent hue: one distinct body shape per class (the drawing functions below)
CREATURES: tuple[tuple[str, float, float], ...] = (
    ("Blobble", 0.33, 0.15),
    ("Spikit", 0.05, 0.12),
    ("Cubot", 0.58, 0.0),
    ("Starling", 0.14, 0.95),
    ("Wyrmlet", 0.78, 0.35),
    ("Fluttix", 0.50, 0.85),
    ("Jellop", 0.90, 0.55),
    ("Crabbit", 0.00, 0.10),
    ("Shroomy", 0.07, 0.0),
    ("Ghoulie", 0.72, 0.45),
    ("Finnel", 0.62, 0.08),
    ("Pebblor", 0.10, 0.60),
)


@dataclass(frozen=True)
class SynthConfig:
    """What to draw. The default (~330 files) suits ``poke demo``; tests shrink it."""

    n_classes: int = 12
    per_class: int = 24  # distinct sprites per class (poses x sizes x palettes, sampled)
    animated_share: float = 0.15  # share of sprites written as animated GIFs
    gif_share: float = 0.25  # share of the still sprites written as palette GIFs (others: RGBA PNG)
    exact_copies: int = 3  # byte-identical copies inside a class (fetch gate: duplicate-of)
    pixel_copies: int = 3  # PNG sprites re-encoded as GIF: same pixels, other bytes (dedup: exact)
    near_dups: int = 6  # rescaled + colour-shifted copies (dedup: near)
    corrupt: int = 4  # garbage / truncated / empty / bad-header files (fetch gate: quarantined)
    too_small: int = 1  # valid but tiny sprites (clean: quarantined as too small)
    conflict: bool = True  # one file under two class folders (dedup: conflict)
    seed: int = 0

    def validate(self) -> None:
        if not 2 <= self.n_classes <= len(CREATURES):
            raise UserError(
                f"n_classes={self.n_classes} is out of range", hint=f"use 2..{len(CREATURES)} classes"
            )
        if self.per_class < 2:
            raise UserError(f"per_class={self.per_class} is too small", hint="draw at least 2 per class")
        for name in ("exact_copies", "pixel_copies", "near_dups", "corrupt", "too_small"):
            if getattr(self, name) < 0:
                raise UserError(f"{name}={getattr(self, name)} must be >= 0")
        planted = self.exact_copies + self.pixel_copies + self.near_dups
        if planted > self.n_classes * self.per_class // 2:
            raise UserError(
                f"{planted} planted duplicates for {self.n_classes * self.per_class} sprites is too many",
                hint="plant at most half as many duplicates as sprites",
            )
        for name in ("animated_share", "gif_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{name}={getattr(self, name)} must lie in 0..1")


@dataclass
class SynthReport:
    """What :func:`make_sprite_set` wrote; paths are relative to ``root`` with forward slashes."""

    root: str
    config: dict
    classes: list[str]
    files: int = 0  # every file written, planted ones included
    sprites: int = 0  # distinct drawn sprites
    per_class: dict[str, int] = field(default_factory=dict)  # files per class folder
    animated: list[str] = field(default_factory=list)
    exact_copies: list[tuple[str, str]] = field(default_factory=list)  # (copy, original)
    pixel_copies: list[tuple[str, str]] = field(default_factory=list)  # (re-encoded GIF, original PNG)
    near_dups: list[tuple[str, str]] = field(default_factory=list)  # (near copy, original)
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (file, kind)
    too_small: list[str] = field(default_factory=list)
    conflict: tuple[str, str] | None = None  # (original, the same bytes under another class)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SynthReport:
        raw = json.loads(text)
        for key in ("exact_copies", "pixel_copies", "near_dups", "corrupt"):
            raw[key] = [tuple(p) for p in raw.get(key, [])]
        raw["conflict"] = tuple(raw["conflict"]) if raw.get("conflict") else None
        return cls(**raw)


# -- the set -----------------------------------------------------------------------------------------
def make_sprite_set(
    out_dir: Path | str, cfg: SynthConfig | None = None, *, overwrite: bool = False
) -> SynthReport:
    """Draw the sprite set into ``out_dir`` (class-per-folder) and return what was planted.

    Written into a temp folder beside ``out_dir`` and renamed into place at the end, so a killed run
    leaves no half set. If ``out_dir`` already holds a set made with the same config it is reused as is
    (``synth.json`` records the config); another config is refused unless ``overwrite``.
    """
    cfg = cfg or SynthConfig()
    cfg.validate()
    out = Path(out_dir).expanduser().resolve()
    marker = out / REPORT_NAME
    if out.exists():
        if marker.is_file():
            report = SynthReport.from_json(marker.read_text(encoding="utf-8"))
            if report.config == asdict(cfg) and not overwrite:
                return report
        if not overwrite and any(out.iterdir()):
            raise UserError(
                f"{out} already exists and does not hold a sprite set made with these settings",
                hint="choose another folder, or pass overwrite=True (`poke demo` without --resume) to redraw it",
            )
    started = time.monotonic()
    for stale in out.parent.glob(f".tmp-{out.name}-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        report = _draw_set(tmp, cfg)
        report.root = str(out)
        report.seconds = round(time.monotonic() - started, 3)
        (tmp / REPORT_NAME).write_text(report.to_json(), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _draw_set(root: Path, cfg: SynthConfig) -> SynthReport:
    rng = np.random.default_rng(cfg.seed)
    names = [c[0] for c in CREATURES[: cfg.n_classes]]
    report = SynthReport(root=str(root), config=asdict(cfg), classes=names)
    stills: list[tuple[str, Image.Image]] = []  # (rel, RGBA) of still PNG sprites: copy sources

    def write(rel: str, data: bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        report.files += 1
        cls = rel.split("/", 1)[0]
        report.per_class[cls] = report.per_class.get(cls, 0) + 1

    for kind, (name, hue, accent) in enumerate(CREATURES[: cfg.n_classes]):
        slug = name.lower()
        for i in range(cfg.per_class):
            palette = make_palette(hue, accent, int(rng.choice(3, p=[0.6, 0.2, 0.2])))
            pose = random_pose(rng)
            size = int(rng.choice(SIZES))
            r = rng.random()
            if r < cfg.animated_share:
                frames = [
                    render(kind, palette, Pose(**{**asdict(pose), "bob": pose.bob + 3 * math.sin(t * math.pi / 2),
                                                  "phase": pose.phase + t * math.pi / 2}), size)
                    for t in range(4)
                ]  # fmt: skip
                rel = f"{name}/{slug}-{i:03d}.gif"
                write(rel, encode_gif(frames))
                report.animated.append(rel)
            elif r < cfg.animated_share + (1 - cfg.animated_share) * cfg.gif_share:
                write(f"{name}/{slug}-{i:03d}.gif", encode_gif([render(kind, palette, pose, size)]))
            else:
                im = render(kind, palette, pose, size)
                rel = f"{name}/{slug}-{i:03d}.png"
                write(rel, encode_png(im))
                stills.append((rel, im))
            report.sprites += 1
    _plant(root, cfg, rng, stills, report, write)
    return report


def _plant(
    root: Path, cfg: SynthConfig, rng: np.random.Generator, stills, report: SynthReport, write
) -> None:
    """Plant the duplicates, broken files and the conflict pair, each from a distinct still sprite."""
    order = [int(i) for i in rng.permutation(len(stills))]
    picks = iter(order)

    def stem(rel: str) -> str:
        return rel.rsplit(".", 1)[0]

    for _ in range(cfg.exact_copies):
        rel, _im = stills[next(picks)]
        copy = f"{stem(rel)}-copy.png"
        write(copy, (root / rel).read_bytes())
        report.exact_copies.append((copy, rel))
    for _ in range(cfg.pixel_copies):
        rel, im = stills[next(picks)]
        copy = f"{stem(rel)}-regif.gif"
        write(copy, encode_gif([im]))
        report.pixel_copies.append((copy, rel))
    for _ in range(cfg.near_dups):
        rel, im = stills[next(picks)]
        report.near_dups.append((_near_copy(rel, im, rng, write, stem), rel))
    kinds = ("garbage", "truncated-png", "empty", "truncated-gif", "bad-header")
    for k in range(cfg.corrupt):
        kind = kinds[k % len(kinds)]
        rel, im = stills[order[k % len(order)]]
        cls = rel.split("/", 1)[0]
        data = _broken_bytes(kind, im, rng)
        ext = "gif" if kind == "truncated-gif" else "png"
        broken = f"{cls}/broken-{k:02d}-{kind}.{ext}"
        write(broken, data)
        report.corrupt.append((broken, kind))
    for k in range(cfg.too_small):
        name, hue, accent = CREATURES[k % cfg.n_classes]
        rel = f"{name}/{name.lower()}-tiny-{k:02d}.png"
        write(rel, encode_png(render(k % cfg.n_classes, make_palette(hue, accent, 0), random_pose(rng), 16)))
        report.too_small.append(rel)
    if cfg.conflict:
        rel, _im = stills[next(picks)]
        cls = rel.split("/", 1)[0]
        other = next(n for n in report.classes if n != cls)
        dup = f"{other}/{Path(rel).stem}-mislabeled.png"
        write(dup, (root / rel).read_bytes())
        report.conflict = (rel, dup)


def _broken_bytes(kind: str, im: Image.Image, rng: np.random.Generator) -> bytes:
    if kind == "garbage":
        return rng.bytes(700)
    if kind == "empty":
        return b""
    if kind == "bad-header":  # a PNG signature followed by noise
        return b"\x89PNG\r\n\x1a\n" + rng.bytes(300)
    whole = encode_gif([im]) if kind == "truncated-gif" else encode_png(im)
    return whole[: max(40, len(whole) // 2)]


def _near_copy(rel: str, im: Image.Image, rng: np.random.Generator, write, stem) -> str:
    """The sprite upscaled 1.5x or 2x with its colours nudged: other pixels, the same picture."""
    factor = float(rng.choice([1.5, 2.0]))
    size = round(im.width * factor)
    big = binary_alpha(im.resize((size, size), Image.Resampling.NEAREST))
    a = np.asarray(big).astype(np.int16)
    shift = rng.integers(-6, 7, size=3)
    a[..., :3] = np.clip(a[..., :3] + shift, 0, 255)
    a[a[..., 3] == 0, :3] = 0
    copy = f"{stem(rel)}-near.png"
    write(copy, encode_png(Image.fromarray(a.astype(np.uint8), "RGBA")))
    return copy


# -- the matching catalog ------------------------------------------------------------------------------
def demo_catalog(n_classes: int = len(CREATURES)):
    """A :class:`pokedata.catalog.Catalog` of the first ``n_classes`` synthetic creatures."""

    classes = tuple(
        PokemonClass(
            class_index=i,
            name=name,
            dex=i + 1,
            generation=1,
            form="base",
            danbooru_tag=danbooru_tag_for(name),
            search_query=f"{name} synthetic sprite",
        )
        for i, (name, _h, _a) in enumerate(CREATURES[:n_classes])
    )
    catalog = Catalog(classes=classes, source="synthetic demo creatures")
    validate(catalog)
    return catalog


def write_demo_catalog(path: Path | str, n_classes: int = len(CREATURES)) -> Path:
    """Write the demo's catalog CSV (the columns :func:`pokedata.catalog.read_catalog_csv` requires)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_catalog_csv(demo_catalog(n_classes), path)
    return path
