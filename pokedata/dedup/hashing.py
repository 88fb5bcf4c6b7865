"""Perceptual hashes (64-bit) as small classes, with a fast batched hot path.

Each method follows imagehash's definition (``imagehash.phash``, ``dhash``, ``whash``,
``average_hash`` with ``hash_size=8``) and gives the same bits: a hash is the 8x8 bit matrix read
row-major, first bit most significant, so ``int(str(imagehash.phash(im)), 16) == PHash().hash_image(im)``.

What makes it fast:

- the per-image work is only decode + one Lanczos resize to a small grayscale square
  (:meth:`Hasher.prepare`); with ``fast=True`` a JPEG is decoded straight to grayscale at 1/2, 1/4 or
  1/8 scale by libjpeg (Pillow's ``draft``), which is most of the cost on large photos;
- the transform, median and bit packing run once over a batch of images in numpy
  (:meth:`Hasher.hash_batch`): the 2-D DCT of phash is ``D @ X @ D.T`` with a precomputed 8x32 matrix;
- :func:`hash_files` spreads chunks of files over worker processes.

``fast=True`` agrees with imagehash to within a bit or two on large JPEGs (the draft decode is a
slightly different resampling); on small images and non-JPEGs it is identical. ``fast=False`` is
bit-exact with imagehash up to floating-point ties.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from pokedata.dedup.colour import COLOUR, DEFAULT_COLOUR_TOLERANCE, signatures
from pokedata.dedup.colour import SIDE as COLOUR_SIDE
from pokedata.errors import UserError

HASH_BITS = 64
_SIDE = 8  # hash_size: an 8x8 bit matrix


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(N, 8, 8) or (N, 64) booleans, row-major, first bit most significant -> (N,) uint64."""
    bits = np.ascontiguousarray(bits, dtype=bool).reshape(len(bits), HASH_BITS)
    packed = np.packbits(bits, axis=1)  # (N, 8) uint8, big-endian bit order
    return packed.view(">u8").reshape(-1).astype(np.uint64)


def to_signed(values: np.ndarray) -> np.ndarray:
    """uint64 hashes -> int64 (the ledger stores them signed); a view, no bits change."""
    return np.ascontiguousarray(values, dtype=np.uint64).view(np.int64)


def to_unsigned(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)


def hamming(a: int | np.ndarray, b: int | np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance between 64-bit hashes (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return np.bitwise_count(x).astype(np.int64)


class Hasher:
    """A 64-bit perceptual hash: ``prepare`` (one image -> a small array) then ``hash_batch``."""

    name: ClassVar[str]
    default_threshold: ClassVar[int]
    """Hamming bits; measured on sprite frames and edited copies (docs/dedup.md)."""
    default_conflict_threshold: ClassVar[int]
    """Bits for a match across classes (a copy, not a look-alike); measured the same way."""
    draft_mode: ClassVar[str] = "L"
    """Mode a JPEG is decoded to at reduced scale (``fast``): grayscale for the perceptual hashes."""
    version: ClassVar[int] = 1
    """Raised when the values of a method change: cached values of older versions are recomputed."""

    def __init__(self, *, fast: bool = True):
        self.fast = fast

    # -- per image ------------------------------------------------------------------------------
    def work_side(self, size: tuple[int, int]) -> int:
        """Side of the grayscale square this method resizes to, for an image of ``size``."""
        raise NotImplementedError

    def prepare(self, im: Image.Image) -> np.ndarray:
        """One image (any mode) -> the array :meth:`hash_batch` consumes (same shape for every image)."""
        side = self.work_side(im.size)
        return self._reduce(_gray_resized(im, side))

    def _reduce(self, pixels: np.ndarray) -> np.ndarray:
        return pixels

    def draft_request(self, size: tuple[int, int]) -> tuple[str, tuple[int, int]] | None:
        """The reduced-scale decode (``Image.draft`` arguments) :meth:`open` asks of a JPEG of ``size``;
        None: decoded in full. ``poke clean --dedup`` decodes its output the same way (same values)."""
        side = self.work_side(size)
        # libjpeg scales by 1/2, 1/4 or 1/8 while staying >= the requested size; keep 4x margin so the
        # Lanczos resize afterwards still sees plenty of pixels. Only when it does reduce: a draft at
        # full scale would still switch the colour conversion to libjpeg's (grayscale = the Y plane),
        # which differs from convert("L") by a rounding step, so a small JPEG hashes exactly as
        # imagehash does.
        if self.fast and min(size) >= 8 * side:
            return self.draft_mode, (4 * side, 4 * side)
        return None

    def open(self, path: Path | str) -> np.ndarray:
        """Decode a file and :meth:`prepare` it (JPEGs decoded at reduced scale when ``fast``)."""
        with Image.open(path) as im:
            request = self.draft_request(im.size) if im.format == "JPEG" else None
            if request is not None:
                im.draft(*request)
            im.load()
            return self.prepare(im)

    # -- per batch ------------------------------------------------------------------------------
    def hash_batch(self, arrays: np.ndarray) -> np.ndarray:
        """(N, ...) prepared arrays -> (N,) uint64 hashes."""
        raise NotImplementedError

    def hash_image(self, im: Image.Image) -> int:
        return int(self.hash_batch(self.prepare(im)[None])[0])

    def hash_images(self, images: Iterable[Image.Image]) -> np.ndarray:
        arrays = [self.prepare(im) for im in images]
        if not arrays:
            return np.zeros(0, dtype=np.uint64)
        return self.hash_batch(np.stack(arrays))


def _gray_resized(im: Image.Image, side: int) -> np.ndarray:
    """``im.convert("L").resize((side, side), LANCZOS)`` as imagehash does -> (side, side) uint8."""
    gray = im if im.mode == "L" else im.convert("L")
    return np.asarray(gray.resize((side, side), Image.Resampling.LANCZOS))


def _dct_matrix(n: int, k: int) -> np.ndarray:
    """Rows 0..k-1 of the unnormalised DCT-II (scipy.fftpack.dct type 2): (k, n) float64."""
    rows = np.arange(k)[:, None]
    cols = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * rows * (2 * cols + 1) / (2 * n))


_TIE_DECIMALS = 6  # DCT coefficients (up to ~1e6) are compared at 1e-6: float noise is ~1e-9


class PHash(Hasher):
    """imagehash.phash: 32x32 grayscale, 2-D DCT, top-left 8x8 coefficients > their median."""

    name = "phash"
    default_conflict_threshold = 4
    default_threshold = 10
    version = 2  # 2: ties of the DCT coefficients rounded (below), no longer decided by float noise
    _HIGHFREQ = 4
    _D = _dct_matrix(_SIDE * _HIGHFREQ, _SIDE)  # (8, 32)

    def work_side(self, size: tuple[int, int]) -> int:
        return _SIDE * self._HIGHFREQ

    def hash_batch(self, arrays: np.ndarray) -> np.ndarray:
        x = np.asarray(arrays, dtype=np.float64)  # (N, 32, 32)
        low = self._D @ x @ self._D.T  # (8, 32) @ (N, 32, 32) @ (32, 8) -> (N, 8, 8)
        # Round away the float noise before comparing. A symmetric or flat image (pixel art often is) has
        # DCT coefficients that are exactly 0 or exactly equal; computed, they differ by ~1e-12, and which
        # of them lie "above" the median then depends on the BLAS kernel of the machine (imagehash has
        # the same flaw): ours and imagehash's, summing in another order, disagreed on such frames, and a
        # dedup test that passed on earlier machines failed on this one. Rounded, ties compare equal
        # everywhere; coefficients further apart than 1e-6 (every image without exact ties) hash as
        # imagehash hashes them.
        low = np.round(low, _TIE_DECIMALS)
        flat = low.reshape(len(x), HASH_BITS)  # (N, 64)
        med = np.median(flat, axis=1, keepdims=True)  # (N, 1)
        return pack_bits(flat > med)


class DHash(Hasher):
    """imagehash.dhash: 9x8 grayscale, each pixel brighter than its left neighbour."""

    name = "dhash"
    default_conflict_threshold = 4
    default_threshold = 10

    def work_side(self, size: tuple[int, int]) -> int:
        return _SIDE + 1

    def prepare(self, im: Image.Image) -> np.ndarray:
        gray = im if im.mode == "L" else im.convert("L")
        return np.asarray(gray.resize((_SIDE + 1, _SIDE), Image.Resampling.LANCZOS))  # (8, 9)

    def hash_batch(self, arrays: np.ndarray) -> np.ndarray:
        px = np.asarray(arrays)  # (N, 8, 9) uint8
        return pack_bits(px[:, :, 1:] > px[:, :, :-1])  # (N, 8, 8)


class AHash(Hasher):
    """imagehash.average_hash: 8x8 grayscale, each pixel brighter than the mean."""

    name = "ahash"
    default_conflict_threshold = 0
    default_threshold = 4

    def work_side(self, size: tuple[int, int]) -> int:
        return _SIDE

    def hash_batch(self, arrays: np.ndarray) -> np.ndarray:
        px = np.asarray(arrays)  # (N, 8, 8) uint8
        mean = px.reshape(len(px), -1).mean(axis=1)[:, None, None]  # (N, 1, 1)
        return pack_bits(px > mean)


class WHash(Hasher):
    """imagehash.whash (Haar, lowest LL removed): the 8x8 LL band of a Haar transform > its median.

    The Haar LL band at level L is the 2^L x 2^L block sums scaled by 2^-L, and removing the lowest
    LL only subtracts the image mean from every block, so neither changes which blocks lie above the
    median: the hash is "8x8 block means of the image resized to ``image_scale`` > their median",
    with imagehash's ``image_scale`` (the largest power of two <= the shorter side). With ``fast``
    the resize is capped at 64 px (near-identical block means, far less work on big images).
    """

    name = "whash"
    default_conflict_threshold = 0
    default_threshold = 4
    _FAST_CAP = 64

    def work_side(self, size: tuple[int, int]) -> int:
        scale = max(2 ** int(math.log2(max(1, min(size)))), _SIDE)
        return min(scale, self._FAST_CAP) if self.fast else scale

    def _reduce(self, pixels: np.ndarray) -> np.ndarray:
        s = pixels.shape[0] // _SIDE
        blocks = pixels.astype(np.float64).reshape(_SIDE, s, _SIDE, s)  # (8, s, 8, s)
        return blocks.mean(axis=(1, 3))  # (8, 8)

    def hash_batch(self, arrays: np.ndarray) -> np.ndarray:
        ll = np.asarray(arrays, dtype=np.float64).reshape(len(arrays), HASH_BITS)  # (N, 64)
        med = np.median(ll, axis=1, keepdims=True)
        return pack_bits(ll > med)


HASHERS: dict[str, type[Hasher]] = {h.name: h for h in (PHash, DHash, WHash, AHash)}
METHODS = tuple(HASHERS)


class ColourSignature(Hasher):
    """The colour signature as a :class:`Hasher`, so files are decoded, batched and cached the same way."""

    name: ClassVar[str] = COLOUR
    default_threshold: ClassVar[int] = DEFAULT_COLOUR_TOLERANCE
    default_conflict_threshold: ClassVar[int] = DEFAULT_COLOUR_TOLERANCE
    draft_mode: ClassVar[str] = "RGB"

    def work_side(self, size: tuple[int, int]) -> int:
        return COLOUR_SIDE

    def prepare(self, im: Image.Image) -> np.ndarray:
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        return np.asarray(rgb.resize((COLOUR_SIDE, COLOUR_SIDE), Image.Resampling.BOX))  # (32, 32, 3) uint8

    def hash_batch(self, arrays: np.ndarray) -> np.ndarray:
        return signatures(np.asarray(arrays))


def hash_version(method: str) -> int:
    """The version of a cached method's values (``phash`` ... or ``colour``)."""
    return ColourSignature.version if method == COLOUR else HASHERS[method].version


def get_hasher(method: str, *, fast: bool = True) -> Hasher:
    """``"phash" | "dhash" | "whash" | "ahash"`` -> a hasher instance."""
    try:
        return HASHERS[method](fast=fast)
    except KeyError:
        raise UserError(
            f"--hash {method!r} is not a hash method", hint=f"choose one of {', '.join(METHODS)}"
        ) from None


def cache_hasher(method: str, *, fast: bool = True) -> Hasher:
    """A hash method or the colour signature (``"colour"``): whatever the ledger's hash cache holds."""
    return ColourSignature(fast=fast) if method == COLOUR else get_hasher(method, fast=fast)


# -- files, in parallel ------------------------------------------------------------------------------


@dataclass
class HashResult:
    """Hashes of ``paths`` (uint64, 0 where it failed) and the failures as (index, error) rows."""

    values: np.ndarray
    ok: np.ndarray  # (N,) bool
    errors: list[tuple[int, str]] = field(default_factory=list)


def _hash_chunk(method: str, fast: bool, start: int, paths: Sequence[str]) -> tuple[int, np.ndarray, list]:
    """Worker: open + prepare each file, hash the batch. Failures are returned, never raised."""
    hasher = cache_hasher(method, fast=fast)
    arrays, good, errors = [], [], []
    for i, p in enumerate(paths):
        try:
            arrays.append(hasher.open(p))
            good.append(i)
        except Exception as exc:  # noqa: BLE001 - a bad file is a row, not a crash
            errors.append((start + i, f"{type(exc).__name__}: {exc}"))
    values = np.zeros(len(paths), dtype=np.uint64)
    if arrays:
        values[np.asarray(good)] = hasher.hash_batch(np.stack(arrays))
    ok = np.zeros(len(paths), dtype=bool)
    ok[good] = True
    return start, np.stack([values, ok.astype(np.uint64)]), errors


def hash_files(
    paths: Sequence[Path | str],
    method: str = "phash",
    *,
    workers: int = 0,
    fast: bool = True,
    chunk: int = 256,
    on_chunk: Callable[[int, np.ndarray, np.ndarray, list[tuple[int, str]]], None] | None = None,
) -> HashResult:
    """Hash image files with ``workers`` processes (0 = all cores, 1 = in this process).

    ``method`` is a hash method or ``"colour"`` (the colour signature, :mod:`pokedata.dedup.colour`).

    ``on_chunk(start, values, ok, errors)`` is called in this process as each chunk finishes (in
    completion order), so a caller can persist results as they arrive and resume after a kill.
    """
    cache_hasher(method)  # validate early
    n = len(paths)
    strs = [str(p) for p in paths]
    result = HashResult(np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=bool))
    workers = workers or os.cpu_count() or 1
    starts = range(0, n, chunk)

    def take(start: int, packed: np.ndarray, errors: list) -> None:
        values, ok = packed[0], packed[1].astype(bool)
        result.values[start : start + len(values)] = values
        result.ok[start : start + len(values)] = ok
        result.errors.extend(errors)
        if on_chunk is not None:
            on_chunk(start, values, ok, errors)

    if workers <= 1 or n <= chunk:
        for s in starts:
            take(*_hash_chunk(method, fast, s, strs[s : s + chunk]))
        return result

    with ProcessPoolExecutor(max_workers=min(workers, len(starts)), mp_context=_mp_context()) as pool:
        futures = [pool.submit(_hash_chunk, method, fast, s, strs[s : s + chunk]) for s in starts]
        for fut in as_completed(futures):
            take(*fut.result())
    result.errors.sort()
    return result


def _mp_context():
    """fork where available (fast start, no re-import); spawn elsewhere."""

    return mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
