"""All pairs of 64-bit hashes within Hamming distance ``k``: multi-index hashing in numpy.

One interface, two backends::

    pairs_within(hashes, k)        -> (m, 2) int64, i < j, sorted   # multi-index hashing
    pairs_within_brute(hashes, k)  -> the same, by blocked xor + popcount over all pairs (reference)

Multi-index hashing (Norouzi et al.) with the generalised pigeonhole principle: cut the 64 bits into
``m`` bands; if two hashes differ in at most ``k`` bits, some band differs in at most ``r = k // m``
bits. For each band, every hash probes the buckets of its band value XOR each mask of at most ``r``
bits (a direct-address table: counts + offsets over all 2^w band values, or a sorted array for wide
bands); the candidates found are checked on all 64 bits with ``np.bitwise_count``. A pair is kept only
in the first band where it collides, so no pair is reported twice and no ``np.unique`` over candidates
is needed. ``m`` is chosen by a cost model (probes + expected candidates for uniform hashes), e.g.
1M hashes at k=4 -> 3 bands of ~21 bits probed at radius 1; 100k hashes at k=10 -> 4 bands of 16 bits
at radius 2. Work is chunked so memory stays bounded (~ a few hundred MB at 1M hashes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

_BITS = 64
_DIRECT_MAX_BITS = 22  # band widths up to this use a direct-address table (2^22 x int64 = 32 MB)
_CHUNK_PROBES = 1 << 21  # (query, mask) probes per chunk
_CHUNK_CANDIDATES = 1 << 22  # candidate pairs materialised at once


def _as_uint64(hashes: np.ndarray) -> np.ndarray:
    h = np.asarray(hashes)
    if h.ndim != 1:
        raise ValueError(f"hashes must be 1-D, got shape {h.shape}")
    if h.dtype == np.int64:
        return h.view(np.uint64)
    if h.dtype != np.uint64:
        h = h.astype(np.uint64)
    return np.ascontiguousarray(h)


def _check_k(k: int) -> int:
    k = int(k)
    if not 0 <= k <= _BITS:
        raise ValueError(f"k must be in 0..64 Hamming bits, got {k}")
    return k


def _empty() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.int64)


def _sorted_pairs(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    if len(i) == 0:
        return _empty()
    order = np.lexsort((j, i))
    return np.stack([i[order], j[order]], axis=1).astype(np.int64, copy=False)


# -- brute force (reference) ------------------------------------------------------------------------------


def pairs_within_brute(hashes: np.ndarray, k: int, *, block: int = 2048) -> np.ndarray:
    """Every pair (i < j) with ``popcount(h[i] ^ h[j]) <= k``, by blocked all-pairs xor. O(n^2)."""
    h = _as_uint64(hashes)
    k = _check_k(k)
    n = len(h)
    out_i, out_j = [], []
    for s in range(0, n, block):
        rows = h[s : s + block]  # (b,)
        d = np.bitwise_count(rows[:, None] ^ h[None, s:])  # (b, n - s)
        bi, bj = np.nonzero(d <= k)
        gi, gj = bi + s, bj + s
        keep = gi < gj
        out_i.append(gi[keep])
        out_j.append(gj[keep])
    if not out_i:
        return _empty()
    return _sorted_pairs(np.concatenate(out_i), np.concatenate(out_j))


# -- multi-index hashing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Bands as (bit offset, width) and the probe radius per band."""

    bands: tuple[tuple[int, int], ...]
    radius: int

    @property
    def n_masks(self) -> int:
        w = max(wd for _, wd in self.bands)
        return sum(math.comb(w, i) for i in range(self.radius + 1))


def _bands(m: int) -> tuple[tuple[int, int], ...]:
    base, extra = divmod(_BITS, m)
    widths = [base + (1 if b < extra else 0) for b in range(m)]
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])
    return tuple((int(o), int(w)) for o, w in zip(offsets, widths, strict=True))


def plan_search(n: int, k: int) -> Plan:
    """Pick the number of bands minimising probes + expected candidates (uniform random hashes)."""
    k = _check_k(k)
    best: tuple[float, Plan] | None = None
    for m in range(1, min(k + 1, 16) + 1):
        bands = _bands(m)
        r = k // m
        w = min(wd for _, wd in bands)
        masks = sum(math.comb(bands[0][1], i) for i in range(r + 1))
        if masks > 4096:  # too many probes per hash, whatever n
            continue
        wide = w > _DIRECT_MAX_BITS
        probe_cost = n * m * masks * (4.0 + (math.log2(max(n, 2)) if wide else 0.0))
        cand_cost = 3.0 * n * n * m * masks / 2.0 ** (w + 1)
        cost = probe_cost + cand_cost
        if best is None or cost < best[0]:
            best = (cost, Plan(bands, r))
    if best is None:  # k so large that everything is a candidate: one band, checked exhaustively
        return Plan(((0, _BITS),), 0)
    return best[1]


def _masks(width: int, radius: int) -> np.ndarray:
    """All ``width``-bit integers with at most ``radius`` bits set, as int64 (0 first)."""
    out = [0]
    for r in range(1, radius + 1):
        for bits in combinations(range(width), r):
            out.append(sum(1 << b for b in bits))
    return np.asarray(out, dtype=np.int64)


class _Table:
    """Band values -> the indices holding them: counts + offsets (narrow bands) or a sorted array."""

    def __init__(self, keys: np.ndarray, width: int):
        self.order = np.argsort(keys, kind="stable")  # (n,) indices sorted by band value
        self.direct = width <= _DIRECT_MAX_BITS
        if self.direct:  # int32 tables: half the memory traffic of the random gathers
            counts = np.bincount(keys, minlength=1 << width)
            self.counts = counts.astype(np.int32)
            self.starts = (np.cumsum(counts) - counts).astype(np.int64)
        else:
            self.sorted_keys = keys[self.order]

    def lookup(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probe positions that hit, start in ``order``, count) for the probed band values ``q``."""
        if self.direct:
            count = self.counts[q]
            hit = np.flatnonzero(count)
            return hit, self.starts[q[hit]], count[hit].astype(np.int64)
        lo = np.searchsorted(self.sorted_keys, q, side="left")
        hi = np.searchsorted(self.sorted_keys, q, side="right")
        hit = np.flatnonzero(hi > lo)
        return hit, lo[hit], (hi - lo)[hit]


def pairs_within(hashes: np.ndarray, k: int, *, plan: Plan | None = None) -> np.ndarray:
    """Every pair (i < j) of ``hashes`` (uint64 or int64) within Hamming distance ``k``, sorted.

    Returns an (m, 2) int64 array. Identical to :func:`pairs_within_brute`, in far less time.
    """
    h = _as_uint64(hashes)
    k = _check_k(k)
    n = len(h)
    if n < 2:
        return _empty()
    if plan is None:
        plan = plan_search(n, k)
    if len(plan.bands) == 1 and plan.bands[0][1] == _BITS and plan.radius == 0 and k > 0:
        return pairs_within_brute(h, k)
    band_keys = [
        ((h >> np.uint64(o)) & np.uint64((1 << w) - 1)).astype(np.int32 if w <= 31 else np.int64)
        for o, w in plan.bands
    ]
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    for b, (_, width) in enumerate(plan.bands):
        keys = band_keys[b]
        table = _Table(keys, width)
        masks = _masks(width, plan.radius).astype(keys.dtype)
        step = max(1, _CHUNK_PROBES // len(masks))
        for s in range(0, n, step):
            q = (keys[s : s + step, None] ^ masks[None, :]).reshape(-1)  # (chunk * n_masks,) probed values
            hit, start, count = table.lookup(q)
            if len(hit) == 0:
                continue
            qrow = s + hit // len(masks)  # query index of each probe that hit a bucket
            for i, j in _expand(qrow, start, count, table.order):
                keep = i < j
                i, j = i[keep], j[keep]
                x = h[i] ^ h[j]
                keep = np.bitwise_count(x) <= k
                # report each pair only in the first band where it collides within the radius
                for o2, w2 in plan.bands[:b]:
                    if not keep.any():
                        break
                    sub = (x >> np.uint64(o2)) & np.uint64((1 << w2) - 1)
                    keep &= np.bitwise_count(sub) > plan.radius
                out_i.append(i[keep])
                out_j.append(j[keep])
    if not out_i:
        return _empty()
    return _sorted_pairs(np.concatenate(out_i), np.concatenate(out_j))


def _expand(qrow: np.ndarray, start: np.ndarray, count: np.ndarray, order: np.ndarray):
    """Yield (i, j) candidate arrays: each probe ``p`` pairs ``qrow[p]`` with ``order[start[p]:+count[p]]``.

    Split into pieces of at most ~_CHUNK_CANDIDATES pairs (a single huge bucket is still one piece).
    """
    cum = np.cumsum(count)
    total = int(cum[-1])
    cuts = np.searchsorted(cum, np.arange(_CHUNK_CANDIDATES, total, _CHUNK_CANDIDATES), side="left")
    bounds = [0, *sorted(set((cuts + 1).tolist())), len(count)]
    for a, z in zip(bounds[:-1], bounds[1:], strict=True):
        if a >= z:
            continue
        c = count[a:z]
        m = int(c.sum())
        i = np.repeat(qrow[a:z], c)
        # position inside each bucket: arange(m) minus the running start of its probe
        first = np.repeat(np.cumsum(c) - c, c)
        pos = np.repeat(start[a:z], c) + (np.arange(m) - first)
        yield i, order[pos]
