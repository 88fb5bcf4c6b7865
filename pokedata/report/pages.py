"""The overview and the classes table."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd

from pokedata.report.html import Safe, el, join, kv_table, link, page, section, table
from pokedata.report.tiles import class_href

if TYPE_CHECKING:
    from pokedata.report.model import DatasetView

SPLITS = ("train", "val", "test")


def reason_code(error: str) -> str:
    """``too-small: 16x16 px`` -> ``too-small`` (the part before the first colon)."""
    return (error or "").split(":", 1)[0].strip() or "(no reason)"


def class_counts(view: DatasetView) -> pd.DataFrame:
    """Per class: items, clean images, kept, duplicates, conflicts, quarantined (+ splits with a manifest)."""
    im = view.images
    by = im.groupby("class_name")
    df = pd.DataFrame(
        {
            "items": pd.Series({k: v["total"] for k, v in view.status["by_class"].items()}, dtype="int64"),
            "images": by.size(),
            "kept": by["kept"].sum(),
            "duplicates": by["dup_of"].count(),
            "conflicts": by["conflict"].sum(),
            "quarantined": im[im["status"] == "quarantined"].groupby("class_name").size(),
        }
    )
    fetch_q = view.fetch_quarantine.groupby("class_name").size()
    df["quarantined"] = df["quarantined"].add(fetch_q, fill_value=0)
    if view.has_manifest:
        for split in SPLITS:
            df[split] = im[im["split"] == split].groupby("class_name").size()
        df["manifest"] = df[list(SPLITS)].sum(axis=1)
    df = df.fillna(0).astype("int64").sort_index()
    return df.sort_values(["items", "images"], ascending=False, kind="stable")  # largest first, then by name


def overview(view: DatasetView, counts: pd.DataFrame, has_run: bool) -> str:
    s = view.status
    when = datetime.fromtimestamp(view.updated_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    dataset = kv_table(
        [
            ("ledger rows", s["items"]),
            *[(f"  {k}", v) for k, v in s["by_status"].items()],
            ("stored files", s["files"]),
            ("stored MB", f"{s['bytes'] / 1e6:,.1f}"),
            ("rows tried more than once", s["attempts"]["rows_tried_more_than_once"]),
            *[(f"clean images {k}", v) for k, v in sorted(s["images"].items())],
            ("classes with rows", len(s["by_class"])),
            ("ledger last changed", when),
        ],
        id_="dataset-figures",
    )
    statuses = list(s["by_status"])
    by_source = table(
        ["source", *statuses, "total"],
        [[k, *(v.get(st, 0) for st in statuses), v["total"]] for k, v in s["by_source"].items()],
        id_="by-source",
    )
    cards = [section("Dataset", dataset, id_="dataset"), _dedup(view)]
    if view.has_manifest:
        cards.append(manifest_section(view.manifest))
    body = [
        el("p", el("code", s["data"]), class_="muted"),
        el("div", join(cards), class_="cards"),
        section("By source", by_source),
        _reasons(view),
    ]
    removals = [r.get("line", "") for r in s.get("removals") or [] if isinstance(r, dict)]
    if removals:  # `poke status` warns where a stage removed more than half of the data or of a class
        body.insert(
            1, section("Warnings", el("ul", join(el("li", line) for line in removals)), id_="warnings")
        )
    top = counts.head(20)
    body.append(
        section(
            f"Largest classes ({len(top)} of {len(counts)})",
            table(
                ["class", "items", "kept", "duplicates", "quarantined"],
                [
                    [link(class_href(str(c)), c), r["items"], r["kept"], r["duplicates"], r["quarantined"]]
                    for c, r in top.iterrows()
                ],
            ),  # fmt: skip
            el("p", link("classes.html", "all classes →")),
        )
    )
    return page("Overview", join(body), active="index.html", has_run=has_run)


def _reasons(view: DatasetView) -> Safe:
    errors = table(
        ["status", "reason", "count", "example"],
        [[e["status"], e["reason"], e["count"], e["example"]] for e in view.status["errors"]],
        id_="errors",
    )
    im = view.images
    quarantined = [
        *[("clean", reason_code(e)) for e in im.loc[im["status"] == "quarantined", "error"]],
        *[("fetch", reason_code(e)) for e in view.fetch_quarantine["error"]],
    ]
    counts: dict[tuple[str, str], int] = {}
    for key in quarantined:
        counts[key] = counts.get(key, 0) + 1
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    q = table(
        ["stage", "reason", "count"], [[st, r, n] for (st, r), n in rows[:15]], id_="quarantine-reasons"
    )
    return join(
        [
            section("Commonest errors (ledger rows)", errors),
            section(
                "Commonest quarantine reasons",
                q,
                el("p", link("quarantine.html", "every quarantined file →")),
            ),
        ]
    )


def _dedup(view: DatasetView) -> Safe:
    im = view.images
    copies = im[im["dup_of"].notna()]
    settings = view.dedup.get("settings", {})
    pairs: list[tuple[str, Any]] = [
        ("method", settings.get("method", "(no dedup report)")),
        ("threshold (bits)", settings.get("threshold", "")),
        ("duplicates folded", len(copies)),
        *[(f"  {k or 'unknown'}", int(n)) for k, n in copies["dup_kind"].value_counts().sort_index().items()],
        ("duplicate groups", int(copies["dup_of"].nunique())),
        ("images marked conflict", int(im["conflict"].sum())),
        ("kept after dedup and conflicts", int(im["kept"].sum())),
    ]
    return section(
        "Dedup and conflicts",
        kv_table(pairs, id_="dedup-figures"),
        el("p", link("conflicts.html", "conflicts →")),
        id_="dedup",
    )


def manifest_section(m: dict[str, Any]) -> Safe:
    pairs = [
        ("name", m.get("name", "")),
        ("images", m.get("images", 0)),
        ("classes (catalog)", m.get("classes", 0)),
        ("classes with images", m.get("classes_with_images", 0)),
        *[(f"  {k}", v) for k, v in (m.get("splits") or {}).items()],
        *[(f"source {k}", v) for k, v in (m.get("per_source") or {}).items()],
        *[(f"dropped: {k}", v) for k, v in (m.get("dropped") or {}).items()],
        ("manifest sha256", m.get("manifest_sha256", "")[:16]),
        ("created", m.get("created_at", "")),
    ]
    return section(
        "Manifest",
        el("p", el("code", m.get("dir", "")), class_="muted"),
        kv_table(pairs, id_="manifest-figures"),
        id_="manifest",
    )


def classes_page(view: DatasetView, counts: pd.DataFrame, has_run: bool) -> str:
    cols = list(counts.columns)
    rows = [[link(class_href(str(c)), c), *(int(r[k]) for k in cols)] for c, r in counts.iterrows()]
    search = Safe(
        '<p><input type="search" id="class-filter" data-filter="classes" placeholder="filter classes…" '
        'aria-label="filter classes"> <span class="muted" id="class-filter-count"></span></p>'
    )
    note = el(
        "p", "Click a column header to sort. Kept: clean, not a duplicate, not in a conflict.", class_="muted"
    )
    body = join([search, note, table(["class", *cols], rows, id_="classes", sortable=True)])
    return page(f"Classes ({len(counts):,})", body, active="classes.html", has_run=has_run)
