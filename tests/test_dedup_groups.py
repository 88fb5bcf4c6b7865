"""The survivor policy, bounded groups (leader clustering: chains, colour) and per-pair conflicts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pokedata.dedup.groups import (
    DEFAULT_SOURCE_PRIORITY,
    Member,
    choose_survivor,
    components,
    group_images,
    leader_clusters,
    pick_survivors,
    policy_order,
    source_rank,
    survivor_key,
)


def test_largest_area_wins_over_source_and_id():
    small_folder = Member(image_id=1, width=100, height=100, source="folder")
    big_ddg = Member(image_id=9, width=200, height=100, source="ddg")
    assert choose_survivor([small_folder, big_ddg]) == big_ddg


def test_then_source_priority_then_lowest_id():
    a = Member(image_id=5, width=64, height=64, source="ddg")
    b = Member(image_id=7, width=64, height=64, source="danbooru")
    c = Member(image_id=3, width=64, height=64, source="ddg")
    assert choose_survivor([a, b, c]) == b  # same area: danbooru before ddg
    assert choose_survivor([a, c]) == c  # same area and source: lowest id
    assert choose_survivor([c, a]) == c  # order of the input does not matter


def test_area_not_aspect_and_unknown_sources_rank_last():
    wide = Member(image_id=1, width=400, height=100, source="ddg")
    square = Member(image_id=2, width=200, height=200, source="ddg")
    assert choose_survivor([wide, square]) == wide.__class__(1, 400, 100, "ddg")  # equal area: lowest id
    assert source_rank("something-new") == len(DEFAULT_SOURCE_PRIORITY)
    assert source_rank("folder") == 0
    custom = ("ddg", "folder")
    x = Member(image_id=1, width=10, height=10, source="folder")
    y = Member(image_id=2, width=10, height=10, source="ddg")
    assert choose_survivor([x, y], custom) == y
    assert survivor_key(x) < survivor_key(y)


members = st.lists(
    st.builds(
        Member,
        image_id=st.integers(1, 10_000),
        width=st.sampled_from([8, 16, 32, 64]),
        height=st.sampled_from([8, 16, 32, 64]),
        source=st.sampled_from(["folder", "danbooru", "danbooru-dump", "ddg", "other"]),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda m: m.image_id,
)


@settings(max_examples=80, deadline=None)
@given(members=members, n_groups=st.integers(1, 4))
def test_vectorised_policy_equals_the_pure_function(members, n_groups):
    group = np.array([m.image_id % n_groups for m in members])
    area = np.array([m.width * m.height for m in members])
    rank = np.array([source_rank(m.source) for m in members])
    ids = np.array([m.image_id for m in members])
    surv = pick_survivors(group, area, rank, ids)
    for g in set(group.tolist()):
        expected = choose_survivor([m for m, gg in zip(members, group, strict=True) if gg == g])
        rows = np.nonzero(group == g)[0]
        assert {int(ids[surv[r]]) for r in rows} == {expected.image_id}


@settings(max_examples=60, deadline=None)
@given(members=members)
def test_policy_order_equals_the_pure_function(members):
    area = np.array([m.width * m.height for m in members])
    rank = np.array([source_rank(m.source) for m in members])
    ids = np.array([m.image_id for m in members])
    position = policy_order(area, rank, ids)
    expected = sorted(members, key=survivor_key)
    assert [int(ids[r]) for r in np.argsort(position)] == [m.image_id for m in expected]


def test_components():
    labels = components(6, np.array([[0, 1], [1, 2], [4, 5]]))
    assert labels[0] == labels[1] == labels[2] != labels[3]
    assert labels[4] == labels[5] != labels[0]


def _bits(*positions: int) -> int:
    return sum(1 << p for p in positions)


def _chain(n: int, step: int) -> np.ndarray:
    """Hashes h0..h(n-1), each ``step`` fresh bits away from the previous: a path, ends far apart."""
    out, h = [], 0
    for i in range(n):
        out.append(h)
        h ^= _bits(*range(i * step, (i + 1) * step))
    return np.array(out, dtype=np.uint64)


def _group(hashes, classes=None, colours=None, position=None, **kw):
    n = len(hashes)
    kw.setdefault("threshold", 8)
    kw.setdefault("conflict_threshold", 2)
    kw.setdefault("colour_tolerance", 40 if colours is not None else None)
    return group_images(
        np.asarray(hashes, dtype=np.uint64),
        None if colours is None else np.asarray(colours, dtype=np.uint64),
        np.zeros(n, dtype=np.int64) if classes is None else np.asarray(classes),
        np.arange(n) if position is None else np.asarray(position),
        **kw,
    )


def test_a_chain_is_cut_into_bounded_groups():
    from pokedata.dedup.hashing import hamming

    h = _chain(9, 5)  # neighbours 5 bits apart, h0..h8 40 bits apart; threshold 8
    g = _group(h)
    d = hamming(h, h[g.survivor])
    assert (d <= 8).all()  # every image within the threshold of its own survivor
    assert g.survivor[0] == 0 and g.survivor[-1] != 0  # the far end has a survivor of its own
    # keep-best order decides: 0 leads and claims 1; 2 leads and claims 3; ...
    assert g.survivor.tolist() == [0, 0, 2, 2, 4, 4, 6, 6, 8]
    # another keep-best order (the middle image is best): it claims both neighbours only
    g = _group(h, position=[4, 5, 6, 7, 0, 8, 1, 2, 3])
    assert g.survivor[3] == g.survivor[5] == 4 and g.survivor[0] != 4 and g.survivor[8] != 4
    assert (hamming(h, h[g.survivor]) <= 8).all()


def test_chain_ends_never_share_a_survivor_unless_both_are_near_it():
    from pokedata.dedup.hashing import hamming

    rng = np.random.default_rng(3)
    for trial in range(30):
        h = _chain(int(rng.integers(3, 12)), int(rng.integers(2, 7)))
        g = _group(h, position=rng.permutation(len(h)))
        s = g.survivor
        assert (hamming(h, h[s]) <= 8).all(), trial
        if s[0] == s[-1]:
            assert hamming(h[0], h[s[0]]) <= 8 and hamming(h[-1], h[s[0]]) <= 8
        kept = np.unique(s)
        for a in kept:  # two kept images of one class are never within the threshold
            assert all(hamming(h[a], h[b]) > 8 for b in kept if b != a)


def test_leader_clusters_respects_inactive_nodes():
    pairs = np.array([[0, 1], [1, 2]])
    assert leader_clusters(3, pairs, np.array([1, 0, 2])).tolist() == [1, 1, 1]
    assert leader_clusters(3, pairs, np.array([0, 1, 2]), active=np.array([True, False, True])).tolist() == [
        0,
        -1,
        2,
    ]


def test_palette_swaps_stay_apart_unless_the_colour_test_is_off():
    from pokedata.dedup.colour import signatures

    base = np.full((32, 32, 3), 255, dtype=np.uint8)
    base[8:24, 4:20] = (210, 60, 40)  # a red body and a yellow patch on white
    base[12:20, 20:28] = (230, 200, 40)
    swapped = base[..., [2, 0, 1]]  # the palette permuted: a blue body, a green patch
    colours = signatures(np.stack([base, base, swapped]))
    h = np.array([7, 7 ^ 1, 7], dtype=np.uint64)  # the perceptual hash cannot tell them apart
    g = _group(h, colours=colours)
    assert g.survivor.tolist() == [0, 0, 2]  # the recolour is kept; the same-colour copy folds
    g = _group(h, colours=None)
    assert g.survivor.tolist() == [0, 0, 0]  # --ignore-colour: structure alone


def test_conflicts_are_per_pair_never_whole_groups():
    # class 0: a chain 0-1-2-3 (5 bits per step); class 1: image 4, a copy of image 0 (1 bit);
    # class 1: images 5, 6 far from everything in class 0
    h = np.concatenate([_chain(4, 5), [1, _bits(*range(40, 50)), _bits(*range(40, 50), 60)]]).astype(
        np.uint64
    )
    classes = [0, 0, 0, 0, 1, 1, 1]
    g = _group(h, classes=classes, conflicts="drop")
    # the pair (0, 4) marks 0 and 4 and what lies within the threshold of them in their own class (1);
    # 2 and 3 (farther along the chain) and the rest of class 1 are untouched
    assert g.conflict.tolist() == [True, True, False, False, True, False, False]
    assert g.conflict_pairs.tolist() == [[0, 4]]
    assert sorted(g.conflict_marked[0].tolist()) == [0, 1, 4]
    assert g.survivor[2] == 2 and g.survivor[3] == 2  # the rest of the class still folds, bounded
    assert g.survivor[6] == 5
    # keep-first: only the side ranked lower (4: later in keep-best order) and its neighbours
    g = _group(h, classes=classes, conflicts="keep-first")
    assert g.conflict.tolist() == [False, False, False, False, True, False, False]
    assert g.survivor[:4].tolist() == [0, 0, 2, 2]
    # report: nothing marked, the pair still listed
    g = _group(h, classes=classes, conflicts="report")
    assert not g.conflict.any() and g.conflict_pairs.tolist() == [[0, 4]]
    # across classes only within the conflict threshold: a look-alike at 5 bits is no conflict
    g = _group(np.array([0, 0b11111], dtype=np.uint64), classes=[0, 1])
    assert not g.conflict.any() and len(g.conflict_pairs) == 0 and g.survivor.tolist() == [0, 1]


def test_identical_hashes_many_classes_and_empty():
    h = np.zeros(6, dtype=np.uint64)
    g = _group(h, classes=[0, 0, 0, 1, 1, 2], conflicts="report")
    assert g.survivor.tolist() == [0, 0, 0, 3, 3, 5]  # one survivor per class
    assert len(g.conflict_pairs) == 3  # (0,1), (0,2), (1,2) at key level
    g = _group(np.zeros(0, dtype=np.uint64))
    assert len(g.survivor) == 0


def _reference(h, colours, classes, position, t, tol):
    """Leader clustering written the obvious way, image by image (report mode: nothing marked)."""
    from pokedata.dedup.colour import colour_distance
    from pokedata.dedup.hashing import hamming

    n = len(h)
    survivor = [-1] * n
    for i in sorted(range(n), key=lambda r: position[r]):
        if survivor[i] >= 0:
            continue
        survivor[i] = i
        for j in range(n):
            near = classes[j] == classes[i] and hamming(h[i], h[j]) <= t
            if colours is not None:
                near = near and colour_distance(colours[i], colours[j]) <= tol
            if survivor[j] < 0 and near:
                survivor[j] = i
    return survivor


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    t=st.integers(0, 12),
    use_colour=st.booleans(),
)
def test_group_images_equals_the_obvious_leader_clustering(seed, n, t, use_colour):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, 4).astype(np.uint64)
    flips = np.zeros(n, dtype=np.uint64)
    for _ in range(int(rng.integers(0, 8))):  # a few bits flipped per image: chains and near pairs
        flips ^= np.left_shift(np.uint64(1), rng.integers(0, 64, n).astype(np.uint64)) * (rng.random(n) < 0.5)
    h = base[rng.integers(0, 4, n)] ^ flips
    classes = rng.integers(0, 3, n)
    colours = rng.integers(0, 40, (n, 8)).astype(np.uint8).view(">u8").reshape(-1).astype(np.uint64)
    colours = colours if use_colour else None
    position = rng.permutation(n)
    g = _group(h, classes=classes, colours=colours, position=position, threshold=t, conflicts="report")
    assert g.survivor.tolist() == _reference(h, colours, classes, position, t, 40)
