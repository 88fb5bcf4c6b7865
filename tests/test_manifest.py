"""build-manifest: the contract files, keep rules, stable grouped splits, errors, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pokedata.catalog import Catalog, PokemonClass, write_catalog_csv
from pokedata.errors import UserError
from pokedata.ledger import Ledger
from pokedata.manifest import COLUMNS, ManifestConfig, build_manifest
from pokedata.store import DatasetDir

CLASSES = ["Bulbasaur", "Ivysaur", "Venusaur", "Charmander", "Mr. Mime"]
_JPG = None


def _jpg() -> bytes:
    global _JPG
    if _JPG is None:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="JPEG")
        _JPG = buf.getvalue()
    return _JPG


@dataclass
class Row:
    class_name: str
    status: str = "done"
    dup_of: int | None = None
    dup_group: int | None = None
    conflict: int = 0
    phash: int | None = None
    source: str = "folder"
    meta: str = "{}"
    write_file: bool = True


def catalog_csv(tmp_path: Path, names=CLASSES) -> Path:
    classes = tuple(
        PokemonClass(i, n, i + 1, 1, "base", n.lower().replace(" ", "_"), f"{n} pokemon")
        for i, n in enumerate(names)
    )
    path = tmp_path / f"catalog-{len(names)}.csv"
    write_catalog_csv(Catalog(classes, str(path)), path)
    return path


def add_images(root: Path, rows: list[Row]) -> list[int]:
    """Insert items + images rows (and tiny JPGs) directly; returns the images ids."""
    ds = DatasetDir.at(root).create()
    now = time.time()
    ids = []
    with Ledger(ds.ledger_path) as ledger, ledger.transaction() as conn:
        start = conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0]
        for n, r in enumerate(rows, start=start + 1):
            item_id = conn.execute(
                "INSERT INTO items (source, source_id, class_name, status, meta, created_at, updated_at)"
                " VALUES (?, ?, ?, 'done', ?, ?, ?)",
                (r.source, f"f{n}", r.class_name, r.meta, now, now),
            ).lastrowid
            path = ds.clean_path(r.class_name, f"f{n}")
            if r.status == "done" and r.write_file:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_jpg())
            img = conn.execute(
                "INSERT INTO images (item_id, frame, status, error, path, width, height, pixel_sha256, dup_of,"
                " dup_group, conflict, created_at, updated_at) VALUES (?, 0, ?, ?, ?, 8, 8, ?, ?, ?, ?, ?, ?)",
                (item_id, r.status, None if r.status == "done" else "too-small: 8x8",
                 ds.rel(path) if r.status == "done" else None, f"{n:064x}", r.dup_of, r.dup_group, r.conflict,
                 now, now),
            ).lastrowid  # fmt: skip
            if r.phash is not None:
                conn.execute(
                    "INSERT INTO hashes (image_id, method, value) VALUES (?, 'phash', ?)", (img, r.phash)
                )
            ids.append(img)
    return ids


def _cfg(tmp_path, root, **kw) -> ManifestConfig:
    base = {
        "data": root,
        "catalog": catalog_csv(tmp_path),
        "name": "t",
        "out": tmp_path / "manifests",
        "chart": False,
    }
    return ManifestConfig(**{**base, **kw})


def test_contract_files(tmp_path):
    root = tmp_path / "ds"
    ids = add_images(
        root,
        [Row("Bulbasaur", phash=-1), Row("Bulbasaur", phash=255), Row("Ivysaur"), Row("Mr. Mime")] * 3,
    )
    summary = build_manifest(_cfg(tmp_path, root, val=0.25, chart=True))
    out = tmp_path / "manifests" / "t"
    assert summary.out == out.resolve() and summary.rows == 12
    df = pd.read_parquet(out / "manifest.parquet")
    assert tuple(df.columns) == COLUMNS
    csv_df = pd.read_csv(out / "manifest.csv", keep_default_na=False, dtype={"phash": str})
    assert (
        df["image_id"].tolist() == csv_df["image_id"].tolist()
        and df["phash"].tolist() == csv_df["phash"].tolist()
    )
    assert sorted(df["image_id"]) == sorted(ids)
    assert df["image_id"].dtype == np.int64 and df["class_index"].dtype == np.int64
    classes = json.loads((out / "classes.json").read_text())
    assert classes["classes"] == CLASSES  # zero-image classes included, index = position
    assert (df["class_name"] == [CLASSES[i] for i in df["class_index"]]).all()
    assert set(df["split"]) <= {"train", "val", "test"}
    assert set(df.loc[df["class_name"] == "Bulbasaur", "phash"]) == {"ffffffffffffffff", "00000000000000ff"}
    assert set(df.loc[df["class_name"] == "Ivysaur", "phash"]) == {""}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["data_root"] == str(root.resolve())
    assert stats["manifest_sha256"] == hashlib.sha256((out / "manifest.csv").read_bytes()).hexdigest()
    assert stats["images"] == 12 and stats["classes"] == 5 and stats["classes_with_images"] == 3
    assert stats["per_class"]["Bulbasaur"]["total"] == 6 and "created_at" in stats
    assert all((root / p).is_file() for p in df["path"])
    with Image.open(out / "class_counts.png") as chart:
        assert chart.format == "PNG" and chart.width > 100


def test_provenance_columns(tmp_path):
    """The manifest carries where each image came from, through pokedata.provenance (one schema)."""
    from pokedata.provenance import PROVENANCE_COLUMNS, read_provenance

    post = json.dumps({"tags": "pikachu solo", "rating": "g", "page_url": "https://db.test/posts/f1"})
    root = tmp_path / "ds"
    add_images(root, [Row("Bulbasaur", source="danbooru", meta=post), Row("Bulbasaur")])
    build_manifest(_cfg(tmp_path, root, val=0.0))
    df = pd.read_parquet(tmp_path / "manifests" / "t" / "manifest.parquet")
    prov = read_provenance(df).set_index(df["source"])
    assert list(prov.columns) == list(PROVENANCE_COLUMNS)
    assert prov.loc["danbooru"].to_dict() == {
        "source_url": "", "page_url": "https://db.test/posts/f1", "post_id": "f1", "tags": "pikachu solo",
        "rating": "g",
    }  # fmt: skip
    assert prov.loc["folder"].to_dict() == dict.fromkeys(PROVENANCE_COLUMNS, "")
    old = df.drop(columns=list(PROVENANCE_COLUMNS))  # a manifest written before the columns existed
    assert (read_provenance(old) == "").all().all()


def test_keep_rules_and_drop_reasons(tmp_path):
    root = tmp_path / "ds"
    ids = add_images(root, [Row("Bulbasaur"), Row("Bulbasaur"), Row("Ivysaur"), Row("Ivysaur")])
    add_images(
        root,
        [
            Row("Bulbasaur", dup_of=ids[0], dup_group=ids[0]),
            Row("Ivysaur", conflict=1),
            Row("Ivysaur", status="quarantined"),
            Row("", meta=json.dumps({"classes": ["Bulbasaur", "Venusaur"], "multi_class": True})),
        ],
    )
    build_manifest(_cfg(tmp_path, root))
    stats = json.loads((tmp_path / "manifests/t/stats.json").read_text())
    assert stats["images"] == 4
    assert stats["dropped"] == {"duplicate": 1, "label-conflict": 1, "quarantined": 1, "multi-class": 1}
    build_manifest(_cfg(tmp_path, root, include_multiclass=True))
    df = pd.read_parquet(tmp_path / "manifests/t/manifest.parquet")
    multi = df[df["image_id"] == df["image_id"].max()]
    assert sorted(multi["class_name"]) == ["Bulbasaur", "Venusaur"] and multi["split"].nunique() == 1


def test_split_deterministic_stable_grouped_and_stratified(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    fast = {"check_files": False}  # no JPGs needed for the split logic
    rows = [Row(CLASSES[int(c)], write_file=False) for c in rng.integers(0, 2, 1200)]
    ids = add_images(root, rows)
    # kept groups of 3 (e.g. --conflicts report keeps every member): set dup_group on triples
    grouped = add_images(root, [Row("Venusaur", write_file=False) for _ in range(300)])
    with Ledger(DatasetDir.at(root).ledger_path) as ledger, ledger.transaction() as conn:
        for i in range(0, 300, 3):
            conn.executemany(
                "UPDATE images SET dup_group = ? WHERE id = ?",
                [(grouped[i], grouped[i + k]) for k in range(3)],
            )
    build_manifest(_cfg(tmp_path, root, **fast, val=0.2, test=0.1, seed=7))
    first = pd.read_parquet(tmp_path / "manifests/t/manifest.parquet").set_index("image_id")["split"]
    build_manifest(_cfg(tmp_path, root, **fast, val=0.2, test=0.1, seed=7))
    again = pd.read_parquet(tmp_path / "manifests/t/manifest.parquet").set_index("image_id")["split"]
    assert first.equals(again)
    for name in CLASSES[:2]:  # stratified: every class near the asked fractions
        df = pd.read_parquet(tmp_path / "manifests/t/manifest.parquet")
        frac = df[df["class_name"] == name]["split"].value_counts(normalize=True)
        assert 0.14 < frac["val"] < 0.26 and 0.05 < frac["test"] < 0.15
    df = pd.read_parquet(tmp_path / "manifests/t/manifest.parquet").set_index("image_id")
    for i in range(0, 300, 3):
        assert df.loc[grouped[i : i + 3], "split"].nunique() == 1
    add_images(root, [Row(CLASSES[int(c)], write_file=False) for c in rng.integers(0, 3, 500)])
    build_manifest(_cfg(tmp_path, root, **fast, val=0.2, test=0.1, seed=7))
    grown = pd.read_parquet(tmp_path / "manifests/t/manifest.parquet").set_index("image_id")["split"]
    assert len(grown) == 2000 and grown.loc[first.index].equals(first)  # no image changed split
    build_manifest(_cfg(tmp_path, root, **fast, val=0.2, test=0.1, seed=8))
    other = pd.read_parquet(tmp_path / "manifests/t/manifest.parquet").set_index("image_id")["split"]
    assert (other.loc[ids] != grown.loc[ids]).mean() > 0.2


def test_errors_name_the_problem(tmp_path):
    root = tmp_path / "ds"
    DatasetDir.at(root).create()
    Ledger(DatasetDir.at(root).ledger_path).close()
    with pytest.raises(UserError, match="no clean images"):
        build_manifest(_cfg(tmp_path, root))
    add_images(root, [Row("Bulbasaur"), Row("Bulbasaur"), Row("Pikachu")])
    with pytest.raises(UserError, match="not in the catalog.*Pikachu"):
        build_manifest(_cfg(tmp_path, root))
    s = build_manifest(_cfg(tmp_path, root, allow_drop=True))
    assert s.rows == 2 and s.dropped == {"not-in-catalog": 1}
    add_images(root, [Row("Ivysaur", write_file=False)])
    with pytest.raises(UserError, match="missing"):
        build_manifest(
            _cfg(tmp_path, root, allow_drop=False, catalog=catalog_csv(tmp_path, [*CLASSES, "Pikachu"]))
        )
    small = tmp_path / "small"
    add_images(small, [Row("Bulbasaur"), Row("Ivysaur"), Row("Charmander"), Row("Venusaur"), Row("Venusaur")])
    with pytest.raises(UserError, match="leave out 3 of 5"):
        build_manifest(_cfg(tmp_path, small, min_per_class=2))
    assert build_manifest(_cfg(tmp_path, small, min_per_class=2, allow_drop=True)).rows == 2
    for kw, flag in (
        ({"val": 1.2}, "--val"),
        ({"val": 0.6, "test": 0.5}, "--test"),
        ({"name": "a/b"}, "--name"),
    ):
        with pytest.raises(UserError, match=flag):
            build_manifest(_cfg(tmp_path, root, **kw))
    with pytest.raises(UserError, match="would be empty"):
        build_manifest(_cfg(tmp_path, root, min_per_class=50, allow_drop=True))


def test_cli_build_manifest(tmp_path, runner):
    from cli import app

    root = tmp_path / "ds"
    add_images(root, [Row("Bulbasaur"), Row("Charmander")] * 4)
    out = tmp_path / "m"
    args = ["build-manifest", "--data", str(root), "--catalog", str(catalog_csv(tmp_path)), "--out", str(out)]
    res = runner.invoke(app, [*args, "--name", "demo", "--val", "0.25", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert (out / "demo" / "stats.json").is_file() and len(
        pd.read_parquet(out / "demo/manifest.parquet")
    ) == 8
    res = runner.invoke(app, [*args, "--val", "2"])
    assert res.exit_code == 2 and "--val" in res.output
    res = runner.invoke(app, [*args])  # default name: the dataset folder's name
    assert res.exit_code == 0 and (out / "ds" / "manifest.csv").is_file()
