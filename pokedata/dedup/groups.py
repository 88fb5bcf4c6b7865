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
    class_code: np.ndarray,
    pixel_sha: Sequence[str | None],
    threshold: int,
    cross_threshold: int,
) -> tuple[np.ndarray, int]:
    """Component label per image, and the number of near pairs among distinct hash values.

    Edges: same pixel digest (any class); hashes within ``cross_threshold`` bits (any class); hashes
    within ``threshold`` bits *inside one class*. A stricter bar across classes keeps chains of merely
    similar images (sprites on one white background, say) from joining two classes into one
    "conflict": a label conflict needs a copy (resized, recompressed), not a look-alike.

    Nodes are the N images, the K distinct (hash, class) pairs, the U distinct hash values and the S
    distinct digests, so identical hashes cost no pairs however many images share them::

        image -> its (hash, class) node -> its hash node      (identical hashes: any class)
        image -> its digest node                                (identical pixels: any class)
        hash node u -- hash node v       if d(u, v) <= cross_threshold
        (u, c) -- (v, c)                 if d(u, v) <= threshold, for each class c holding both
    """
    from pokedata.dedup.hashing import hamming
    from pokedata.dedup.search import pairs_within

    n = len(hashes)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    cross_threshold = min(cross_threshold, threshold)
    uniq, inv = np.unique(np.asarray(hashes, dtype=np.uint64), return_inverse=True)
    inv = inv.reshape(-1).astype(np.int64)
    class_code = np.asarray(class_code, dtype=np.int64)
    n_cls = int(class_code.max()) + 1
    vc_key = inv * n_cls + class_code  # (N,) one key per (hash value, class)
    vc_keys, vc_of_image = np.unique(vc_key, return_inverse=True)
    vc_of_image = vc_of_image.reshape(-1)
    k_nodes, u_nodes = len(vc_keys), len(uniq)
    sha_codes = _codes(pixel_sha)
    vc0, v0 = n, n + k_nodes
    s0 = v0 + u_nodes
    img = np.arange(n, dtype=np.int64)
    has_sha = sha_codes >= 0
    edges = [
        np.stack([img, vc0 + vc_of_image], axis=1),
        np.stack([vc0 + np.arange(k_nodes), v0 + vc_keys // n_cls], axis=1),
        np.stack([img[has_sha], s0 + sha_codes[has_sha]], axis=1),
    ]
    pairs = pairs_within(uniq, threshold)
    if len(pairs):
        d = hamming(uniq[pairs[:, 0]], uniq[pairs[:, 1]])
        close = d <= cross_threshold
        edges.append(v0 + pairs[close])
        edges.append(vc0 + _same_class_links(pairs[~close], vc_keys, n_cls))
    n_sha = int(sha_codes.max()) + 1 if has_sha.any() else 0
    labels = components(s0 + n_sha, np.concatenate(edges))
    return labels[:n], len(pairs)


def _same_class_links(pairs: np.ndarray, vc_keys: np.ndarray, n_cls: int) -> np.ndarray:
    """(u, v) hash-value pairs -> (node, node) links between (u, c) and (v, c) for shared classes c."""
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # the classes present for each value u: a contiguous run of the sorted (value, class) keys
    values = vc_keys // n_cls
    lo = np.searchsorted(values, pairs[:, 0], side="left")
    cnt = np.searchsorted(values, pairs[:, 0], side="right") - lo
    rep = np.repeat(np.arange(len(pairs)), cnt)
    first = np.repeat(np.cumsum(cnt) - cnt, cnt)
    node_u = np.repeat(lo, cnt) + (np.arange(int(cnt.sum())) - first)  # (u, c) node indices
    want = pairs[rep, 1] * n_cls + vc_keys[node_u] % n_cls  # key of (v, c)
    node_v = np.searchsorted(vc_keys, want)
    node_v = np.minimum(node_v, len(vc_keys) - 1)
    found = vc_keys[node_v] == want
    return np.stack([node_u[found], node_v[found]], axis=1).astype(np.int64)


def _codes(values: Sequence[str | None]) -> np.ndarray:
    """Dense integer codes of the non-empty values; -1 for None / ''."""
    table: dict[str, int] = {}
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if v:
            out[i] = table.setdefault(v, len(table))
    return out
