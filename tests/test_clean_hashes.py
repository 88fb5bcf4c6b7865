"""Hash during clean: `poke clean --dedup` stores the hashes of each written JPG, dedup decodes nothing."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from PIL import Image

from pokedata.clean import CleanConfig, run_clean
from pokedata.dedup import DedupConfig, run_dedup
from pokedata.dedup.hashing import cache_hasher, to_signed
from pokedata.errors import UserError
from pokedata.ledger import Ledger
from pokedata.store import DatasetDir
from tests.helpers import images as H

METHODS = ("phash", "colour")


def _cfg(root, **kw) -> CleanConfig:
    base = {"data": root, "min_side": 16, "workers": 1, "progress": False, "hashes": METHODS}
    return CleanConfig(**{**base, **kw})


def _dedup(root, **kw) -> DedupConfig:
    return DedupConfig(data=root, workers=1, progress=False, contact_sheets=False, **kw)


def _stored(root) -> dict[tuple[int, str], tuple[int, str]]:
    """(image id, method) -> (value, clean path) of every cached hash."""
    with Ledger(DatasetDir.at(root).ledger_path) as ledger:
        rows = ledger.conn.execute(
            "SELECT h.image_id, h.method, h.value, im.path FROM hashes h JOIN images im ON im.id = h.image_id"
        ).fetchall()
    return {(i, m): (v, p) for i, m, v, p in rows}


def _from_file(path, method: str, *, fast: bool) -> int:
    hasher = cache_hasher(method, fast=fast)
    return int(to_signed(hasher.hash_batch(hasher.open(path)[None]))[0])


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    H.add_raw(root, "Pikachu", "a.png", H.encode(H.sprite(64), "PNG"))
    H.add_raw(root, "Pikachu", "b.gif", H.gif_with_transparency(64))
    H.add_raw(root, "Eevee", "c.jpg", H.large_jpeg((400, 300)))  # >= 256 px: dedup's draft decode applies
    H.add_raw(root, "Eevee", "d.gif", H.animated("GIF", n=3))
    return root


def test_clean_stores_the_exact_hashes_of_each_written_jpg(dataset):
    s = run_clean(_cfg(dataset, frames="all"))
    stored = _stored(dataset)
    assert len(stored) == 2 * s.images and s.images >= 6
    ds = DatasetDir.at(dataset)
    large = 0
    for (_, method), (value, path) in stored.items():
        clean = ds.abs(path)
        assert value == _from_file(clean, method, fast=True)  # what dedup's own pass computes from the file
        with Image.open(clean) as im:
            small = min(im.size) < 256
        if small:  # below the draft threshold that is also the method's exact definition
            assert value == _from_file(clean, method, fast=False)
        large += not small
    assert large == 2  # the 400x300 JPEG: its values come from libjpeg's reduced-scale decode, as dedup's
    # the dedup stage finds every value cached: no file is decoded again
    d = run_dedup(_dedup(dataset))
    assert d.hashed == 0 and d.colour_hashed == 0 and d.images == s.images


def test_a_rewritten_image_gets_new_hashes_and_dedup_keeps_them(dataset):
    run_clean(_cfg(dataset))
    first = _stored(dataset)
    run_dedup(_dedup(dataset))  # sets the watermark: the next clean writes rows after it
    run_clean(_cfg(dataset, background="black"))  # changed output: every row rewritten
    second = _stored(dataset)
    assert set(first) == set(second)
    ds = DatasetDir.at(dataset)
    for key, (value, path) in second.items():
        assert value == _from_file(ds.abs(path), key[1], fast=True)
    assert any(first[k][0] != second[k][0] for k in first)  # the new pixels, not the cached old ones
    d = run_dedup(_dedup(dataset))
    assert d.hashed == 0 and d.colour_hashed == 0  # stored with the row, so not taken for stale


def test_clean_without_dedup_stores_nothing_and_dedup_hashes_later(dataset):
    s = run_clean(_cfg(dataset, hashes=()))
    assert _stored(dataset) == {}
    d = run_dedup(_dedup(dataset, method="dhash"))
    assert d.hashed == s.images and d.colour_hashed == s.images
    # a later `clean --dedup` leaves the up-to-date items (and their cached hashes) alone
    run_clean(_cfg(dataset, hashes=("dhash", "colour")))
    assert run_dedup(_dedup(dataset, method="dhash")).hashed == 0


def test_an_unknown_method_is_refused_up_front(dataset):
    with pytest.raises(UserError, match="--hash"):
        run_clean(_cfg(dataset, hashes=("md5",)))


def test_a_ledger_from_before_hashes_at_is_migrated(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as conn:  # the hashes table as an older poke wrote it
        conn.execute("ALTER TABLE hashes DROP COLUMN at")
        conn.execute("INSERT INTO hashes VALUES (1, 'phash', 7)")
    with Ledger(path) as ledger:
        rows = ledger.conn.execute("SELECT image_id, method, value, at FROM hashes").fetchall()
    assert rows == [(1, "phash", 7, None)]  # kept; NULL 'at' falls back to the hashing watermark
    with Ledger(path) as ledger:  # opening again is a no-op
        assert len(ledger.conn.execute("PRAGMA table_info(hashes)").fetchall()) == 4


def test_hash_values_fit_the_signed_column():
    values = to_signed(np.asarray([2**64 - 1, 0, 2**63], dtype=np.uint64))
    assert values.tolist() == [-1, 0, -(2**63)]
