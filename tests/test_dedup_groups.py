"""The survivor policy (largest area, then source priority, then lowest id) and components."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pokedata.dedup.groups import (
    DEFAULT_SOURCE_PRIORITY,
    Member,
    choose_survivor,
    components,
    duplicate_components,
    pick_survivors,
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


def test_components_and_duplicate_components():
    labels = components(6, np.array([[0, 1], [1, 2], [4, 5]]))
    assert labels[0] == labels[1] == labels[2] != labels[3]
    assert labels[4] == labels[5] != labels[0]


def test_duplicate_components_use_a_stricter_bar_across_classes():
    six = 0b111111
    hashes = np.array(
        [
            0,  # 0: class 0
            six,  # 1: class 0, 6 bits from image 0: same class, within 8 -> joined
            0xFF << 20,  # 2: class 1, 8 bits from image 0: across classes, above 2 -> not joined
            1,  # 3: class 1, 1 bit from image 0: a copy across classes -> joined (a conflict)
            2**64 - 1,  # 4: class 2, far from everything but pixel-identical to image 2 -> joined
            six,  # 5: class 1, the same hash as image 1 -> joined
            six << 40,  # 6: class 0, 6 bits from 0 but 12 from 1: joined through image 0
        ],
        dtype=np.uint64,
    )
    classes = np.array([0, 0, 1, 1, 2, 1, 0])
    sha = ["a", "b", "c", "d", "c", None, ""]
    comp, n_pairs = duplicate_components(hashes, classes, sha, threshold=8, cross_threshold=2)
    assert n_pairs > 0
    groups = {frozenset(np.nonzero(comp == c)[0].tolist()) for c in set(comp.tolist())}
    assert groups == {frozenset({0, 1, 3, 5, 6}), frozenset({2, 4})}
    # with the cross-class bar at the full threshold, image 2 joins image 0 as well
    comp, _ = duplicate_components(hashes, classes, sha, threshold=8, cross_threshold=8)
    assert len(set(comp.tolist())) == 1
    # threshold 0: identical hashes or identical pixels only
    comp, _ = duplicate_components(hashes, classes, sha, threshold=0, cross_threshold=0)
    groups = {frozenset(np.nonzero(comp == c)[0].tolist()) for c in set(comp.tolist())}
    assert groups == {frozenset({0}), frozenset({1, 5}), frozenset({2, 4}), frozenset({3}), frozenset({6})}
