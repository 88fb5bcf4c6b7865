"""What the report shows, read once from the ledger, the dedup report and the manifest (read-only).

Dedup marks come from the ledger's own columns (``dup_of``, ``dup_group``, ``dup_kind``, ``conflict``), so
the report follows whatever grouping the dedup stage chose. The distance of a copy is the Hamming distance
between its cached hash and its survivor's (``dup_of``), with the method named in ``reports/dedup.json``
(``phash`` when there is none); exact copies without hashes read 0.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pokedata.errors import UserError
from pokedata.ledger import connect_readonly, has_table, views
from pokedata.provenance import provenance_columns
from pokedata.status import dataset_status
from pokedata.store import DatasetDir

NO_CLASS = "(no class)"


@dataclass
class DatasetView:
    """Everything the data pages need."""

    root: Path
    status: dict[str, Any]  # pokedata.status.dataset_status: the same figures as `poke status --json`
    images: pd.DataFrame  # one row per images row: item fields, provenance, class, kept, distance, split
    fetch_quarantine: pd.DataFrame  # items quarantined at fetch (no clean image exists)
    dedup: dict[str, Any]  # settings and summary of reports/dedup.json ({} when absent)
    manifest: dict[str, Any] = field(default_factory=dict)  # stats.json of --manifest, "dir"; {} without
    conflict_pairs: list[dict[str, Any]] = field(default_factory=list)  # dedup.json's per-pair conflicts
    updated_at: float = 0.0  # the ledger's newest change (shown instead of a build time: pages stay stable)

    @property
    def has_manifest(self) -> bool:
        return bool(self.manifest)


def load_dataset(data: Path, manifest_dir: Path | None = None) -> DatasetView:
    """Read the dataset directory ``data`` (and the manifest folder, when given)."""
    ds = DatasetDir.at(data).require()
    status = dataset_status(ds.root)
    dedup = _read_dedup(ds.reports_dir / "dedup.json")
    conn = connect_readonly(ds.ledger_path)
    try:
        has_images = has_table(conn, "images")
        if has_images:
            images = views.report_images(conn)
            hashes = views.hash_values(conn, dedup.get("settings", {}).get("method") or "phash")
        else:  # `poke clean` has not run yet
            images, hashes = pd.DataFrame(columns=list(views.REPORT_IMAGE_COLUMNS)), {}
        quarantined = views.quarantined_items(conn)
        updated = views.last_change(conn, images=bool(has_images))
    except sqlite3.DatabaseError as exc:
        raise UserError(
            f"cannot read the ledger {ds.ledger_path} ({exc})", hint="is it a poke dataset?"
        ) from exc
    finally:
        conn.close()
    images = _annotate(images, hashes)
    quarantined = quarantined.assign(
        class_name=quarantined["class_name"].replace("", NO_CLASS), **provenance_columns(quarantined)
    )
    pairs = dedup.pop("pairs", [])
    view = DatasetView(
        ds.root, status, images, quarantined, dedup, updated_at=float(updated), conflict_pairs=pairs
    )
    if manifest_dir is not None:
        view.manifest = _read_manifest(Path(manifest_dir), view)
    return view


def _read_dedup(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    # per-pair conflicts ({"images": [a, b], "classes": [...], "distance": d, ...}) where the dedup writes
    # them; older reports list conflicting group ids instead, which the ledger's `conflict` marks cover
    pairs = [
        c
        for c in doc.get("conflicts") or []
        if isinstance(c, dict) and isinstance(c.get("images"), list) and len(c["images"]) == 2
    ]
    return {"settings": doc.get("settings") or {}, "summary": doc.get("summary") or {}, "pairs": pairs}


def _annotate(df: pd.DataFrame, hashes: dict[int, int]) -> pd.DataFrame:
    """Class (``(no class)`` for ''), kept as a bool (the ledger's kept rule, :mod:`pokedata.ledger.views`),
    the copy's distance to its survivor, provenance."""
    return df.assign(
        class_name=df["class_name"].replace("", NO_CLASS),
        conflict=df["conflict"].fillna(0).astype(int),
        kept=df["kept"].fillna(0).astype(int).astype(bool),
        distance=_distances(df, hashes),
        **provenance_columns(df),
    )


def _distances(df: pd.DataFrame, hashes: dict[int, int]) -> np.ndarray:
    """Hamming distance of each marked image to its survivor: ``dup_of``, else (a conflicting member that is
    no copy) ``dup_group``; -1 for the survivor itself, unmarked images, or no hash to compare."""
    out = np.full(len(df), -1, dtype=np.int64)
    cols = (df["id"], df["dup_of"], df["dup_group"], df["dup_kind"])
    for row, (img, dup_of, group, kind) in enumerate(zip(*cols, strict=True)):
        target = dup_of if dup_of == dup_of and dup_of is not None else group  # NaN != NaN
        if target is None or target != target or int(target) == int(img):
            continue
        a, b = hashes.get(int(img)), hashes.get(int(target))
        if a is not None and b is not None:
            out[row] = bin((a ^ b) & 0xFFFFFFFFFFFFFFFF).count("1")
        elif kind == "exact":
            out[row] = 0
    return out


def _read_manifest(folder: Path, view: DatasetView) -> dict[str, Any]:
    """stats.json of the manifest, and each kept image's split merged into ``view.images``."""
    stats_path, table = folder / "stats.json", folder / "manifest.parquet"
    if not stats_path.is_file() or not table.is_file():
        raise UserError(
            f"--manifest {folder} is not a finished manifest (no stats.json or manifest.parquet)",
            hint="build it with `poke build-manifest --data DIR`, or leave --manifest out",
        )
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    df = pd.read_parquet(table, columns=["image_id", "class_name", "split"])
    if stats.get("data_root") and Path(stats["data_root"]).resolve() != view.root:
        raise UserError(
            f"--manifest {folder} was built from {stats['data_root']}, not from --data {view.root}",
            hint="pass the --data directory the manifest was built from",
        )
    split = df.drop_duplicates("image_id").set_index("image_id")["split"]
    view.images["split"] = view.images["id"].map(split).fillna("")
    return {
        **stats,
        "dir": str(folder.resolve()),
        "rows_per_class": df["class_name"].value_counts().to_dict(),
    }
