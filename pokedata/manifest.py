"""``poke build-manifest``: the kept clean images of a dataset directory -> ``manifests/<name>/``.

The contract the trainer (``pokegan.data.load_manifest``) reads::

    manifest.parquet, manifest.csv  one row per kept image: image_id (images.id), path (relative to the
                                    dataset root), class_index, class_name, split (train|val|test), source,
                                    source_id, width, height, phash (16 hex digits of the cached 'phash'
                                    hash, '' when none), sha256 (of the decoded pixels), frame, then the
                                    provenance columns of :mod:`pokedata.provenance` (source_url, page_url,
                                    post_id, tags, rating; '' where the source has none)
    classes.json                    {"catalog": <catalog source>, "classes": [name0, name1, ...]}: exactly
                                    the catalog's classes, zero-image ones included; index = position
    stats.json                      counts per class / source / split, dropped and why, "data_root" (the
                                    absolute dataset path), "manifest_sha256" (of manifest.csv's bytes),
                                    "created_at"; written last, so its presence marks a finished manifest
    class_counts.png                images per class, stacked by split

The columns are declared in :mod:`pokedata.manifest_schema`. Kept: the images the ledger's kept rule keeps
(:data:`pokedata.ledger.views.KEPT_RULES`: clean, of a ``done`` item, no ``dup_of``, no ``conflict``),
labelled with a catalog class. Splits: see :mod:`pokedata.manifest_split`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokedata.catalog import Catalog, load_catalog, name_key
from pokedata.errors import UserError
from pokedata.manifest_schema import COLUMNS
from pokedata.provenance import provenance_columns
from pokedata.store import DatasetDir, atomic_write_bytes, atomic_write_text, safe_name

# pandas, numpy, pyarrow, matplotlib (manifest_split), sqlite3 (the ledger) and rich are imported inside the
# functions that use them: `poke --help` imports this module for ManifestConfig's defaults.
if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

MAX_SILENT_DROP = 0.5
"""Largest share of the clean, unmarked images a manifest may leave out without ``--allow-drop``."""
CHART_NAME = "class_counts.png"


@dataclass
class ManifestConfig:
    """Options of ``poke build-manifest``."""

    data: Path
    catalog: Path | None = None  # catalog CSV; None = the shipped 799-class one
    name: str | None = None  # manifest name; None = the dataset directory's name
    out: Path = Path("manifests")  # parent folder; the manifest goes to out/name/
    val: float = 0.1
    test: float = 0.0
    min_per_class: int = 1  # classes with fewer kept images are left out (reason class-below-min)
    seed: int = 0
    include_multiclass: bool = False  # rows labelled with several classes: one row per class
    allow_drop: bool = False  # accept missing files, unknown classes and large drops
    check_files: bool = True  # every kept JPG must exist
    chart: bool = True

    def validated(self) -> ManifestConfig:

        for flag, value in (("--val", self.val), ("--test", self.test)):
            if not 0.0 <= value < 1.0:
                raise UserError(f"{flag} {value} must be a fraction in [0, 1)", hint=f"e.g. {flag} 0.1")
        if self.val + self.test >= 1.0:
            raise UserError(
                f"--val {self.val} + --test {self.test} leave nothing to train on",
                hint="keep their sum below 1, e.g. --val 0.1 --test 0.1",
            )
        if self.min_per_class < 1:
            raise UserError(f"--min-per-class {self.min_per_class} must be at least 1")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise UserError(
                f"--out {self.out} is a file, not a folder",
                hint="--out is the folder the manifest folder NAME goes into, e.g. --out manifests",
            )
        name = self.name if self.name is not None else safe_name(Path(self.data).resolve().name)
        if not name or safe_name(name) != name:
            raise UserError(
                f"--name {name!r} is not a plain folder name",
                hint=f"use letters, digits, '-', '_' or '.', e.g. --name {safe_name(name or 'pokemon')}",
            )
        self.name = name
        return self


@dataclass
class ManifestSummary:
    out: Path
    rows: int = 0
    classes: int = 0  # catalog classes
    classes_with_images: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    manifest_sha256: str = ""
    seconds: float = 0.0

    def table(self) -> Table:
        from rich.table import Table

        t = Table(title=f"manifest {self.out}")
        t.add_column("what")
        t.add_column("count", justify="right")
        t.add_row("rows", f"{self.rows:,}")
        t.add_row("classes (catalog)", f"{self.classes:,}")
        t.add_row("classes with images", f"{self.classes_with_images:,}")
        for split, n in self.splits.items():
            t.add_row(f"  {split}", f"{n:,}")
        for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]):
            t.add_row(f"dropped: {reason}", f"{n:,}")
        t.add_row("seconds", f"{self.seconds:.2f}")
        return t


def build_manifest(cfg: ManifestConfig) -> ManifestSummary:
    """Read the ledger, choose the kept images, split them, write the manifest folder."""

    cfg.validated()
    t0 = time.perf_counter()
    ds = DatasetDir.at(cfg.data).require()
    catalog = load_catalog(cfg.catalog)
    df = read_images(ds.ledger_path)
    if df.empty:
        raise UserError(
            f"--data {ds.root} has no clean images",
            hint=f"run `poke clean --data {ds.root}` first",
        )
    kept, dropped = select_kept(df, catalog, cfg, ds.root)
    kept = finish(kept, cfg, catalog)
    out = (Path(cfg.out) / str(cfg.name)).resolve()
    sha = write_outputs(out, kept, dropped, catalog, cfg, ds.root)
    splits = {s: int((kept["split"] == s).sum()) for s in ("train", "val", "test")}
    return ManifestSummary(
        out=out,
        rows=len(kept),
        classes=len(catalog),
        classes_with_images=int(kept["class_index"].nunique()),
        splits=splits,
        dropped=dropped,
        manifest_sha256=sha,
        seconds=time.perf_counter() - t0,
    )


def read_images(ledger_path: Path) -> pd.DataFrame:
    """Every images row joined with its item, cached phash and ``unkept`` reason (:func:`pokedata.ledger.views.
    manifest_rows`; read-only, safe while others write)."""
    import sqlite3

    import pandas as pd

    from pokedata.ledger import connect_readonly, views  # here, not above: sqlite3 would slow `poke --help`

    conn = connect_readonly(ledger_path)
    try:
        return views.manifest_rows(conn)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise UserError(
            f"cannot read the images table of {ledger_path} ({exc})",
            hint="run `poke clean --data DIR` first to create it",
        ) from exc
    finally:
        conn.close()


def _explode_multiclass(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with class_name '' -> one row per class listed in their ``meta.classes``."""
    multi = df["class_name"] == ""
    if not multi.any():
        return df
    labels = df.loc[multi, "meta"].map(lambda m: list(json.loads(m or "{}").get("classes") or []))
    exploded = df.loc[multi].assign(class_name=labels).explode("class_name")
    exploded = exploded[exploded["class_name"].notna()]
    import pandas as pd

    return pd.concat([df.loc[~multi], exploded], ignore_index=True).sort_values("image_id", kind="stable")


def select_kept(
    df: pd.DataFrame, catalog: Catalog, cfg: ManifestConfig, root: Path
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Apply the keep rules in order; returns (kept rows, {reason: dropped count})."""
    import numpy as np

    from pokedata.ledger.views import KEPT_REASONS

    dropped: dict[str, int] = {}

    def drop(mask, reason: str):
        n = int(mask.sum())
        if n:
            dropped[reason] = dropped.get(reason, 0) + n
        return df[~mask]

    for reason in KEPT_REASONS:  # the ledger's kept rule, counted reason by reason
        df = drop(df["unkept"] == reason, reason)
    candidates = len(df)
    df = _explode_multiclass(df) if cfg.include_multiclass else drop(df["class_name"] == "", "multi-class")
    index_of = {name_key(c.name): c.class_index for c in catalog.classes}
    index_of.update({c.danbooru_tag: c.class_index for c in catalog.classes})
    names = df["class_name"].astype(str)
    mapping = {n: index_of.get(name_key(n), index_of.get(n.strip().lower(), -1)) for n in names.unique()}
    class_index = names.map(mapping).to_numpy(dtype=np.int64)
    unknown = class_index < 0
    if unknown.any() and not cfg.allow_drop:
        counts = names[unknown].value_counts()
        listed = ", ".join(f"{n!r} ({c})" for n, c in counts.head(5).items())
        raise UserError(
            f"{int(unknown.sum())} images are labelled with classes not in the catalog {catalog.source}: {listed}",
            hint="pass --catalog with the catalog the data was fetched with, or --allow-drop to leave them out",
        )
    df = df.assign(class_index=class_index)
    df = drop(unknown, "not-in-catalog")
    if cfg.check_files and len(df):
        missing = ~existing_files(root, df["path"]).to_numpy()
        if missing.any() and not cfg.allow_drop:
            listed = ", ".join(df.loc[missing, "path"].head(3))
            raise UserError(
                f"{int(missing.sum())} clean images listed in the ledger are missing under {root}: {listed}",
                hint=f"rerun `poke clean --data {root}` (it rewrites missing JPGs), or --allow-drop",
            )
        df = drop(missing, "missing-file")
    sizes = df.groupby("class_index")["image_id"].transform("size")
    df = drop((sizes < cfg.min_per_class).to_numpy(), "class-below-min")
    if df.empty:
        raise UserError(
            f"the manifest would be empty: no clean, unmarked, labelled image is left (dropped: {dropped})",
            hint="check `poke status`, lower --min-per-class, or fetch and clean more images",
        )
    silent = sum(
        dropped.get(k, 0) for k in ("multi-class", "not-in-catalog", "missing-file", "class-below-min")
    )
    if candidates and silent / candidates > MAX_SILENT_DROP and not cfg.allow_drop:
        raise UserError(
            f"the manifest would leave out {silent} of {candidates} clean images ({silent / candidates:.0%}): "
            + ", ".join(f"{k} {v}" for k, v in dropped.items()),
            hint="fix the cause (e.g. --include-multiclass, --catalog, lower --min-per-class) or pass --allow-drop",
        )
    return df, dropped


def existing_files(root: Path, paths: pd.Series) -> pd.Series:
    """Boolean Series: does ``root/path`` exist as a file? One directory listing per folder, not a stat per
    file (80k clean JPGs sit in at most a few hundred class folders)."""
    import pandas as pd

    found: set[str] = set()
    for folder in paths.str.rpartition("/")[0].unique():
        with contextlib.suppress(OSError), os.scandir(root / folder if folder else root) as it:
            prefix = f"{folder}/" if folder else ""
            found.update(prefix + e.name for e in it if e.is_file())
    # a set lookup per path: Series.isin on pandas' Arrow-backed strings is ~100x slower here
    return pd.Series([p in found for p in paths.tolist()], index=paths.index, dtype=bool)


def finish(df: pd.DataFrame, cfg: ManifestConfig, catalog: Catalog) -> pd.DataFrame:
    """Splits, canonical class names, provenance; the contract's columns in a stable order."""
    import numpy as np

    from pokedata.manifest_split import assign_splits, group_keys

    names = np.array(catalog.names, dtype=object)
    keys = group_keys(df["image_id"], df["dup_group"])
    out = df.assign(
        split=assign_splits(keys, val=cfg.val, test=cfg.test, seed=cfg.seed),
        class_name=names[df["class_index"].to_numpy()],
        phash=df["phash"].fillna("").astype(str),
        sha256=df["sha256"].fillna(""),
        **{c: v for c, v in provenance_columns(df).items()},
    )
    out = out.sort_values(["class_index", "image_id"], kind="stable").reset_index(drop=True)
    out = out.loc[:, list(COLUMNS)]
    return out.astype(
        {"image_id": "int64", "class_index": "int64", "width": "int64", "height": "int64", "frame": "int64"}
    )


def encode_tables(df: pd.DataFrame) -> tuple[bytes, bytes]:
    """(manifest.csv bytes, manifest.parquet bytes) from one Arrow table (Arrow's C++ CSV writer is ~10x
    pandas' ``to_csv`` here; strings are always quoted, which every CSV reader accepts)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    csv_buf, pq_buf = io.BytesIO(), io.BytesIO()
    pacsv.write_csv(table, csv_buf)
    pq.write_table(table, pq_buf)
    return csv_buf.getvalue(), pq_buf.getvalue()


def write_outputs(
    out: Path, df: pd.DataFrame, dropped: dict[str, int], catalog: Catalog, cfg: ManifestConfig, root: Path
) -> str:
    """Write every file atomically, stats.json last; returns the manifest.csv sha256."""
    from pokedata.manifest_split import write_chart

    out.mkdir(parents=True, exist_ok=True)
    stale = out / "stats.json"  # an interrupted rebuild must not look finished
    if stale.exists():
        stale.unlink()
    csv_bytes, parquet_bytes = encode_tables(df)
    sha = hashlib.sha256(csv_bytes).hexdigest()
    atomic_write_bytes(out / "manifest.parquet", parquet_bytes)
    atomic_write_bytes(out / "manifest.csv", csv_bytes)
    classes = {"catalog": catalog.source, "classes": catalog.names}
    atomic_write_text(out / "classes.json", json.dumps(classes, indent=1, ensure_ascii=False) + "\n")
    per_class = df.pivot_table(
        index="class_name", columns="split", values="image_id", aggfunc="size", fill_value=0
    )
    if cfg.chart:
        write_chart(per_class, out / CHART_NAME, f"{cfg.name}: {len(df):,} images, {len(per_class)} classes")
    stats = _stats(df, per_class, dropped, catalog, cfg, root, sha)
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=1, ensure_ascii=False) + "\n")
    return sha


def _stats(df, per_class, dropped, catalog, cfg: ManifestConfig, root: Path, sha: str) -> dict[str, Any]:
    per_class = per_class.reindex(columns=["train", "val", "test"], fill_value=0)
    per_class = per_class.astype("int64").assign(total=per_class.sum(axis=1).astype("int64"))
    per_class_dict = {
        str(k): {c: int(v) for c, v in row.items()} for k, row in per_class.to_dict("index").items()
    }
    config = asdict(cfg)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in config.items()}
    return {
        "name": cfg.name,
        "data_root": str(Path(root).resolve()),
        "manifest_sha256": sha,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "catalog": catalog.source,
        "images": len(df),
        "classes": len(catalog),
        "classes_with_images": len(per_class_dict),
        "empty_classes": len(catalog) - len(per_class_dict),
        "splits": {s: int((df["split"] == s).sum()) for s in ("train", "val", "test")},
        "per_source": {str(k): int(v) for k, v in df["source"].value_counts().sort_index().items()},
        "per_class": per_class_dict,
        "dropped": dict(dropped),
        "config": config,
    }
