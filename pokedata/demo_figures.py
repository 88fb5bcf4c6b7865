"""Figures of ``poke demo``'s stages, read back from the ledger and the manifest (not from run counters).

Reading the final state means a resumed demo reports the same numbers as an uninterrupted one, and the
test can compare the printed figures with the files themselves. :func:`planted_findings` checks each
problem planted in the synthetic sprite set against what the pipeline recorded for it.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

from pokedata.ledger import connect_readonly, views
from pokedata.store import DatasetDir
from pokedata.synth import SynthReport


def _reason(error: str | None) -> str:
    """The reason code of an error text (``duplicate-of:12`` -> ``duplicate-of``)."""
    return (error or "unknown").split(":", 1)[0].strip() or "unknown"


def _connect(data: Path):
    return connect_readonly(DatasetDir.at(data).require().ledger_path)


def fetch_figures(data: Path, source: str = "folder") -> dict[str, Any]:
    """Files seen, stored, skipped and quarantined (with reasons) for one source of the ledger."""
    with _connect(data) as conn:
        rows = views.source_items(conn, source)
    status = Counter(r[0] for r in rows)
    return {
        "files": len(rows),
        "stored": status.get("done", 0),
        "skipped": status.get("skipped", 0),
        "skipped reasons": dict(Counter(_reason(r[1]) for r in rows if r[0] == "skipped")),
        "quarantined": status.get("quarantined", 0),
        "quarantined reasons": dict(Counter(_reason(r[1]) for r in rows if r[0] == "quarantined")),
        "failed": status.get("failed", 0),
        "planned": status.get("planned", 0),
        "classes": len({r[2] for r in rows if r[0] == "done" and r[2]}),
    }


def clean_figures(data: Path) -> dict[str, Any]:
    """Clean images written and quarantined (with reasons), from the ``images`` table."""
    with _connect(data) as conn:
        rows = views.image_outcomes(conn)
    status = Counter(r[0] for r in rows)
    return {
        "images": len(rows),
        "clean": status.get("done", 0),
        "quarantined": status.get("quarantined", 0),
        "quarantined reasons": dict(Counter(_reason(r[1]) for r in rows if r[0] == "quarantined")),
    }


def kept_images(data: Path) -> int:
    """Images the ledger's kept rule keeps after dedup (:data:`pokedata.ledger.views.KEPT_RULES`): what the
    manifest starts from."""
    with _connect(data) as conn:
        return views.kept_count(conn)


def _same_group(a: dict | None, b: dict | None) -> bool:
    """Two images folded together: one group, and one of them marked a duplicate."""
    if not a or not b or a["dup_group"] is None:
        return False
    return a["dup_group"] == b["dup_group"] and (a["dup_of"] is not None or b["dup_of"] is not None)


def _skipped_as_copy(a: dict | None, b: dict | None) -> bool:
    """One of two byte-identical files skipped on import as a duplicate of the other (either order)."""
    if not a or not b:
        return False
    return any(
        x["item_status"] == "skipped" and x["item_error"] == f"duplicate-of:{y['item']}"
        for x, y in ((a, b), (b, a))
    )


def planted_findings(data: Path, synth: SynthReport) -> dict[str, dict[str, Any]]:
    """For each kind of planted problem: how many were planted, how many the pipeline caught, and how.

    - exact copies (same bytes, same class): the fetch gate skips them as ``duplicate-of``;
    - re-encoded copies (same pixels, other bytes): dedup folds them as ``exact``;
    - near copies (upscaled, colour-shifted): dedup folds them by perceptual hash;
    - corrupt / truncated files: the fetch gate quarantines them;
    - too-small sprites: clean quarantines them;
    - the conflict pair (one file under two classes): dedup marks both ``conflict``.
    """
    with _connect(data) as conn:
        rows = views.first_frames(conn, "folder")

    def found(pred, pairs) -> dict[str, Any]:
        missed = [p for p in pairs if not pred(p)]
        return {"planted": len(pairs), "found": len(pairs) - len(missed), "missed": missed}

    exact = found(lambda p: _skipped_as_copy(rows.get(p[0]), rows.get(p[1])), synth.exact_copies)
    pixel = found(lambda p: _same_group(rows.get(p[0]), rows.get(p[1])), synth.pixel_copies)
    near = found(lambda p: _same_group(rows.get(p[0]), rows.get(p[1])), synth.near_dups)
    corrupt = found(
        lambda p: (rows.get(p[0]) or {}).get("item_status") == "quarantined",
        [tuple(c) for c in synth.corrupt],
    )
    small = found(lambda rel: (rows.get(rel) or {}).get("image_status") == "quarantined", synth.too_small)
    pairs = [synth.conflict] if synth.conflict else []
    conflict = found(
        lambda p: all((rows.get(rel) or {}).get("conflict") for rel in p),
        pairs,
    )
    return {
        "exact copies skipped on import": exact,
        "re-encoded copies folded (exact pixels)": pixel,
        "near copies folded (perceptual hash)": near,
        "corrupt files quarantined on import": corrupt,
        "too-small sprites quarantined by clean": small,
        "conflict pair flagged": conflict,
    }


def manifest_figures(manifest_dir: Path) -> dict[str, Any]:
    """Rows per split and classes, from manifest.csv, classes.json and stats.json."""
    manifest_dir = Path(manifest_dir)
    with (manifest_dir / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    classes = json.loads((manifest_dir / "classes.json").read_text(encoding="utf-8"))["classes"]
    stats_path = manifest_dir / "stats.json"
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.is_file() else {}
    per_class = Counter(r["class_name"] for r in rows)
    return {
        "rows": len(rows),
        "splits": dict(sorted(Counter(r["split"] for r in rows).items())),
        "classes": len(classes),
        "classes with images": len(per_class),
        "smallest class": min(per_class.values()) if per_class else 0,
        "largest class": max(per_class.values()) if per_class else 0,
        "dropped": stats.get("dropped", {}),
        "path": str(manifest_dir),
    }
