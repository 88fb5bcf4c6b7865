"""Manifest reading, loaders (JPEG and packed cache), the seeded sampler and batched augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pokedata.errors import UserError
from pokegan.data import EpochSampler, augment_batch, load_manifest, make_loader, stratified_subset
from tests.helpers.tiny_manifest import make_tiny_manifest


@pytest.fixture
def manifest(tmp_path):
    return load_manifest(make_tiny_manifest(tmp_path, n_classes=3, per_class=8, size=24))


def _all(loader):
    xs, ys, rs = zip(*list(loader), strict=True)
    return torch.cat(xs), torch.cat(ys), torch.cat(rs)


def test_manifest_contract(manifest):
    assert manifest.classes == ["Shape00", "Shape01", "Shape02"] and len(manifest) == 24
    assert len(manifest.sha256) == 64 and manifest.data_root.is_dir()
    assert set(manifest.df["split"]) == {"train", "val", "test"}
    assert manifest.abs_paths()[0].is_file()


def test_loader_batches_and_range(manifest):
    x, y, rows = _all(
        make_loader(manifest, "val", 16, 4, augment=False, seed=0, num_workers=0, distributed=False)
    )
    assert x.shape == (len(manifest.rows("val")), 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.std() > 0.1
    assert sorted(rows.tolist()) == manifest.rows("val").tolist()
    assert (y.numpy() == manifest.labels()[rows.numpy()]).all()


def test_cache_matches_jpeg_and_is_invalidated(tmp_path, manifest):
    kw = dict(augment=True, seed=3, num_workers=0, distributed=False, cache_dir=tmp_path / "cache")
    a = _all(make_loader(manifest, "train", 16, 5, **kw))
    b = _all(make_loader(manifest, "train", 16, 5, use_cache=True, **kw))
    assert torch.equal(a[2], b[2]) and torch.allclose(a[0], b[0], atol=1e-6)  # same order, same pixels
    (cached,) = list((tmp_path / "cache").iterdir())
    assert json.loads((cached / "meta.json").read_text())["complete"]
    # a rebuilt (here: reordered) manifest gets a new cache, keyed by its rows; the stale one is removed
    from tests.helpers.tiny_manifest import permute_manifest

    permute_manifest(manifest.dir)
    m2 = load_manifest(manifest.dir)
    assert m2.content_sha256 != manifest.content_sha256
    make_loader(m2, "train", 16, 5, use_cache=True, **kw)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{m2.content_sha256[:16]}-16px"]


def test_a_step_can_switch_augmentation_off_whatever_data_augment_says(manifest):
    """Step 2 reconstructs each image from its own embedding: its loader must give the images as they are."""
    from pokegan.config import DataConfig, PretrainConfig
    from pokegan.data import loader_from_config

    data = DataConfig(image_size=16, batch_size=4, num_workers=0, use_cache=False, augment=True)
    plain = _all(
        make_loader(manifest, "train", 16, 4, augment=False, seed=0, num_workers=0, distributed=False)
    )
    by_row = {int(r): x for x, r in zip(plain[0], plain[2], strict=True)}

    def batches(**kw):
        return _all(loader_from_config(manifest, "train", data, train=True, distributed=False, **kw))

    off = batches(augment=False)
    assert all(torch.equal(x, by_row[int(r)]) for x, r in zip(off[0], off[2], strict=True))
    on = batches()  # None: [data] augment (flips and crops)
    assert any(not torch.equal(x, by_row[int(r)]) for x, r in zip(on[0], on[2], strict=True))
    assert PretrainConfig().augment is False and PretrainConfig().data.augment is True


def test_sampler_seeded_resumable_and_sharded():
    rows = np.arange(10, 21)
    s = EpochSampler(rows, shuffle=True, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=4)
    assert list(s) == full[4:]  # mid-epoch resume replays the same order
    s.set_epoch(3)
    assert list(s) != full and sorted(full) == rows.tolist()
    shards = [list(EpochSampler(rows, shuffle=True, seed=1, rank=r, world=2).order(2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 6 and set(shards[0]) | set(shards[1]) == set(rows.tolist())
    w = np.where(rows < 12, 100.0, 1.0)
    drawn = EpochSampler(rows, shuffle=True, seed=0, weights=w).order(0)
    assert np.isin(drawn, [10, 11]).mean() > 0.6  # weighted draws follow the weights


def test_augmentation_is_seeded_and_flips():
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    x[:, :, :, :4] = 255  # left half white
    a = augment_batch(x, torch.Generator().manual_seed(0), crop_scale=1.0)
    b = augment_batch(x, torch.Generator().manual_seed(0), crop_scale=1.0)
    assert torch.equal(a, b) and a.shape == (2, 3, 8, 8)
    flips = [
        augment_batch(x[:1], torch.Generator().manual_seed(s), 1.0)[0, 0, 0, 0].item() for s in range(12)
    ]
    assert min(flips) < 0 < max(flips)  # some flipped, some not


def test_subset_and_errors(tmp_path, manifest):
    rows = manifest.rows("train")
    sub = stratified_subset(rows, manifest.labels(), 6, seed=0)
    assert len(sub) == 6 and set(manifest.labels()[sub]) == {0, 1, 2}
    with pytest.raises(UserError, match="--data-root"):
        load_manifest(manifest.dir, data_root=tmp_path / "missing")
    with pytest.raises(UserError, match="manifest.parquet"):
        load_manifest(tmp_path)
    with pytest.raises(UserError, match="unknown split"):
        manifest.rows("dev")


def test_cache_follows_a_reordered_manifest_whose_recorded_hash_is_stale(tmp_path):
    from pokegan.data import decode_image
    from tests.helpers.tiny_manifest import permute_manifest

    mdir = make_tiny_manifest(tmp_path, n_classes=3, per_class=6, size=16)
    kw = {"augment": False, "seed": 0, "num_workers": 0, "distributed": False, "use_cache": True}
    _all(make_loader(load_manifest(mdir), "all", 16, 8, **kw))  # builds the cache
    permute_manifest(mdir, keep_recorded_hash=True)  # stats.json still records the old hash
    m = load_manifest(mdir)
    x, y, rows = _all(make_loader(m, "all", 16, 8, **kw))
    paths = m.abs_paths()
    for img, label, r in zip(x, y, rows.tolist(), strict=True):
        assert int(label) == m.labels()[r]
        expect = torch.from_numpy(decode_image(paths[r], 16)).float() / 127.5 - 1
        assert torch.allclose(img, expect, atol=1e-5), f"row {r}: the cache served another image"
