"""Exact and near-duplicate removal for a dataset directory (``poke clean --dedup``).

Public API::

    from pokedata.dedup import DedupConfig, run_dedup, reset_dedup, get_hasher, pairs_within

    summary = run_dedup(DedupConfig(data=Path("DIR"), method="phash", threshold=None, conflicts="drop"))
    console.print(summary.table())
    reset_dedup(Path("DIR"))          # clears dup_of, dup_group, dup_kind, conflict; returns rows changed

Near duplicates match in structure (perceptual hash within ``threshold``) and colour (colour signature
within ``colour_tolerance``, :mod:`pokedata.dedup.colour`); groups are bounded (every dropped image is
within the threshold of its own survivor, :func:`group_images`); conflicts are per pair.
A manifest keeps the images the ledger's kept rule keeps (:data:`pokedata.ledger.views.KEPT_RULES`:
clean, of a stored file, no ``dup_of``, no ``conflict``); ``dup_group`` (the survivor's ``images.id``, on the survivor and its duplicates) keeps a group inside
one split. See ``pokedata/dedup/run.py`` and ``docs/dedup.md``.
"""

from __future__ import annotations

from pokedata.dedup.colour import DEFAULT_COLOUR_TOLERANCE, colour_distance
from pokedata.dedup.groups import group_images, policy_order
from pokedata.dedup.hashing import METHODS, get_hasher, hash_files
from pokedata.dedup.run import CONFLICT_MODES, DedupConfig, DedupSummary, reset_dedup, run_dedup
from pokedata.dedup.search import pairs_within, pairs_within_brute

__all__ = [
    "CONFLICT_MODES",
    "DEFAULT_COLOUR_TOLERANCE",
    "METHODS",
    "DedupConfig",
    "DedupSummary",
    "colour_distance",
    "get_hasher",
    "group_images",
    "hash_files",
    "pairs_within",
    "pairs_within_brute",
    "policy_order",
    "reset_dedup",
    "run_dedup",
]
