"""Which copy survives, and bounded duplicate groups (leader clustering in keep-best order).

The survivor policy is one pure, explicitly ordered function: **largest area first, then the
preferred source, then the lowest image id**. :func:`survivor_key` states it for one image;
:func:`pick_survivors` and :func:`policy_order` apply exactly the same order to whole arrays (a
lexsort), and a test checks they agree.

Grouping (:func:`group_images`) is **leader clustering**, not connected components: images are taken
in keep-best order; an image not yet claimed is kept (a leader) and claims every unclaimed image of its
class that is *near it* (perceptual hash within the threshold and colour signature within the
tolerance, measured between the two images directly). So every dropped image lies within the
threshold of its own survivor, and a chain of frames, each close to the next, cannot drag its far end
into a group. Two kept images of one class are never near each other (the earlier would have claimed
the later). The result is deterministic: it depends only on the images, not on their order.

Label conflicts are per pair: two images of different classes within the (stricter) conflict
threshold and the colour tolerance. ``drop`` marks both images and the images of their own class near
them (what is within the threshold of them, one hop, never a whole chain); ``keep-first`` marks only
the worse side of each pair (by the survivor policy) and the images near it; ``report`` marks nothing.
Marked images take no part in the clustering, so every dropped duplicate still has a kept survivor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pokedata.dedup.colour import colour_distance
from pokedata.dedup.config import DEFAULT_SOURCE_PRIORITY
from pokedata.dedup.hashing import hamming
from pokedata.dedup.search import pairs_within


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


def policy_order(area: np.ndarray, rank: np.ndarray, image_id: np.ndarray) -> np.ndarray:
    """(N,) position of each image in keep-best order (0 = the best), the order of :func:`survivor_key`."""
    order = np.lexsort((image_id, rank, -np.asarray(area, dtype=np.int64)))  # last key primary
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return position


def components(n_nodes: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label (0..c-1) of each node, given (m, 2) int edges."""

    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix(
        (np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes)
    ).tocsr()
    _, labels = connected_components(graph, directed=True, connection="weak")
    return labels.astype(np.int64)


@dataclass
class Keys:
    """Distinct (hash, colour, class) triples: images sharing one are identical as far as dedup can tell.

    Sorted by hash value, so the keys of one hash value are a contiguous run.
    """

    of_image: np.ndarray  # (N,) key index of each image
    hash: np.ndarray  # (K,) uint64
    colour: np.ndarray  # (K,) uint64 (0 when the colour test is off)
    cls: np.ndarray  # (K,) int64 class code
    best: np.ndarray  # (K,) row index of the key's best image (smallest policy position)

    @classmethod
    def build(
        cls, hashes: np.ndarray, colours: np.ndarray | None, class_code: np.ndarray, position: np.ndarray
    ) -> Keys:
        n = len(hashes)
        h = np.asarray(hashes, dtype=np.uint64)
        c = np.zeros(n, dtype=np.uint64) if colours is None else np.asarray(colours, dtype=np.uint64)
        k_cls = np.asarray(class_code, dtype=np.int64)
        # sort by hash as unsigned (runs of one value contiguous, ordered like pairs_within's input); only
        # rows whose hash occurs more than once need the (colour, class) tie-break: a lexsort of those
        order = np.argsort(h, kind="stable")
        hs = h[order]
        tied = np.zeros(n, dtype=bool)
        if n > 1:
            eq = hs[1:] == hs[:-1]
            tied[1:] |= eq
            tied[:-1] |= eq
        slots = np.nonzero(tied)[0]
        if len(slots):
            sub = order[slots]
            order[slots] = sub[np.lexsort((k_cls[sub], c[sub], h[sub]))]
        hs, cs, ks = h[order], c[order], k_cls[order]
        new = np.ones(n, dtype=bool)
        new[1:] = (hs[1:] != hs[:-1]) | (cs[1:] != cs[:-1]) | (ks[1:] != ks[:-1])
        key_sorted = np.cumsum(new) - 1
        of_image = np.empty(n, dtype=np.int64)
        of_image[order] = key_sorted
        k = int(key_sorted[-1]) + 1 if n else 0
        best_pos = np.full(k, np.iinfo(np.int64).max)
        np.minimum.at(best_pos, of_image, position)
        row_at = np.empty(n, dtype=np.int64)
        row_at[position] = np.arange(n)
        return cls(
            of_image=of_image,
            hash=hs[new],
            colour=cs[new],
            cls=ks[new],
            best=row_at[best_pos] if k else np.zeros(0, dtype=np.int64),
        )


def key_pairs(keys: Keys, threshold: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Every key pair (a < b) whose hashes lie within ``threshold``: ((m, 2) pairs, (m,) Hamming bits,
    number of hash-value pairs).

    Pairs are found among the distinct hash values (multi-index search, once), then expanded to the
    keys holding those values, including pairs of keys sharing one hash value (another colour or class).
    """

    if len(keys.hash) < 2:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    values, start, count = np.unique(keys.hash, return_index=True, return_counts=True)
    vpairs = pairs_within(values, threshold)
    multi = np.nonzero(count > 1)[0]
    vp = np.concatenate([vpairs, np.stack([multi, multi], axis=1)]).astype(np.int64)
    a, b = _expand(vp, start, count)
    keep = a < b
    pairs = np.stack([a[keep], b[keep]], axis=1)
    return pairs, hamming(keys.hash[pairs[:, 0]], keys.hash[pairs[:, 1]]), len(vpairs)


def colour_close(keys: Keys, pairs: np.ndarray, colour_tolerance: int | None) -> np.ndarray:
    """(m,) bool: the two keys' colour signatures lie within the tolerance (all True when it is None)."""
    if colour_tolerance is None or len(pairs) == 0:
        return np.ones(len(pairs), dtype=bool)

    return colour_distance(keys.colour[pairs[:, 0]], keys.colour[pairs[:, 1]]) <= colour_tolerance


def _expand(vp: np.ndarray, start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value pairs (p, q) -> every (key of p, key of q), keys of a value being ``start..start+count``."""
    cp, cq = count[vp[:, 0]], count[vp[:, 1]]
    sizes = cp * cq
    total = int(sizes.sum())
    rep = np.repeat(np.arange(len(vp)), sizes)
    local = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    a = start[vp[rep, 0]] + local // cq[rep]
    b = start[vp[rep, 1]] + local % cq[rep]
    return a.astype(np.int64), b.astype(np.int64)


def adjacency(n: int, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric CSR (indptr, indices) of an undirected pair list over ``n`` nodes."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.argsort(src, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst[order]


def leader_clusters(
    n: int, pairs: np.ndarray, rank: np.ndarray, active: np.ndarray | None = None
) -> np.ndarray:
    """Leader clustering: (n,) the leader of each node (itself when it leads), -1 for inactive nodes.

    Nodes are visited by ascending ``rank`` (unique); a node no leader has claimed leads and claims
    every unclaimed active neighbour. A claimed node is always a direct neighbour of its leader.
    """
    active = np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs = pairs[active[pairs[:, 0]] & active[pairs[:, 1]]]
    leader = np.where(active, np.arange(n), -1)
    if len(pairs) == 0:
        return leader
    indptr, indices = adjacency(n, pairs)
    free = active.copy()
    connected = np.nonzero(indptr[1:] > indptr[:-1])[0]
    for u in connected[np.argsort(rank[connected], kind="stable")].tolist():
        if not free[u]:
            continue
        free[u] = False
        nb = indices[indptr[u] : indptr[u + 1]]
        nb = nb[free[nb]]
        leader[nb] = u
        free[nb] = False
    return leader


@dataclass
class Grouping:
    """What :func:`group_images` decides, per image row (N) and per conflict pair (m)."""

    survivor: np.ndarray  # (N,) row of the kept image this one duplicates; itself when kept or marked
    conflict: np.ndarray  # (N,) bool: marked as a label conflict
    conflict_pairs: np.ndarray  # (m, 2) rows: the best image of each side of a cross-class pair
    conflict_marked: list[np.ndarray]  # (m,) rows marked because of each pair
    near_pairs: int  # near pairs among distinct hash values (same class)


def group_images(
    hashes: np.ndarray,
    colours: np.ndarray | None,
    class_code: np.ndarray,
    position: np.ndarray,
    *,
    threshold: int,
    conflict_threshold: int,
    colour_tolerance: int | None,
    conflicts: str = "drop",
) -> Grouping:
    """Bounded duplicate groups and per-pair conflicts (see the module docstring).

    ``hashes`` (N,) uint64, ``colours`` (N,) uint64 or None (colour test off), ``class_code`` (N,) int,
    ``position`` (N,) unique keep-best rank (:func:`policy_order`).
    """
    n = len(hashes)
    if n == 0:
        none = np.zeros(0, dtype=np.int64)
        return Grouping(none, np.zeros(0, dtype=bool), np.zeros((0, 2), dtype=np.int64), [], 0)
    position = np.asarray(position, dtype=np.int64)
    keys = Keys.build(hashes, colours, class_code, position)
    k = len(keys.hash)
    key_rank = position[keys.best]  # (K,) keys in keep-best order of their best image
    pairs, dist, n_pairs = key_pairs(keys, threshold)
    one_class = keys.cls[pairs[:, 0]] == keys.cls[pairs[:, 1]]
    candidates = one_class | (dist <= min(conflict_threshold, threshold))
    near = candidates.copy()
    near[candidates] = colour_close(
        keys, pairs[candidates], colour_tolerance if colours is not None else None
    )
    same, cross = pairs[near & one_class], pairs[near & ~one_class]

    marked = np.zeros(k, dtype=bool)
    marked_by: list[np.ndarray] = []
    if len(cross) and conflicts != "report":
        indptr, indices = adjacency(k, same)
        for a, b in cross.tolist():
            worse = b if key_rank[a] < key_rank[b] else a
            sides = [worse] if conflicts == "keep-first" else [a, b]
            hit = np.concatenate([np.asarray(sides), *(indices[indptr[s] : indptr[s + 1]] for s in sides)])
            marked[hit] = True
            marked_by.append(hit)
    else:
        marked_by = [np.zeros(0, dtype=np.int64) for _ in range(len(cross))]

    leader = leader_clusters(k, same, key_rank, active=~marked)
    key_survivor = np.where(leader >= 0, keys.best[np.maximum(leader, 0)], -1)  # (K,) row kept for a key
    rows = np.arange(n)
    survivor = key_survivor[keys.of_image]
    conflict = marked[keys.of_image]
    survivor = np.where(conflict, rows, survivor)
    by_key = np.argsort(keys.of_image, kind="stable")  # image rows grouped by key
    key_start = np.searchsorted(keys.of_image[by_key], np.arange(k + 1))
    image_marked = [
        np.sort(
            np.concatenate(
                [by_key[key_start[u] : key_start[u + 1]] for u in np.unique(m).tolist()] or [rows[:0]]
            )
        )
        for m in marked_by
    ]
    return Grouping(
        survivor=survivor,
        conflict=conflict,
        conflict_pairs=keys.best[cross] if len(cross) else np.zeros((0, 2), dtype=np.int64),
        conflict_marked=image_marked,
        near_pairs=n_pairs,
    )
