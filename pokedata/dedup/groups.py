"""Connected components of duplicate edges, and which copy survives.

The survivor policy is one pure, explicitly ordered function: **largest area first, then the
preferred source, then the lowest image id**. :func:`survivor_key` states it for one image;
:func:`pick_survivors` applies exactly the same order to whole arrays (a lexsort), and a test
checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_SOURCE_PRIORITY: tuple[str, ...] = ("folder", "danbooru", "danbooru-dump", "ddg")
"""Preferred first: a user's own files, then Danbooru (curated tags), its dumps, then web search."""


@dataclass(frozen=True)
class Member:
    """What the survivor policy looks at."""

    image_id: int
    width: int
    height: int
    source: str


def source_rank(source: str, priority: Sequence[str] = DEFAULT_SOURCE_PRIORITY) -> int:
    """Position of ``source`` in ``priority`` (unknown sources rank after every listed one)."""
    try:
        return list(priority).index(source)
    except ValueError:
        return len(priority)


def survivor_key(m: Member, priority: Sequence[str] = DEFAULT_SOURCE_PRIORITY) -> tuple[int, int, int]:
    """Sort key: the smallest key survives. (largest area, then source priority, then lowest id)."""
    return (-(m.width * m.height), source_rank(m.source, priority), m.image_id)


def choose_survivor(members: Sequence[Member], priority: Sequence[str] = DEFAULT_SOURCE_PRIORITY) -> Member:
    """The member that survives (pure: depends only on the members, not on their order)."""
    if not members:
        raise ValueError("choose_survivor needs at least one member")
    return min(members, key=lambda m: survivor_key(m, priority))


def pick_survivors(group: np.ndarray, area: np.ndarray, rank: np.ndarray, image_id: np.ndarray) -> np.ndarray:
    """Vectorised :func:`survivor_key`: for each row, the row index of its group's survivor.

    ``group``, ``area``, ``rank`` (source rank) and ``image_id`` are aligned (N,) arrays.
    """
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((image_id, rank, -np.asarray(area, dtype=np.int64), group))  # last key primary
    g_sorted = group[order]
    first = np.ones(n, dtype=bool)
    first[1:] = g_sorted[1:] != g_sorted[:-1]
    head = order[first]  # survivor row of each group, groups in ascending order
    group_ids = g_sorted[first]
    return head[np.searchsorted(group_ids, group)]


def components(n_nodes: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label (0..c-1) of each node, given (m, 2) int edges."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix(
        (np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes)
    ).tocsr()
    _, labels = connected_components(graph, directed=True, connection="weak")
    return labels.astype(np.int64)


def duplicate_components(
    hashes: np.ndarray,
    pixel_sha: Sequence[str | None],
    pairs_of_unique: np.ndarray,
    unique_inverse: np.ndarray,
) -> np.ndarray:
    """Component label per image over exact (same pixel sha256) and near (hash pair) edges.

    Nodes are the N images, the U distinct hash values and the S distinct pixel digests: each image
    is joined to its hash node and its digest node, and near pairs join hash nodes. Identical hashes
    therefore cost no pairs at all, however many images share them.
    """
    n = len(hashes)
    n_unique = int(unique_inverse.max()) + 1 if n else 0
    sha_codes = _codes(pixel_sha)
    n_sha = int(sha_codes.max()) + 1 if (sha_codes >= 0).any() else 0
    img = np.arange(n, dtype=np.int64)
    edges = [np.stack([img, n + unique_inverse], axis=1)]
    has_sha = sha_codes >= 0
    edges.append(np.stack([img[has_sha], n + n_unique + sha_codes[has_sha]], axis=1))
    if len(pairs_of_unique):
        edges.append(n + np.asarray(pairs_of_unique, dtype=np.int64))
    labels = components(n + n_unique + n_sha, np.concatenate(edges))
    return labels[:n]


def _codes(values: Sequence[str | None]) -> np.ndarray:
    """Dense integer codes of the non-empty values; -1 for None / ''."""
    table: dict[str, int] = {}
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if v:
            out[i] = table.setdefault(v, len(table))
    return out
