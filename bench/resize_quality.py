"""Output quality of cheaper downscale filters against the Lanczos output ``poke clean`` wrote until
clean version 2: PSNR (RGB) and SSIM (luma, 11-tap Gaussian window, sigma 1.5) per filter, next to
what the q95 JPEG encode itself changes, on two sets:

- 40 of the dedup benchmark's generated 1-3 MP JPEGs (bench/out/dedup-jpegs, made by bench/dedup.py),
  decoded as the clean stage decodes them (libjpeg draft where it applies), downscaled to <= 1024 px;
- 40 gen-1 sprites (../shared/data/sprites-gen1, frame 0 on white) upscaled x14 with nearest-neighbour
  (hard pixel-art edges, 1,100-1,500 px), downscaled to 1024 px (skipped when the sprites are absent).

    python bench/resize_quality.py
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM on luma (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03)."""

    def luma(x: np.ndarray) -> np.ndarray:
        return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]

    x1, x2 = luma(a.astype(np.float64)), luma(b.astype(np.float64))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def f(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, 1.5, truncate=3.5)

    m1, m2 = f(x1), f(x2)
    s11, s22, s12 = f(x1 * x1) - m1 * m1, f(x2 * x2) - m2 * m2, f(x1 * x2) - m1 * m2
    return float(np.mean(((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1**2 + m2**2 + c1) * (s11 + s22 + c2))))


def photos(n: int) -> Iterator[tuple[Image.Image, tuple[int, int]]]:
    from dedup import large_jpegs

    for f in sorted(large_jpegs(400, 2).iterdir())[:n]:
        with Image.open(f) as im:
            w, h = im.size
            s = min(1.0, 1024 / max(w, h))
            im.draft(None, (math.ceil(w * s), math.ceil(h * s)))  # as the clean stage decodes it
            im.load()
            yield im.convert("RGB"), (max(1, round(w * s)), max(1, round(h * s)))


def pixel_art(n: int) -> Iterator[tuple[Image.Image, tuple[int, int]]]:
    from dedup_threshold import SPRITES, sprite_frames

    if not SPRITES.is_dir():
        return
    for _, i, im in sprite_frames(limit_files=n):
        if i == 0:
            big = im.resize((im.width * 14, im.height * 14), Image.Resampling.NEAREST)
            s = 1024 / max(big.size)
            yield big, (round(big.width * s), round(big.height * s))


def main() -> int:
    print("| set | filter vs Lanczos | PSNR mean (min) | SSIM mean (min) | n |")
    print("|---|---|---|---|---|")
    for name, images in (("photos 1-3 MP", photos(40)), ("pixel art x14", pixel_art(40))):
        scores: dict[str, list[tuple[float, float]]] = {k: [] for k in [*FILTERS, "Lanczos vs its q95 JPEG"]}
        for im, size in images:
            ref = np.asarray(im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))
            for label, flt in FILTERS.items():
                out = np.asarray(im.resize(size, flt, reducing_gap=3.0))
                scores[label].append((psnr(ref, out), ssim(ref, out)))
            buf = io.BytesIO()
            Image.fromarray(ref).save(buf, "JPEG", quality=95)
            enc = np.asarray(Image.open(buf).convert("RGB"))
            scores["Lanczos vs its q95 JPEG"].append((psnr(ref, enc), ssim(ref, enc)))
        for label, v in scores.items():
            if not v:
                continue
            a = np.array(v)
            print(
                f"| {name} | {label} | {a[:, 0].mean():.1f} dB ({a[:, 0].min():.1f}) "
                f"| {a[:, 1].mean():.3f} ({a[:, 1].min():.3f}) | {len(a)} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
