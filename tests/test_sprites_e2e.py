"""End to end on the real gen-1 sprites (../shared/data/sprites-gen1): import -> clean -> dedup -> manifest.

Two datasets keep it to well under a minute on 2 shared cores: every sprite's first frame (151 classes in
the manifest), and every frame of a subset of sprites (the heavy part: frames, backgrounds, dedup folding).
The sprites are copied to the test's temp dir, never into the repo.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pokedata.catalog import Catalog, PokemonClass, write_catalog_csv
from pokedata.clean import CleanConfig, run_clean
from pokedata.fetch.folder import FolderImportConfig, import_folder
from pokedata.manifest import ManifestConfig, build_manifest

pytestmark = [pytest.mark.slow, pytest.mark.shared]

SUBSET = (1, 4, 7, 25, 39, 52, 54, 63, 74, 92, 94, 129, 133, 143, 150, 151)  # every frame of these
BG = (255, 255, 255)


def gen1_catalog(shared: Path, out: Path) -> tuple[Path, dict[int, str]]:
    """A 151-class catalog (national dex 1-151) from the stats table; Nidoran F / M stay two classes."""
    names: dict[int, str] = {}
    with (shared / "pokemon-with-stats.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            dex = int(row["#"])
            if dex <= 151 and dex not in names:
                names[dex] = row["Name"].replace("♀", " F").replace("♂", " M")
    classes = tuple(
        PokemonClass(i, names[d], d, 1, "base", names[d].lower().replace(" ", "_"), f"{names[d]} pokemon")
        for i, d in enumerate(sorted(names))
    )
    write_catalog_csv(Catalog(classes, str(out)), out)
    return out, names


def import_sprites(shared: Path, tmp: Path, names: dict[int, str], dexes, data: Path) -> None:
    """Lay the sprites out as <class>/<dex>.gif in tmp and import them with the folder importer."""
    folder = tmp / f"sprites-{data.name}"
    for dex in dexes:
        (folder / names[dex]).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / "sprites-gen1" / f"{dex}.gif", folder / names[dex] / f"{dex}.gif")
    summary = import_folder(FolderImportConfig(root=folder, data=data, progress=False))
    assert summary.done == len(dexes), summary


def _rows(data: Path) -> pd.DataFrame:
    with sqlite3.connect(data / "ledger.sqlite") as conn:
        return pd.read_sql_query(
            "SELECT im.*, it.class_name FROM images im JOIN items it ON it.id = im.item_id ORDER BY im.id",
            conn,
        )


def test_first_frames_make_a_151_class_manifest(shared_data, tmp_path):
    from pokedata.dedup import DedupConfig, run_dedup

    catalog, names = gen1_catalog(shared_data, tmp_path / "gen1.csv")
    data = tmp_path / "first"
    import_sprites(shared_data, tmp_path, names, sorted(names), data)
    s = run_clean(CleanConfig(data=data, min_side=16, workers=2, progress=False))
    assert s.images == 151 and s.quarantined == 0
    run_dedup(DedupConfig(data=data, workers=2, progress=False, contact_sheets=False))
    m = build_manifest(
        ManifestConfig(data=data, catalog=catalog, name="gen1", out=tmp_path / "manifests", val=0.2)
    )
    assert m.classes == 151 and m.classes_with_images == 151
    df = pd.read_parquet(m.out / "manifest.parquet")
    assert df["class_index"].nunique() == 151
    assert json.loads((m.out / "classes.json").read_text())["classes"][28] == "Nidoran F"
    assert (df["frame"] == 0).all() and set(df["split"]) == {"train", "val"}


def test_every_frame_clean_backgrounds_and_dedup_folds(shared_data, tmp_path):
    from pokedata.dedup import DedupConfig, run_dedup

    _, names = gen1_catalog(shared_data, tmp_path / "gen1.csv")
    data = tmp_path / "frames"
    import_sprites(shared_data, tmp_path, names, SUBSET, data)
    s = run_clean(CleanConfig(data=data, min_side=16, frames="all", workers=2, progress=False))
    rows = _rows(data)
    assert s.quarantined == 0 and len(rows) == s.images
    for dex in SUBSET:  # every frame of the source is a row, with its index
        with Image.open(shared_data / "sprites-gen1" / f"{dex}.gif") as im:
            n = im.n_frames
        assert sorted(rows.loc[rows["class_name"] == names[dex], "frame"]) == list(range(n))
    # no black backgrounds: the four corners of every frame are the background (JPEG tolerance)
    for rel in rows["path"]:
        with Image.open(data / rel) as im:
            arr = np.asarray(im.convert("RGB")).astype(int)
        corners = arr[[0, 0, -1, -1], [0, -1, 0, -1]]
        dist = np.abs(corners - BG).max(axis=1)  # a sprite may touch a corner; JPEG rings near edges
        assert (dist <= 24).sum() >= 3 and (corners.sum(axis=1) > 150).all(), (
            f"{rel}: corners {corners.tolist()}"
        )
    d = run_dedup(DedupConfig(data=data, workers=2, progress=False, contact_sheets=False))
    assert d.images == len(rows) and d.marked_duplicates > 0
    kept = _rows(data)
    kept = kept[kept["dup_of"].isna() & (kept["conflict"] == 0)]
    per_class = Counter(kept["class_name"])
    frames = Counter(rows["class_name"])
    for dex in SUBSET:  # frames folded to a plausible number of distinct poses per Pokemon
        name = names[dex]
        assert 1 <= per_class[name] <= max(3, frames[name] // 2), (name, per_class[name], frames[name])
    assert len(kept) < 0.35 * len(rows)
