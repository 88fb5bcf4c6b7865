"""pairs_within (multi-index hashing) returns exactly what the brute-force reference returns."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokedata.dedup.search import Plan, pairs_within, pairs_within_brute, plan_search


def planted(n: int, n_near: int, max_flips: int, seed: int) -> np.ndarray:
    """n random 64-bit hashes where n_near of them are copies of others with 0..max_flips bits flipped."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    src = rng.integers(0, n, n_near)
    dst = rng.choice(n, n_near, replace=False)
    for s, d in zip(src, dst, strict=True):
        v = int(h[s])
        for b in rng.choice(64, int(rng.integers(0, max_flips + 1)), replace=False):
            v ^= 1 << int(b)
        h[d] = v
    return h


@pytest.mark.parametrize("k", [0, 1, 2, 4, 6, 10, 12])
def test_matches_brute_force_with_planted_pairs(k):
    h = planted(4000, 1500, max_flips=k + 3, seed=k)
    ours = pairs_within(h, k)
    ref = pairs_within_brute(h, k)
    assert len(ref) > 100  # the planted pairs are there to be found
    np.testing.assert_array_equal(ours, ref)
    assert ours.dtype == np.int64 and ours.shape[1] == 2
    assert (ours[:, 0] < ours[:, 1]).all()


@pytest.mark.parametrize(("m", "k"), [(1, 0), (2, 0), (2, 3), (3, 7), (4, 7), (5, 7), (8, 7), (9, 9)])
def test_every_band_layout_is_exact(m, k):
    from pokedata.dedup.search import _bands

    h = planted(1500, 600, max_flips=k + 2, seed=100 + m)
    plan = Plan(_bands(m), k // m)
    np.testing.assert_array_equal(pairs_within(h, k, plan=plan), pairs_within_brute(h, k))


def test_many_identical_hashes_and_int64_input():
    rng = np.random.default_rng(3)
    h = np.concatenate([np.full(60, 12345, dtype=np.uint64), rng.integers(0, 2**63, 200, dtype=np.uint64)])
    rng.shuffle(h)
    for k in (0, 3):
        ref = pairs_within_brute(h, k)
        np.testing.assert_array_equal(pairs_within(h, k), ref)
        np.testing.assert_array_equal(pairs_within(h.view(np.int64), k), ref)
    assert len(pairs_within(h, 0)) >= 60 * 59 // 2


def test_plan_uses_bands_for_the_scale_goals():
    assert plan_search(1_000_000, 4).radius <= 1 and len(plan_search(1_000_000, 4).bands) >= 3
    p = plan_search(100_000, 10)
    assert len(p.bands) == 4 and p.radius == 2
    assert sum(w for _, w in p.bands) == 64


def test_edge_cases():
    assert pairs_within(np.zeros(0, dtype=np.uint64), 3).shape == (0, 2)
    assert pairs_within(np.ones(1, dtype=np.uint64), 3).shape == (0, 2)
    np.testing.assert_array_equal(pairs_within(np.array([0, 2**64 - 1], dtype=np.uint64), 64), [[0, 1]])
    with pytest.raises(ValueError, match="k must be"):
        pairs_within(np.zeros(3, dtype=np.uint64), 65)
    with pytest.raises(ValueError, match="1-D"):
        pairs_within(np.zeros((2, 2), dtype=np.uint64), 1)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=60),
    flips=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 2**64 - 1)), max_size=40),
    k=st.integers(0, 16),
)
def test_hypothesis_small_sets(values, flips, k):
    h = np.array(values, dtype=np.uint64)
    if len(h):  # near copies: xor a random source with a sparse mask
        extra = [int(h[i % len(h)]) ^ (m & (m >> 7) & (m >> 13)) for i, m in flips]
        h = np.concatenate([h, np.array(extra, dtype=np.uint64)])
    np.testing.assert_array_equal(pairs_within(h, k), pairs_within_brute(h, k))
