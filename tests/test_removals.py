"""Warnings when clean or dedup removes more than half of the data or of a class (and in `poke status`)."""

from __future__ import annotations

from pokedata.clean import CleanConfig, run_clean
from pokedata.dedup import DedupConfig, run_dedup
from pokedata.ledger import Ledger
from pokedata.removals import heavy_removals, removals, warning_lines
from pokedata.status import dataset_status, status_tables
from tests.helpers import images as H


def _sprites(root):
    """Mew: 3 small sprites (40 px) + 1 large; Eevee: 2 large (distinct)."""
    for i in range(3):
        H.add_raw(root, "Mew", f"s{i}.png", H.encode(H.sprite(40, colour=(200, 30 * i, 40)), "PNG"))
    H.add_raw(root, "Mew", "big.png", H.encode(H.noise((96, 96), seed=1), "PNG"))
    H.add_raw(root, "Eevee", "a.png", H.encode(H.noise((96, 96), seed=2), "PNG"))
    H.add_raw(root, "Eevee", "b.png", H.encode(H.noise((96, 96), seed=3), "PNG"))


def test_clean_warns_with_count_reason_and_flag(tmp_path):
    root = tmp_path / "ds"
    _sprites(root)
    s = run_clean(CleanConfig(data=root, min_side=64, workers=1, progress=False))
    # the data lost 3 of 6 (not more than half): only the class Mew (3 of 4) is named
    assert s.warnings == [
        "class Mew: 3 of 4 files quarantined: 3 too-small (shorter side < 64 px); sprite sets usually "
        "need a lower --min-side (--min-side 40 keeps 3 of them)"
    ]
    # a lower bar keeps them, and the warning goes away
    s = run_clean(CleanConfig(data=root, min_side=32, workers=1, progress=False))
    assert s.warnings == []


def test_status_shows_the_same_per_class(tmp_path):
    root = tmp_path / "ds"
    _sprites(root)
    run_clean(CleanConfig(data=root, min_side=64, workers=1, progress=False))
    st = dataset_status(root)
    (row,) = st["removals"]
    assert (row["stage"], row["scope"], row["removed"], row["total"]) == ("clean", "Mew", 3, 4)
    assert "--min-side" in row["line"]
    titles = [t.title for t in status_tables(st)]
    assert any("more than half" in (t or "") for t in titles)


def test_dedup_warns_when_an_animation_folds(tmp_path):
    root = tmp_path / "ds"
    H.add_raw(root, "Mew", "a.gif", H.animated("GIF", n=8, size=64))  # frames: one square, moving
    H.add_raw(root, "Eevee", "b.png", H.encode(H.noise((96, 96), seed=2), "PNG"))
    run_clean(CleanConfig(data=root, min_side=16, frames="all", workers=1, progress=False))
    # the test animation recolours every frame: judge by structure alone (--ignore-colour)
    s = run_dedup(DedupConfig(data=root, workers=1, progress=False, colour=False))
    assert s.marked_duplicates >= 5
    assert any(line.startswith("class Mew:") and "removed by dedup" in line and "--threshold" in line
               for line in s.warnings)  # fmt: skip
    with Ledger(root / "ledger.sqlite") as ledger:
        rows = removals(ledger.conn, "dedup")
        assert rows[0].scope == "" and rows[0].total == 9
        assert [r.scope for r in heavy_removals(ledger.conn, ("dedup",))][:2] == ["", "Mew"]


def test_warning_lines_name_at_most_a_few_classes():
    from pokedata.removals import Removal

    rows = [Removal("dedup", "", 10, 100)] + [
        Removal("dedup", f"c{i}", 9, 10, reasons={"duplicates": 9}) for i in range(8)
    ]
    lines = warning_lines(rows, shown=3)
    assert len(lines) == 4 and lines[-1].startswith("and 5 more classes")
    assert lines[0] == "class c0: 9 of 10 images removed by dedup: 9 duplicates"


def test_cli_clean_ends_with_the_warning(tmp_path, runner):
    from cli import app

    root = tmp_path / "ds"
    _sprites(root)
    res = runner.invoke(app, ["clean", "--data", str(root), "--workers", "1", "--no-progress", "--dedup"])
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-3:]
    assert any("warning:" in line for line in last) and "--min-side" in res.output
