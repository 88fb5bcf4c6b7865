"""What a dataset directory holds: counts by source, class and status, and the commonest errors.

:func:`dataset_status` returns a plain dict (what ``poke status --json`` prints);
:func:`status_tables` renders it as rich tables. Read-only: safe while a fetch is running (WAL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from pokedata.ledger import STATUSES, Ledger, has_table, views
from pokedata.removals import heavy_removals
from pokedata.store import DatasetDir


def dataset_status(data: Path | str, *, top_errors: int = 10) -> dict[str, Any]:
    """Counts of the ledger at ``data`` (a UserError when there is none).

    Keys: ``data``, ``items`` (rows in all), ``files`` (distinct stored files), ``bytes`` (stored bytes),
    ``by_status``, ``by_source`` and ``by_class`` (name -> status -> count, plus ``total``), ``errors``
    (the commonest reasons: status, reason code, count, one full example), ``attempts`` (rows that needed
    more than one try), ``images`` (clean outputs by status, when ``poke clean`` has run), ``kept``
    (images the ledger's kept rule keeps: clean, not a duplicate, not in a label conflict; 0 before
    ``poke clean``) and ``removals`` (where clean or dedup removed more than half of the data or of a class: stage, scope,
    counts, reasons, the flag that changes it, and the warning ``line``; see :mod:`pokedata.removals`).
    """
    dataset = DatasetDir.at(data).require()
    with Ledger(dataset.ledger_path, readonly=True) as ledger, ledger.lock:
        conn = ledger.conn
        by_status = dict.fromkeys(STATUSES, 0)
        by_source: dict[str, dict[str, int]] = {}
        by_class: dict[str, dict[str, int]] = {}
        for source, cls, status, n in ledger.counts(("source", "class_name", "status")):
            by_status[status] = by_status.get(status, 0) + n
            _bump(by_source, source, status, n)
            _bump(by_class, cls or "(no class)", status, n)
        files, nbytes = views.stored_files(conn)
        errors = [
            {"status": status, "reason": reason, "count": n, "example": example}
            for status, reason, n, example in views.error_reasons(conn, top_errors)
        ]
        retried = views.retried_items(conn)
        images: dict[str, int] = {}
        kept = 0
        removed = []
        if has_table(conn, "images"):
            images = views.image_counts(conn)
            kept = views.kept_count(conn)
            removed = [r.as_dict() for r in heavy_removals(conn)]
    return {
        "data": str(dataset.root),
        "items": sum(by_status.values()),
        "files": files,
        "bytes": nbytes,
        "by_status": by_status,
        "by_source": _sorted(by_source),
        "by_class": _sorted(by_class),
        "errors": errors,
        "attempts": {"rows_tried_more_than_once": retried},
        "images": images,
        "kept": kept,
        "removals": removed,
    }


def _bump(table: dict[str, dict[str, int]], key: str, status: str, n: int) -> None:
    row = table.setdefault(key, {"total": 0})
    row[status] = row.get(status, 0) + n
    row["total"] += n


def _sorted(table: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Largest first, then by name."""
    return dict(sorted(table.items(), key=lambda kv: (-kv[1]["total"], kv[0])))


def status_tables(status: dict[str, Any], *, classes: int = 20) -> list[Any]:
    """Rich tables: overview, by source, by class (the ``classes`` largest; 0 = all), heavy removals, errors."""

    overview = Table(title=f"dataset {status['data']}")
    overview.add_column("what")
    overview.add_column("count", justify="right")
    overview.add_row("rows", str(status["items"]))
    for st, n in status["by_status"].items():
        overview.add_row(f"  {st}", str(n))
    overview.add_row("stored files", str(status["files"]))
    overview.add_row("stored MB", f"{status['bytes'] / 1e6:.1f}")
    overview.add_row("rows tried more than once", str(status["attempts"]["rows_tried_more_than_once"]))
    for st, n in sorted(status["images"].items()):
        overview.add_row(f"clean images {st}", str(n))
    if status["images"]:
        overview.add_row("kept (not a duplicate or a label conflict)", str(status.get("kept", 0)))
    tables = [overview, _breakdown("by source", "source", status["by_source"])]
    by_class = status["by_class"]
    shown = dict(list(by_class.items())[:classes]) if classes else by_class
    title = (
        "by class" if len(shown) == len(by_class) else f"by class ({len(shown)} largest of {len(by_class)})"
    )
    tables.append(_breakdown(title, "class", shown))
    if status.get("removals"):
        heavy = Table(title="stages that removed more than half (of the data or of a class)")
        for col in ("stage", "scope", "removed", "of", "why and what changes it"):
            heavy.add_column(col, justify="right" if col in ("removed", "of") else "left", overflow="fold")
        rows = status["removals"]
        if classes:
            overall = [r for r in rows if not r["scope"]]
            rows = overall + [r for r in rows if r["scope"]][:classes]
        for r in rows:
            why = ", ".join(f"{n:,} {reason}" for reason, n in r["reasons"].items())
            hints = "; ".join(r["hints"])
            heavy.add_row(r["stage"], r["scope"] or "all data", f"{r['removed']:,}", f"{r['total']:,}",
                          Text(f"{why}; {hints}" if hints else why, style="yellow"))  # fmt: skip
        tables.append(heavy)
    if status["errors"]:
        errs = Table(title="commonest errors")
        for col in ("status", "reason", "count", "example"):
            errs.add_column(col, justify="right" if col == "count" else "left", overflow="fold")
        for e in status["errors"]:
            errs.add_row(e["status"], e["reason"], str(e["count"]), e["example"])
        tables.append(errs)
    return tables


def _breakdown(title: str, label: str, rows: dict[str, dict[str, int]]):
    t = Table(title=title)
    t.add_column(label)
    for st in (*STATUSES, "total"):
        t.add_column(st, justify="right")
    for key, counts in rows.items():
        t.add_row(key, *(str(counts.get(st, 0)) for st in (*STATUSES, "total")))
    return t
