"""Class pages: kept thumbnails, duplicate groups (survivor first, copies with distances), quarantined files.

A class with many images gets several pages: page ``n`` shows the n-th slice of each section (``page_size``
kept or quarantined tiles, ``page_size // 8`` duplicate groups), all drawn from one sprite sheet.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from pokedata.report.html import Safe, el, join, kv_table, link, page, page_name, pager, section
from pokedata.report.pages import reason_code
from pokedata.report.tiles import Tiles, class_href, class_key, records

if TYPE_CHECKING:
    import pandas as pd

    from pokedata.report.model import DatasetView
    from pokedata.report.site import Site


def duplicate_groups(images: pd.DataFrame) -> dict[int, list[dict[str, Any]]]:
    """Group key -> members (survivor first, then copies by distance); key = ``dup_group`` or ``dup_of``."""
    key = images["dup_group"].fillna(images["dup_of"])
    marked = images[key.notna()].assign(_key=key[key.notna()].astype("int64"))
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records(marked):
        groups[int(r["_key"])].append(r)
    for k, members in groups.items():
        members.sort(key=lambda r: (r["dup_of"] == r["dup_of"], r["id"] != k, max(r["distance"], 0), r["id"]))
    return groups


def write_class_pages(
    view: DatasetView, counts: pd.DataFrame, site: Site, page_size: int, has_run: bool
) -> int:
    """Every class's pages and sheets; returns the number of pages."""
    groups = duplicate_groups(view.images)
    groups_of: dict[str, list[int]] = defaultdict(list)
    for k, members in groups.items():
        for cls in dict.fromkeys(m["class_name"] for m in members):
            groups_of[cls].append(k)
    rows_of = _by_class(records(view.images))  # one conversion, not one per class (80k rows)
    fetch_q = _by_class(records(view.fetch_quarantine))
    n = 0
    for cls, figures in counts.iterrows():
        rows = rows_of.get(cls, [])
        kept = [r for r in rows if r["kept"]]
        quarantined = [r for r in rows if r["status"] == "quarantined"] + fetch_q.get(cls, [])
        cls_groups = [groups[k] for k in sorted(groups_of.get(cls, []), key=lambda k: (-len(groups[k]), k))]
        n += _write_class(
            view, site, str(cls), figures.to_dict(), kept, cls_groups, quarantined, page_size, has_run
        )
    return n


def _by_class(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[r["class_name"]].append(r)
    return out


def _write_class(view, site, cls, figures, kept, groups, quarantined, page_size, has_run) -> int:
    per_group_page = max(1, page_size // 8)
    pages = max(1, math.ceil(len(kept) / page_size), math.ceil(len(groups) / per_group_page),
                math.ceil(len(quarantined) / page_size))  # fmt: skip
    key = class_key(cls)
    for p in range(1, pages + 1):
        tiles = Tiles(view.root, f"sheets/{key}-p{p}.{site.spec.ext}", "../", site.spec.thumb)
        lo, hi = (p - 1) * page_size, p * page_size
        g_lo, g_hi = (p - 1) * per_group_page, p * per_group_page
        nav = pager(key, p, pages)
        body = [
            el("p", link("../classes.html", "← all classes")),
            kv_table([(k, v) for k, v in figures.items()], id_="class-figures"),
            nav,
            _kept(tiles, kept, lo, hi, view.has_manifest),
            _groups(tiles, cls, groups, g_lo, g_hi),
            _quarantined(tiles, quarantined, lo, hi),
            nav,
        ]
        title = cls if pages == 1 else f"{cls} (page {p} of {pages})"
        site.text(f"class/{page_name(key, p)}", page(title, join(body), up="../", has_run=has_run))
        if tiles.files:
            site.sheet(tiles.sheet_rel, tiles.files)
    return pages


def _kept(tiles: Tiles, kept: list[dict], lo: int, hi: int, has_manifest: bool) -> Safe:
    shown = [tiles.add(r, r.get("split", "") if has_manifest else f"#{r['id']}") for r in kept[lo:hi]]
    title = f"Kept images ({len(kept):,})" + (
        f", {lo + 1:,}–{min(hi, len(kept)):,}" if len(kept) > hi - lo else ""
    )
    return section(title, el("div", join(shown), class_="tiles", id="kept"), id_="kept-images")


def _groups(tiles: Tiles, cls: str, groups: list[list[dict]], lo: int, hi: int) -> Safe:
    rows = []
    for members in groups[lo:hi]:
        cells = []
        for i, m in enumerate(members):
            survivor = i == 0 and m["dup_of"] != m["dup_of"]  # NaN: not a copy
            if survivor:
                caption: Any = "survivor"
            else:
                caption = f"d={m['distance']}" if m["distance"] >= 0 else (m["dup_kind"] or "copy")
            if m["class_name"] != cls:
                caption = join([caption, " ", link(class_href(m["class_name"], "../"), m["class_name"])])
            role = "keep" if survivor and m["kept"] else ("" if survivor else "copy")
            mark = " ".join(x for x in (role, "conflict" if m["conflict"] else "") if x)
            cells.append(tiles.add(m, caption, mark))
        label = f"group {members[0]['_key']}: {len(members)} images"
        rows.append(
            el("div", el("p", label, class_="muted") + el("div", join(cells), class_="tiles"), class_="group")
        )
    note = (
        "Survivor first (green when kept), then each copy with its Hamming distance to the survivor; "
        "red: a label conflict (the same picture under another class), left out of the manifest."
    )
    return section(
        f"Duplicate groups ({len(groups):,})", el("p", note, class_="muted"), join(rows), id_="groups"
    )


def _quarantined(tiles: Tiles, quarantined: list[dict], lo: int, hi: int) -> Safe:
    shown = [tiles.add(r, reason_code(r["error"]), "bad") for r in quarantined[lo:hi]]
    return section(
        f"Quarantined ({len(quarantined):,})",
        el("div", join(shown), class_="tiles", id="quarantined"),
        id_="quarantine",
    )
