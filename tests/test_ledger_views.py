"""The ledger owns its SQL: one kept rule read by status, the manifest, the report and dedup's summary."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pokedata.ledger import connect_readonly, views
from pokedata.manifest import ManifestConfig, build_manifest
from pokedata.manifest_schema import COLUMNS, REQUIRED_COLUMNS
from pokedata.report.model import load_dataset
from pokedata.status import dataset_status
from tests.helpers.report_data import Builder, catalog_csv

REPO = Path(__file__).resolve().parents[1]


def _dataset(root: Path) -> tuple[Path, dict[str, int]]:
    """One image per way of being left out (and two that overlap), plus four kept ones."""
    b = Builder(root)
    ids: dict[str, int] = {}
    for i in range(4):
        ids[f"kept{i}"] = b.image(b.item("Pikachu"), "Pikachu", phash=i)
    ids["quarantined"] = b.image(
        b.item("Pikachu"), "Pikachu", status="quarantined", error="too-small: 8x8 px"
    )
    ids["item-not-done"] = b.image(b.item("Pikachu", status="skipped", error="duplicate-of:1"), "Pikachu")
    ids["duplicate"] = b.image(b.item("Pikachu"), "Pikachu", phash=0)
    b.mark(ids["duplicate"], dup_of=ids["kept0"], group=ids["kept0"], kind="exact")
    b.mark(ids["kept0"], group=ids["kept0"])
    ids["label-conflict"] = b.image(b.item("Pikachu"), "Pikachu", phash=9)
    b.mark(ids["label-conflict"], group=ids["label-conflict"], conflict=1)
    # both a duplicate and in a conflict: the first rule that holds names the reason
    ids["dup+conflict"] = b.image(b.item("Pikachu"), "Pikachu", phash=0)
    b.mark(ids["dup+conflict"], dup_of=ids["kept0"], group=ids["kept0"], kind="near", conflict=1)
    b.ledger.close()
    return b.ds.root, ids


def test_one_kept_rule_for_manifest_status_report_and_counts(tmp_path):
    root, ids = _dataset(tmp_path / "d")
    with connect_readonly(root / "ledger.sqlite") as conn:
        rows = views.manifest_rows(conn).set_index("image_id")
        kept = views.kept_count(conn)
    assert kept == 4
    assert pd.isna(rows.loc[ids["kept0"], "unkept"])
    for reason in views.KEPT_REASONS:
        assert rows.loc[ids[reason], "unkept"] == reason
    assert rows.loc[ids["dup+conflict"], "unkept"] == "duplicate"

    assert dataset_status(root)["kept"] == kept
    report = load_dataset(root).images.set_index("id")
    assert report["kept"].dtype == bool
    assert sorted(report.index[report["kept"]]) == sorted(rows.index[rows["unkept"].isna()])

    summary = build_manifest(
        ManifestConfig(data=root, catalog=catalog_csv(tmp_path / "cat.csv", ["Pikachu"]), out=tmp_path / "m")
    )
    assert summary.rows == kept
    assert summary.dropped == {"quarantined": 1, "item-not-done": 1, "duplicate": 2, "label-conflict": 1}
    df = pd.read_parquet(summary.out / "manifest.parquet")
    assert tuple(df.columns) == COLUMNS and set(REQUIRED_COLUMNS) <= set(COLUMNS)
    assert sorted(df["image_id"]) == sorted(ids[f"kept{i}"] for i in range(4))


def test_status_before_clean_has_no_kept_images(tmp_path):
    b = Builder(tmp_path / "d")
    b.item("Pikachu")
    b.ledger.close()
    s = dataset_status(tmp_path / "d")
    assert s["images"] == {} and s["kept"] == 0


_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE FROM)\b|\bexecute(many|script)?\(")


def test_no_sql_outside_the_ledger_package():
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "pokedata").rglob("*.py"))
        if "ledger" not in path.relative_to(REPO / "pokedata").parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _SQL.search(line)
    ]
    assert offenders == []
