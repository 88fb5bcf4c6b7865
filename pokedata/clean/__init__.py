"""Clean stage: stored files -> flattened JPGs (transparency onto a background, frames of animations).

Public API::

    from pokedata.clean import CleanConfig, run_clean, flatten_to_rgb, iter_frames

    summary = run_clean(CleanConfig(data=Path("DIR"), frames="all", workers=2))
    console.print(summary.table())

    with Image.open(path) as im:                      # the pure functions, no ledger involved
        for index, frame in iter_frames(im, "every:4"):
            rgb = flatten_to_rgb(frame, parse_background("#ffffff"))

See ``docs/clean.md``.
"""

from __future__ import annotations

from pokedata.clean.flatten import (
    FlattenError,
    FrameSpec,
    flatten_to_rgb,
    iter_frames,
    parse_background,
    parse_frames,
)
from pokedata.clean.run import CleanConfig, CleanSummary, run_clean
from pokedata.clean.worker import Settings, clean_item, pixel_sha256

__all__ = [
    "CleanConfig",
    "CleanSummary",
    "FlattenError",
    "FrameSpec",
    "Settings",
    "clean_item",
    "flatten_to_rgb",
    "iter_frames",
    "parse_background",
    "parse_frames",
    "pixel_sha256",
    "run_clean",
]
