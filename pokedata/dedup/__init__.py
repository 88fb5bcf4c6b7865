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

from pokedata.lazy import lazy_exports

# name -> submodule, loaded on first use (PEP 562): the stage modules import numpy (and imagehash), and the
# CLI reads the option defaults from pokedata.dedup.config at start-up without paying for them (`poke --help`).
_EXPORTS = {
    "CONFLICT_MODES": "pokedata.dedup.config",
    "DedupConfig": "pokedata.dedup.config",
    "DEFAULT_COLOUR_TOLERANCE": "pokedata.dedup.colour",
    "colour_distance": "pokedata.dedup.colour",
    "group_images": "pokedata.dedup.groups",
    "policy_order": "pokedata.dedup.groups",
    "METHODS": "pokedata.dedup.hashing",
    "get_hasher": "pokedata.dedup.hashing",
    "hash_files": "pokedata.dedup.hashing",
    "DedupSummary": "pokedata.dedup.run",
    "reset_dedup": "pokedata.dedup.run",
    "run_dedup": "pokedata.dedup.run",
    "pairs_within": "pokedata.dedup.search",
    "pairs_within_brute": "pokedata.dedup.search",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
