"""Exact and near-duplicate removal for a dataset directory (``poke clean --dedup``).

Public API::

    from pokedata.dedup import DedupConfig, run_dedup, reset_dedup, get_hasher, pairs_within

    summary = run_dedup(DedupConfig(data=Path("DIR"), method="phash", threshold=None, conflicts="drop"))
    console.print(summary.table())
    reset_dedup(Path("DIR"))          # clears dup_of, dup_group, dup_kind, conflict; returns rows changed

A manifest keeps an image when ``images.status = 'done' AND dup_of IS NULL AND conflict = 0``;
``dup_group`` (the survivor's ``images.id``, set on every member of a duplicate group, survivor
included) keeps a group inside one split. See ``pokedata/dedup/run.py`` and ``docs/dedup.md``.
"""

from __future__ import annotations

from pokedata.dedup.hashing import METHODS, get_hasher, hash_files
from pokedata.dedup.run import CONFLICT_MODES, DedupConfig, DedupSummary, reset_dedup, run_dedup
from pokedata.dedup.search import pairs_within, pairs_within_brute

__all__ = [
    "CONFLICT_MODES",
    "METHODS",
    "DedupConfig",
    "DedupSummary",
    "get_hasher",
    "hash_files",
    "pairs_within",
    "pairs_within_brute",
    "reset_dedup",
    "run_dedup",
]
