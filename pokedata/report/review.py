"""Pages across classes: label conflicts, and every quarantined file with its reason."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pokedata.report.html import el, join, link, page, page_name, pager, section, table
from pokedata.report.pages import reason_code
from pokedata.report.tiles import Tiles, class_href, records

if TYPE_CHECKING:
    from pokedata.report.model import DatasetView
    from pokedata.report.site import Site


def write_conflicts(view: DatasetView, site: Site, page_size: int, has_run: bool) -> int:
    """Images marked ``conflict``, grouped by their duplicate group: the same picture under several labels."""
    im = view.images
    marked = im[im["conflict"] == 1]
    key = marked["dup_group"].fillna(marked["dup_of"]).fillna(marked["id"]).astype("int64")
    groups = [records(g.sort_values("id")) for _k, g in marked.groupby(key, sort=True)]
    groups.sort(key=lambda g: (-len({m["class_name"] for m in g}), -len(g), g[0]["id"]))
    per_page = max(1, page_size // 8)
    by_id = {int(r["id"]): r for r in records(im)} if view.conflict_pairs else {}
    pairs = [
        (p, [by_id[int(i)] for i in p["images"]])
        for p in view.conflict_pairs
        if all(int(i) in by_id for i in p["images"])
    ]
    pages = max(1, math.ceil(len(groups) / per_page), math.ceil(len(pairs) / per_page))
    intro = el(
        "p",
        f"{len(marked):,} images in {len(groups):,} groups carry a label conflict: near-identical pictures "
        "labelled with different classes. They are left out of the manifest; fix the label (or the source's "
        "tag) and rerun the dedup to keep them.",
        class_="muted",
    )
    for p in range(1, pages + 1):
        tiles = Tiles(view.root, f"sheets/conflicts-p{p}.{site.spec.ext}", "", site.spec.thumb)
        rows = []
        for g in groups[(p - 1) * per_page : p * per_page]:
            cells = [tiles.add(m, link(class_href(m["class_name"]), m["class_name"]), "conflict") for m in g]
            classes = sorted({m["class_name"] for m in g})
            label = el("p", f"{len(g)} images, classes: {', '.join(classes)}", class_="muted")
            rows.append(el("div", label + el("div", join(cells), class_="tiles"), class_="group"))
        nav = pager("conflicts", p, pages)
        parts = [intro, nav, el("div", join(rows), id="conflict-groups")]
        if pairs:
            parts.append(_pairs(tiles, pairs[(p - 1) * per_page : p * per_page], len(pairs)))
        body = join([*parts, nav])
        site.text(
            page_name("conflicts", p), page("Conflicts", body, active="conflicts.html", has_run=has_run)
        )
        if tiles.files:
            site.sheet(tiles.sheet_rel, tiles.files)
    return pages


def _pairs(tiles: Tiles, pairs: list, total: int):
    """The cross-class pairs of ``reports/dedup.json``: both images, their classes and their distance."""
    rows = []
    for pair, members in pairs:
        cells = [
            tiles.add(
                m, link(class_href(m["class_name"]), m["class_name"]), "conflict" if m["conflict"] else ""
            )
            for m in members
        ]
        label = el(
            "p",
            f"distance {pair.get('distance', '?')}: {' / '.join(m['class_name'] for m in members)}",
            class_="muted",
        )
        rows.append(el("div", label + el("div", join(cells), class_="tiles"), class_="group"))
    note = el(
        "p",
        "Near-identical pictures under two classes, as the dedup reported them (red: marked conflict).",
        class_="muted",
    )
    return section(
        f"Cross-class pairs reported by the dedup ({total:,})", note, join(rows), id_="conflict-pairs"
    )


def write_quarantine(view: DatasetView, site: Site, page_size: int, has_run: bool) -> int:
    """Every quarantined file (at fetch: bad bytes; at clean: unusable image), reasons counted first."""
    im = view.images
    rows = [
        *({**r, "stage": "clean"} for r in records(im[im["status"] == "quarantined"])),
        *({**r, "stage": "fetch"} for r in records(view.fetch_quarantine)),
    ]
    rows.sort(key=lambda r: (reason_code(r["error"]), r["class_name"], str(r["source_id"])))
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        k = (r["stage"], reason_code(r["error"]))
        counts[k] = counts.get(k, 0) + 1
    summary = table(
        ["stage", "reason", "count"],
        [[s, reason, n] for (s, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))],
        id_="reasons",
    )
    pages = max(1, math.ceil(len(rows) / page_size))
    for p in range(1, pages + 1):
        tiles = Tiles(view.root, f"sheets/quarantine-p{p}.{site.spec.ext}", "", site.spec.thumb)
        chunk = rows[(p - 1) * page_size : p * page_size]
        cells = [
            tiles.add(
                r,
                join([reason_code(r["error"]), " ", link(class_href(r["class_name"]), r["class_name"])]),
                "bad",
            )
            for r in chunk
        ]
        listing = table(
            ["stage", "class", "source", "source id", "reason"],
            [
                [
                    r["stage"],
                    link(class_href(r["class_name"]), r["class_name"]),
                    r["source"],
                    r["source_id"],
                    r["error"],
                ]
                for r in chunk
            ],  # fmt: skip
            id_="quarantined",
        )
        nav = pager("quarantine", p, pages)
        body = join(
            [
                section(f"Reasons ({len(rows):,} files)", summary),
                nav,
                section("Files", el("div", join(cells), class_="tiles"), listing),
                nav,
            ]
        )
        site.text(
            page_name("quarantine", p), page("Quarantine", body, active="quarantine.html", has_run=has_run)
        )
        if tiles.files:
            site.sheet(tiles.sheet_rel, tiles.files)
    return pages
