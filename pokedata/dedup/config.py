"""The options of the dedup stage (``poke clean --dedup``), in a module light enough for the CLI to read
their defaults at start-up (no numpy: the hashers are imported when the options are validated)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pokedata.errors import UserError

CONFLICT_MODES = ("drop", "keep-first", "report")
MAX_THRESHOLD = 32
DEFAULT_SOURCE_PRIORITY: tuple[str, ...] = ("folder", "danbooru", "danbooru-dump", "ddg")
"""Preferred first: a user's own files, then Danbooru (curated tags), its dumps, then web search."""


@dataclass
class DedupConfig:
    data: Path  # dataset dir
    method: str = "phash"  # phash | dhash | whash | ahash (`poke clean --hash`)
    threshold: int | None = None  # Hamming bits; None = the measured default for the method
    conflicts: str = "drop"  # drop | keep-first | report
    conflict_threshold: int | None = (
        None  # bits for a cross-class match; None = method default (<= threshold)
    )
    workers: int = 0  # 0 = os.cpu_count()
    progress: bool = True
    source_priority: tuple[str, ...] = DEFAULT_SOURCE_PRIORITY  # survivor policy, preferred first
    fast: bool = True  # JPEG draft decode for hashing (see pokedata.dedup.hashing)
    contact_sheets: bool = True
    colour: bool = True  # near duplicates must also match in colour (`--ignore-colour` turns it off)
    colour_tolerance: int | None = None  # L1 distance of colour signatures; None = measured default

    def cached_methods(self) -> tuple[str, ...]:
        """What a run needs in the hash cache: the perceptual hash, and the colour signature unless off."""
        from pokedata.dedup.colour import COLOUR  # numpy: not at start-up (`poke --help` reads this module)

        return (self.method, COLOUR) if self.colour else (self.method,)

    def validated(self) -> DedupConfig:
        """Check every option up front; returns self with ``threshold`` and ``workers`` resolved."""
        # the hashers (numpy) are imported here, not above: `poke --help` reads this dataclass's defaults
        from pokedata.dedup.colour import DEFAULT_COLOUR_TOLERANCE, MAX_COLOUR_DISTANCE
        from pokedata.dedup.hashing import HASHERS, METHODS

        if self.method not in HASHERS:
            raise UserError(
                f"--hash {self.method!r} is not a hash method", hint=f"choose one of {', '.join(METHODS)}"
            )
        if self.threshold is None:
            self.threshold = HASHERS[self.method].default_threshold
        if not 0 <= int(self.threshold) <= MAX_THRESHOLD:
            raise UserError(
                f"--threshold {self.threshold} is out of range",
                hint=f"give Hamming bits 0..{MAX_THRESHOLD} (default for {self.method}: "
                f"{HASHERS[self.method].default_threshold}; 0 = identical hashes only)",
            )
        self.threshold = int(self.threshold)
        if self.conflict_threshold is None:
            self.conflict_threshold = min(HASHERS[self.method].default_conflict_threshold, self.threshold)
        if not 0 <= int(self.conflict_threshold) <= self.threshold:
            raise UserError(
                f"--conflict-threshold {self.conflict_threshold} must lie in 0..--threshold ({self.threshold})",
                hint="a cross-class match needs at least the evidence of a same-class one",
            )
        self.conflict_threshold = int(self.conflict_threshold)
        if self.colour_tolerance is None:
            self.colour_tolerance = DEFAULT_COLOUR_TOLERANCE
        if not 0 <= int(self.colour_tolerance) <= MAX_COLOUR_DISTANCE:
            raise UserError(
                f"--colour-tolerance {self.colour_tolerance} is out of range",
                hint=f"give 0..{MAX_COLOUR_DISTANCE} (default {DEFAULT_COLOUR_TOLERANCE}); "
                "--ignore-colour turns the colour test off",
            )
        self.colour_tolerance = int(self.colour_tolerance)
        if self.conflicts not in CONFLICT_MODES:
            raise UserError(
                f"--conflicts {self.conflicts!r} is not a conflict mode",
                hint=f"choose one of {', '.join(CONFLICT_MODES)}",
            )
        if self.workers < 0:
            raise UserError(
                f"--workers {self.workers} is negative", hint="give 0 (all cores) or a positive count"
            )
        if self.workers == 0:
            self.workers = os.cpu_count() or 1
        return self
