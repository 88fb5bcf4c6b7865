"""The options of ``poke clean``, in a module light enough for the CLI to read their defaults at start-up
(Pillow and numpy are imported when the options are validated)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pokedata.errors import UserError

if TYPE_CHECKING:
    from pokedata.clean.flatten import FrameSpec
    from pokedata.clean.worker import Settings

PARAMS_VERSION = 2
"""Bumped when the clean algorithm changes its output for the same settings (forces a redo)."""


@dataclass
class CleanConfig:
    """Options of ``poke clean`` (the dedup options live in :class:`pokedata.dedup.DedupConfig`)."""

    data: Path
    background: str = "white"  # white | black | gray | #RRGGBB
    min_side: int = 64  # px; shorter side below this -> quarantined too-small
    max_side: int = 1024  # px; longer side is downscaled to at most this
    max_aspect: float = 4.0  # long/short side above this -> quarantined aspect-ratio
    frames: str | FrameSpec = "first"  # first | all | every:N
    quality: int = 95  # JPEG quality 1..100
    workers: int = 0  # processes; 0 = os.cpu_count(); 1 = in this process
    force: bool = False  # redo every item even when up to date
    include_multiclass: bool = False  # also clean rows without a single class (class_name '')
    max_pixels: int | None = None  # decompression-bomb limit; None = Pillow's default (~89 MP)
    chunk_size: int = 16  # items per task sent to a worker
    progress: bool = True
    hashes: tuple[str, ...] = ()  # hash-cache methods computed from each written JPG (set by --dedup)

    def settings(self) -> Settings:
        """Validate every option up front and return the pixel-deciding settings."""
        # Pillow and numpy come with these: imported here, not above, as `poke --help` reads the defaults
        from pokedata.clean.flatten import parse_background, parse_frames
        from pokedata.clean.worker import Settings

        if self.min_side < 1:
            raise UserError(f"--min-side {self.min_side} must be at least 1", hint="e.g. --min-side 64")
        if self.max_side < self.min_side:
            raise UserError(
                f"--max-side {self.max_side} is below --min-side {self.min_side}",
                hint="give --max-side >= --min-side, e.g. --max-side 1024",
            )
        if self.max_aspect < 1.0:
            raise UserError(f"--max-aspect {self.max_aspect} must be at least 1", hint="e.g. --max-aspect 4")
        if not 1 <= self.quality <= 100:
            raise UserError(f"--quality {self.quality} is out of range", hint="give 1..100 (default 95)")
        if self.workers < 0:
            raise UserError(f"--workers {self.workers} is negative", hint="give 0 (all cores) or a count")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise UserError(f"--max-pixels {self.max_pixels} must be positive")
        if self.chunk_size < 1:
            raise UserError(f"chunk_size {self.chunk_size} must be positive")
        if self.hashes:
            # numpy comes with the hashers: not at start-up (`poke --help` reads this module)
            from pokedata.dedup.hashing import cache_hasher

            for method in self.hashes:
                cache_hasher(method)  # a clear error naming --hash for an unknown method
        return Settings(
            background=parse_background(self.background),
            min_side=int(self.min_side),
            max_side=int(self.max_side),
            max_aspect=float(self.max_aspect),
            frames=parse_frames(self.frames),
            quality=int(self.quality),
            max_pixels=None if self.max_pixels is None else int(self.max_pixels),
        )
