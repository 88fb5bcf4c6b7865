"""Tiles of one page: the image file each shows, its provenance, and its cell in the page's sheet."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokedata.report.html import Safe, tile
from pokedata.report.sprites import tile_style
from pokedata.store import safe_name

if TYPE_CHECKING:
    import pandas as pd


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """``df.to_dict("records")``, several times faster on Arrow-backed string columns (one ``tolist`` each)."""
    cols = list(df.columns)
    return [dict(zip(cols, row, strict=True)) for row in zip(*(df[c].tolist() for c in cols), strict=True)]


def class_key(name: str) -> str:
    """File-name stem of a class page: a readable ASCII prefix and a hash (distinct for any two names).

    Only ``[A-Za-z0-9._-]``: the stem goes into URLs and CSS ``url('...')`` without any quoting.
    """

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", safe_name(name))[:40].strip("._") or "class"
    return f"{stem}-{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def class_href(name: str, up: str = "") -> str:
    return f"{up}class/{class_key(name)}.html"


def image_info(r: dict[str, Any]) -> dict[str, Any]:
    """What the provenance panel shows for one image row (or fetch-quarantined item row)."""
    size = f"{int(r['width'])}x{int(r['height'])}" if _num(r.get("width")) and _num(r.get("height")) else ""
    return {
        "image": _int(r.get("id")),
        "class": r.get("class_name"),
        "source": r.get("source"),
        "source id": r.get("source_id"),
        "post id": r.get("post_id"),
        "rating": r.get("rating"),
        "tags": r.get("tags"),
        "page": r.get("page_url"),
        "url": r.get("source_url"),
        "file": r.get("path") if isinstance(r.get("path"), str) else r.get("raw_path"),
        "size": size,
        "status": r.get("status"),
        "reason": r.get("error"),
        "split": r.get("split"),
        "duplicate of": _int(r.get("dup_of")),
        "distance": _int(r.get("distance")),
    }


class Tiles:
    """Collects the tiles of one page; :attr:`files` are the sheet's cells in order."""

    def __init__(self, root: Path, sheet_rel: str, up: str, thumb: int):
        self.root, self.sheet_rel, self.up, self.thumb = root, sheet_rel, up, thumb
        self._root = str(root)
        self.files: list[str | None] = []
        self._ids: set[str] = set()

    def add(self, r: dict[str, Any], caption: Any = "", mark: str = "") -> Safe:
        """A tile for an image row; its first tile on the page gets ``id="img-<images.id>"`` (a link target)."""
        style = tile_style(self.up + self.sheet_rel, len(self.files), self.thumb)
        self.files.append(self.file_of(r))
        info = image_info(r)
        anchor = f"img-{info['image']}" if info["image"] is not None else None
        if anchor in self._ids:
            anchor = None
        self._ids.add(anchor)
        return tile(style, info, caption, mark=mark, id_=anchor)

    def file_of(self, r: dict[str, Any]) -> str | None:
        """The clean JPG; for quarantined images the raw file (it may be unreadable: a crossed cell)."""
        for key in ("path", "raw_path"):
            rel = r.get(key)
            if isinstance(rel, str) and rel:
                return os.path.join(self._root, rel)  # not pathlib: called once per tile
        return None


def _num(v: Any) -> bool:
    return v is not None and v == v and not isinstance(v, str)


def _int(v: Any) -> int | None:
    if not _num(v) or int(v) < 0:
        return None
    return int(v)
