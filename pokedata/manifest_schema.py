"""The manifest's columns, declared once: ``poke build-manifest`` writes them, ``pokegan.data`` reads them.

Plain data, no imports beyond :mod:`pokedata.provenance`'s column names: the trainer imports this module
where only the training side is installed (no ddgs, imagehash or requests).
"""

from __future__ import annotations

from pokedata.provenance import PROVENANCE_COLUMNS

COLUMNS = (
    "image_id", "path", "class_index", "class_name", "split", "source", "source_id", "width", "height",
    "phash", "sha256", "frame", *PROVENANCE_COLUMNS,
)  # fmt: skip
"""Every column of manifest.parquet / manifest.csv, in the order written."""

REQUIRED_COLUMNS = ("image_id", "path", "class_index", "split")
"""The columns a reader cannot do without (a manifest missing one is refused: rebuild it)."""
