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

from pokedata.lazy import lazy_exports

# name -> submodule, loaded on first use (PEP 562): the stage modules import Pillow and numpy, and the CLI
# reads the option defaults from pokedata.clean.config at start-up without paying for them (`poke --help`).
_EXPORTS = {
    "CleanConfig": "pokedata.clean.config",
    "CleanSummary": "pokedata.clean.run",
    "run_clean": "pokedata.clean.run",
    "FlattenError": "pokedata.clean.flatten",
    "FrameSpec": "pokedata.clean.flatten",
    "flatten_to_rgb": "pokedata.clean.flatten",
    "iter_frames": "pokedata.clean.flatten",
    "parse_background": "pokedata.clean.flatten",
    "parse_frames": "pokedata.clean.flatten",
    "Settings": "pokedata.clean.worker",
    "clean_item": "pokedata.clean.worker",
    "pixel_sha256": "pokedata.clean.worker",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
