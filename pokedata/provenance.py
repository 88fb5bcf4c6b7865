"""Where an image came from: the provenance columns, one schema for the manifest and ``poke report``.

Both writers and readers go through this module: :func:`provenance_columns` derives the columns from ledger
fields (``items.source``, ``source_id``, ``url`` and the ``meta`` JSON the fetch sources fill), and
:func:`read_provenance` returns them from a loaded manifest (empty strings for manifests written before
the columns existed). Columns, all strings, ``''`` where the source does not know the value:

    source_url  the URL the bytes were fetched from (Danbooru file URL, search-result image URL, the
                ``file://`` URL of an imported file or dump mirror file)
    page_url    the page that shows the image (Danbooru post page, the web page of a search result)
    post_id     the Danbooru post id (sources ``danbooru`` and ``danbooru-dump``)
    tags        the post's tags, space-separated, as Danbooru lists them
    rating      the post's rating: g, s, q or e
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

PROVENANCE_COLUMNS = ("source_url", "page_url", "post_id", "tags", "rating")
POST_SOURCES = frozenset({"danbooru", "danbooru-dump"})
"""Sources whose ``source_id`` is a Danbooru post id."""


def provenance(
    source: str, source_id: str, url: str | None, meta: Mapping[str, Any] | str | None
) -> dict[str, str]:
    """The provenance columns of one ledger item (``meta`` as a dict or its JSON text)."""
    if isinstance(meta, str) or meta is None:
        meta = _loads(meta)
    return {
        "source_url": str(url or ""),
        "page_url": _text(meta.get("page_url")),
        "post_id": str(source_id) if source in POST_SOURCES else "",
        "tags": _text(meta.get("tags")),
        "rating": _text(meta.get("rating")),
    }


def provenance_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The provenance columns for every row of ``df`` (columns ``source``, ``source_id``, ``url``, ``meta``)."""
    import pandas as pd  # on use: pokegan imports this module (through manifest_schema) without needing it

    rows = [
        provenance(s, i, u, m)
        for s, i, u, m in zip(
            df["source"].tolist(),
            df["source_id"].tolist(),
            df["url"].tolist(),
            df["meta"].tolist(),
            strict=True,
        )
    ]
    out = pd.DataFrame(rows, columns=list(PROVENANCE_COLUMNS), index=df.index)
    return out.astype(str) if len(out) else out.astype(object)


def read_provenance(manifest: pd.DataFrame) -> pd.DataFrame:
    """The provenance columns of a loaded manifest; a manifest written before they existed reads as ``''``."""
    out = manifest.reindex(columns=list(PROVENANCE_COLUMNS)).astype(object)
    return out.where(out.notna(), "").astype(str)


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)
