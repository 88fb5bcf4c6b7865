"""The dedup stage on small ledgers: marks, conflicts in each mode, reset, rerun, report, cache."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pokedata.dedup import DedupConfig, reset_dedup, run_dedup
from pokedata.dedup.hashing import get_hasher, to_signed
from pokedata.errors import UserError
from pokedata.ledger import Ledger
from tests.helpers.dedup_ledger import Spec, make_dataset, marks, near_copy, pattern


def _cfg(root, **kw) -> DedupConfig:
    kw.setdefault("workers", 1)
    return DedupConfig(data=root, progress=False, **kw)


@pytest.fixture
def dataset(tmp_path):
    a, b, c, d = (pattern(s, 96) for s in (1, 2, 3, 4))
    specs = [
        Spec("Pikachu", a, source="ddg"),  # 1
        Spec("Pikachu", a.resize((128, 128)), source="ddg"),  # 2 larger copy: survives
        Spec("Pikachu", a, source="danbooru"),  # 3 exact copy of 1 (same pixels)
        Spec("Pikachu", near_copy(a, scale=0.9, quality=60), source="folder"),  # 4 near copy
        Spec("Raichu", b, source="ddg"),  # 5
        Spec("Pikachu", b, source="danbooru"),  # 6 same image as 5 under another class: conflict
        Spec("Raichu", b, source="ddg", source_id="again"),  # 7 exact copy of 5 in Raichu
        Spec("Eevee", c),  # 8 unique
        Spec("Eevee", d),  # 9 unique
    ]
    ids = make_dataset(tmp_path / "ds", specs)
    assert ids == list(range(1, 10))
    return tmp_path / "ds"


def test_marks_within_a_class(dataset):
    s = run_dedup(_cfg(dataset))
    m = marks(dataset)
    # group {1,2,3,4}: survivor 2 (largest area); 1 and 3 share pixels but not with 2 -> "near"
    assert m[2] == (None, 2, None, 0)
    assert m[1][0:2] == (2, 2) and m[3][0:2] == (2, 2) and m[4][0:2] == (2, 2)
    assert {m[1][2], m[3][2], m[4][2]} == {"near"}
    assert m[8] == m[9] == (None, None, None, 0)
    assert s.images == 9 and s.hashed == 9 and s.colour_hashed == 9 and s.failed == 0
    assert s.marked_duplicates == 3  # 1, 3, 4 -> 2 (5, 6, 7 are a conflict pair: marked, not dups)
    assert s.conflicts == 1 and s.conflict_images == 3
    assert s.near_groups == 1 and s.exact_groups == 0
    assert s.kept == 3  # 2, 8, 9
    assert 0 <= s.max_distance <= s.threshold
    assert "dedup" in s.table().title


def test_exact_kind_when_pixels_match_the_survivor(tmp_path):
    a = pattern(5)
    make_dataset(tmp_path, [Spec("Mew", a, source="danbooru"), Spec("Mew", a, source="ddg")])
    run_dedup(_cfg(tmp_path))
    assert marks(tmp_path) == {1: (None, 1, None, 0), 2: (1, 1, "exact", 0)}


def test_conflicts_drop(dataset):
    run_dedup(_cfg(dataset, conflicts="drop"))
    m = marks(dataset)
    # the pair 5 (Raichu) ~ 6 (Pikachu) marks both, and 7 (Raichu, identical to 5) with them
    assert m[5] == m[6] == m[7] == (None, None, None, 1)
    # the Pikachu group {1, 2, 3, 4} is untouched: conflicts are per pair, never whole classes
    assert m[2] == (None, 2, None, 0)


def test_conflicts_keep_first(dataset):
    run_dedup(_cfg(dataset, conflicts="keep-first"))
    m = marks(dataset)
    # 6 (danbooru) ranks before 5 (ddg) at equal area: the Raichu side of the pair is marked
    assert m[6] == (None, None, None, 0)
    assert m[5][3] == 1 and m[7][3] == 1


def test_conflicts_report_marks_nothing_but_lists_them(dataset):
    s = run_dedup(_cfg(dataset, conflicts="report"))
    m = marks(dataset)
    assert all(v[3] == 0 for v in m.values())
    assert s.conflicts == 1 and s.conflict_images == 0
    assert m[7][0] == 5  # inside Raichu, 7 is a duplicate of 5
    assert m[5][1] == m[6][1] == m[7][1] == 6  # the reported pair shares one split group
    doc = json.loads((dataset / "reports" / "dedup.json").read_text())
    (pair,) = doc["conflicts"]
    assert sorted(pair["classes"]) == ["Pikachu", "Raichu"] and set(pair["images"]) <= {5, 6, 7}
    assert pair["distance"] == 0 and pair["marked"] == []


def test_reset_and_rerun_with_another_threshold(dataset):
    run_dedup(_cfg(dataset))
    marked = marks(dataset)
    n = reset_dedup(dataset)
    assert n == sum(1 for v in marked.values() if v != (None, None, None, 0))
    assert all(v == (None, None, None, 0) for v in marks(dataset).values())
    assert reset_dedup(dataset) == 0
    # threshold 0: only identical hashes / pixels; the rerun replaces the marks wholesale
    s0 = run_dedup(_cfg(dataset, threshold=0))
    assert s0.hashed == 0  # hashes came from the cache
    m0 = marks(dataset)
    s10 = run_dedup(_cfg(dataset, threshold=10))
    assert s10.marked_duplicates >= s0.marked_duplicates
    run_dedup(_cfg(dataset, threshold=0))
    assert marks(dataset) == m0  # reproducible: no leftovers from the threshold-10 run


def test_other_methods_and_cache_per_method(dataset):
    for method in ("dhash", "ahash", "whash"):
        s = run_dedup(_cfg(dataset, method=method, conflicts="report"))
        assert s.hashed == 9 and s.method == method
        assert s.colour_hashed == (9 if method == "dhash" else 0)  # one colour signature per image
        assert marks(dataset)[7][0] == 5  # the exact copy is found by any method
    with Ledger(dataset / "ledger.sqlite") as ledger:
        n = dict(ledger.conn.execute("SELECT method, count(*) FROM hashes GROUP BY method").fetchall())
    assert n == {"dhash": 9, "ahash": 9, "whash": 9, "colour": 9}


def test_report_and_contact_sheets(dataset):
    s = run_dedup(_cfg(dataset, conflicts="report"))
    reports = dataset / "reports"
    doc = json.loads((reports / "dedup.json").read_text())
    assert doc["settings"]["method"] == "phash" and doc["settings"]["threshold"] == s.threshold
    assert doc["settings"]["colour"] is True and doc["settings"]["colour_tolerance"] == s.colour_tolerance
    assert doc["summary"]["marked_duplicates"] == 4
    sizes = [g["size"] for g in doc["groups"]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 4
    first = doc["groups"][0]
    assert first["members"][0]["id"] == first["survivor"] == 2 and first["members"][0]["dup_of"] is None
    for g in doc["groups"]:  # every member lies within the threshold of its survivor, measured directly
        assert all(m["distance"] <= s.threshold for m in g["members"])
        assert all(m["dup_of"] == g["survivor"] for m in g["members"][1:])
    for name in ("dedup-groups.png", "dedup-conflicts.png"):
        with Image.open(reports / name) as im:
            assert im.format == "PNG" and im.width > 500
    with Image.open(reports / "dedup-groups.png") as im:
        assert im.height >= 2 * 96  # two groups, one row each
        # the survivor is outlined green (x = label column start - 2)
        px = im.convert("RGB").getpixel((150 - 1, 20))
        assert px[1] > 150 and px[0] < 100


def test_unreadable_clean_file_is_quarantined_not_a_crash(dataset):
    (dataset / "clean" / "Eevee").joinpath("folder-img7-f0000.jpg").write_bytes(b"garbage")
    s = run_dedup(_cfg(dataset))
    assert s.failed == 1 and s.images == 8
    with Ledger(dataset / "ledger.sqlite") as ledger:
        status, error = ledger.conn.execute("SELECT status, error FROM images WHERE id = 8").fetchone()
    assert status == "quarantined" and error.startswith("hash-failed")


def test_parallel_hashing_in_the_stage(dataset):
    s = run_dedup(DedupConfig(data=dataset, workers=2, progress=True))
    assert s.hashed == 9 and s.colour_hashed == 9 and s.marked_duplicates == 3


def test_empty_dataset(tmp_path):
    make_dataset(tmp_path, [])
    s = run_dedup(_cfg(tmp_path))
    assert s.images == 0 and s.marked_duplicates == 0
    assert (tmp_path / "reports" / "dedup-groups.png").is_file()


@pytest.mark.parametrize(
    ("kw", "flag"),
    [
        ({"method": "md5"}, "--hash"),
        ({"threshold": 4, "conflict_threshold": 6}, "--conflict-threshold"),
        ({"threshold": 40}, "--threshold"),
        ({"threshold": -1}, "--threshold"),
        ({"conflicts": "merge"}, "--conflicts"),
        ({"workers": -2}, "--workers"),
        ({"colour_tolerance": -1}, "--colour-tolerance"),
        ({"colour_tolerance": 5000}, "--colour-tolerance"),
    ],
)
def test_options_validated_up_front(dataset, kw, flag):
    with pytest.raises(UserError, match=flag):
        run_dedup(_cfg(dataset, **kw))
    assert all(v == (None, None, None, 0) for v in marks(dataset).values())


def test_not_a_dataset_dir(tmp_path):
    with pytest.raises(UserError, match="not a dataset directory"):
        run_dedup(_cfg(tmp_path / "nope"))
    with pytest.raises(UserError, match="not a dataset directory"):
        reset_dedup(tmp_path / "nope")


def test_rewritten_clean_image_is_rehashed(dataset):
    import time

    from tests.helpers.dedup_ledger import pixel_sha256

    run_dedup(_cfg(dataset))
    assert marks(dataset)[9] == (None, None, None, 0)
    assert run_dedup(_cfg(dataset)).hashed == 0  # marks do not invalidate the cache
    # `poke clean --force` rewrites image 9 with a copy of image 8's picture
    with Ledger(dataset / "ledger.sqlite") as ledger:
        path8, path9 = (
            r[0] for r in ledger.conn.execute("SELECT path FROM images WHERE id IN (8, 9) ORDER BY id")
        )
        img = Image.open(dataset / path8).convert("RGB")
        img.save(dataset / path9, quality=95)
        ledger.conn.execute(
            "UPDATE images SET pixel_sha256 = ?, updated_at = ? WHERE id = 9",
            (pixel_sha256(img), time.time() + 1),
        )
    s = run_dedup(_cfg(dataset))
    assert s.hashed == 1 and s.colour_hashed == 1
    assert marks(dataset)[9][1] == marks(dataset)[8][1] == 8  # now one group


def test_a_ledger_from_before_the_colour_signature_gets_it_once(dataset):
    run_dedup(_cfg(dataset))
    with Ledger(dataset / "ledger.sqlite") as ledger:  # what a ledger written by the old code holds
        ledger.conn.execute("DELETE FROM hashes WHERE method = 'colour'")
        ledger.conn.execute("DELETE FROM meta WHERE key = 'dedup.hashed_at.colour'")
    s = run_dedup(_cfg(dataset))
    assert s.hashed == 0 and s.colour_hashed == 9  # the phash cache is kept, only colour is computed
    assert run_dedup(_cfg(dataset)).colour_hashed == 0
    s = run_dedup(_cfg(dataset, colour=False))  # --ignore-colour: no colour test, none needed
    assert s.colour_tolerance is None and s.colour_hashed == 0


def test_phash_values_of_an_older_version_are_recomputed_once(dataset):
    """phash version 2 rounds DCT ties (float noise used to pick those bits): a ledger whose phash values
    came from version 1 gets them recomputed by its next run, once; the colour signatures are kept."""
    run_dedup(_cfg(dataset))
    with Ledger(dataset / "ledger.sqlite") as ledger:  # what a ledger written before versions holds
        flip_low_bit = "UPDATE hashes SET value = (~value & 1) | (value & ~1) WHERE method = 'phash'"
        ledger.conn.execute(flip_low_bit)  # planted stale values
        ledger.conn.execute("DELETE FROM meta WHERE key LIKE 'hashes.version.%'")
    s = run_dedup(_cfg(dataset))
    assert s.hashed == 9 and s.colour_hashed == 0
    assert run_dedup(_cfg(dataset)).hashed == 0
    with Ledger(dataset / "ledger.sqlite") as ledger:
        stored = dict(ledger.conn.execute("SELECT image_id, value FROM hashes WHERE method = 'phash'"))
        paths = dict(ledger.conn.execute("SELECT id, path FROM images"))
    hasher = get_hasher("phash")
    for image_id, value in stored.items():  # the current values, not the planted ones
        assert value == int(to_signed(hasher.hash_batch(hasher.open(dataset / paths[image_id])[None]))[0])
