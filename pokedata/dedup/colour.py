"""A 64-bit colour signature, so that a recolour (a shiny Pokemon, a palette swap) is not a duplicate.

A perceptual hash sees only grayscale structure: the same drawing in another palette hashes within a
few bits of the original. The colour signature is a chroma-weighted **hue histogram** of the image:

- the image is reduced to 32x32 RGB (box filter; JPEGs decoded at 1/2..1/8 scale by libjpeg first);
- each pixel contributes its chroma (``max(R,G,B) - min(R,G,B)``, 0..1) to the two nearest of 8 hue
  bins (linear split, so a small hue shift moves weight smoothly instead of jumping a bin);
  white, gray and black pixels (the background of a sprite, outlines) weigh nothing;
- each bin is divided by the pixel count, square-rooted (a Hellinger-like scale that still resolves
  small coloured areas) and quantised to one byte: 8 bytes, packed like the hashes into one uint64.

Being a histogram, it ignores where the colour is, so consecutive animation frames, small crops and
resizes keep it; a hue rotation or a palette permutation moves weight between bins. The distance is the
L1 distance between the 8 bytes (0..2040). The default tolerance (:data:`DEFAULT_COLOUR_TOLERANCE`)
is measured by ``bench/dedup_quality.py`` on the gen-1 sprites (docs/dedup.md).

It is cached in the ledger's ``hashes`` table like a hash, under ``method = 'colour'``
(:class:`pokedata.dedup.hashing.ColourSignature` computes it like the perceptual hashes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    pass

COLOUR = "colour"
"""``hashes.method`` of the cached colour signature."""
BINS = 8
SIDE = 32
MAX_COLOUR_DISTANCE = 255 * BINS
DEFAULT_COLOUR_TOLERANCE = 32
"""L1 bytes. Measured by bench/dedup_quality.py on the gen-1 sprites (phash within 10 bits): at 32,
96.8 % of edited copies and 100 % of near-identical consecutive frames stay duplicates (97.0 % with no
colour test at all), while 99.8 % of palette swaps and shiny recolours are kept apart (100 % of hue
rotations, 88.7 % of palette permutations); 44 keeps 82.8 % of permutations apart, 24 loses 1 point of
edit recall for 92.7 % (docs/dedup.md)."""


_BLOCK = 256
"""Images per block in :func:`signatures`: the float temporaries of a block stay in the CPU cache."""


def signatures(rgb: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N,) uint64 colour signatures."""
    n = len(rgb)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    flat = np.asarray(rgb).reshape(n, -1, 3)
    q = np.concatenate([_quantised_bins(flat[i : i + _BLOCK]) for i in range(0, n, _BLOCK)])  # (N, 8)
    return np.ascontiguousarray(q).view(">u8").reshape(-1).astype(np.uint64)


def _quantised_bins(rgb: np.ndarray) -> np.ndarray:
    """(M, P, 3) uint8 -> (M, 8) uint8 bins.

    Only pixels with some chroma are converted and binned: a white, gray or black pixel would add
    exactly 0.0 to its bins, so leaving it out changes no bit of the result (each bin still sums the
    same weights in the same order) and skips the float work for the background of a sprite.
    """
    m, pixels = rgb.shape[0], rgb.shape[1]
    coloured = rgb.max(axis=2) != rgb.min(axis=2)  # (M, P): chroma 0 exactly where max == min
    image = np.nonzero(coloured)[0]  # (K,) image index of each coloured pixel, in row-major order
    x = rgb[coloured].astype(np.float64) / 255.0  # (K, 3)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    chroma = x.max(axis=1) - x.min(axis=1)  # (K,) 0..1
    hue = (np.arctan2(np.sqrt(3.0) / 2.0 * (g - b), r - 0.5 * (g + b)) / (2 * np.pi)) % 1.0
    pos = hue * BINS - 0.5
    lo = np.floor(pos).astype(np.int64)
    w = pos - lo  # weight of the upper bin
    base = image * BINS
    hist = np.bincount(base + lo % BINS, chroma * (1 - w), minlength=m * BINS)
    hist += np.bincount(base + (lo + 1) % BINS, chroma * w, minlength=m * BINS)
    hist = hist.reshape(m, BINS) / pixels  # (M, 8) share of the image, chroma-weighted
    return np.round(np.sqrt(np.clip(hist, 0.0, 1.0)) * 255.0).astype(np.uint8)


def unpack(values: np.ndarray) -> np.ndarray:
    """(N,) uint64 signatures -> (N, 8) uint8 bins (first bin = most significant byte)."""
    v = np.ascontiguousarray(np.asarray(values, dtype=np.uint64).reshape(-1)).astype(">u8")
    return v.view(np.uint8).reshape(-1, BINS)


def colour_distance(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """L1 distance between the bins of two signatures (or aligned arrays of them), 0..2040."""
    a_arr, b_arr = (
        np.atleast_1d(np.asarray(a, dtype=np.uint64)),
        np.atleast_1d(np.asarray(b, dtype=np.uint64)),
    )
    a_arr, b_arr = np.broadcast_arrays(a_arr, b_arr)
    d = np.abs(unpack(a_arr).astype(np.int16) - unpack(b_arr).astype(np.int16)).sum(axis=1)
    return d.astype(np.int64).reshape(np.broadcast(np.asarray(a), np.asarray(b)).shape)
