"""The judge (pokegan.judge) and the metrics it reports: reference sample, KID std, precision/recall."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pokedata.errors import UserError
from pokegan.data import load_manifest, reference_rows
from pokegan.judge import JudgeConfig, judge_metrics, load_or_train_judge, reference_features, score
from pokegan.metrics import kernel_inception_distance, precision_recall
from tests.helpers.tiny_manifest import make_tiny_manifest, permute_manifest

FAST = JudgeConfig(width=4, epochs=2, batch_size=16, image_size=16)


# ---- the reference sample -------------------------------------------------------------------------------
def test_reference_rows_exact_stratified_and_order_invariant(tmp_path):
    mdir = make_tiny_manifest(tmp_path, n_classes=4, per_class=30, size=8)
    m = load_manifest(mdir)
    rows = reference_rows(m, 12, seed=3, split="train")
    assert len(rows) == 12
    counts = np.bincount(m.labels()[rows], minlength=4)
    assert counts.tolist() == [3, 3, 3, 3]  # every class its share, not the first classes
    ids = m.df["image_id"].to_numpy()[rows].tolist()
    assert reference_rows(m, 12, seed=3, split="train").tolist() == rows.tolist()  # seeded
    assert m.df["image_id"].to_numpy()[reference_rows(m, 12, seed=4, split="train")].tolist() != ids
    assert len(reference_rows(m, 10_000, seed=3, split="train")) == len(m.rows("train"))
    permute_manifest(mdir)
    m2 = load_manifest(mdir)
    assert m2.df["image_id"].to_numpy()[reference_rows(m2, 12, seed=3, split="train")].tolist() == ids


def test_reference_rows_default_split_is_val(tmp_path):
    m = load_manifest(make_tiny_manifest(tmp_path, n_classes=3, per_class=12, size=8))
    rows = reference_rows(m, 100, seed=0)
    assert set(m.df["split"].to_numpy()[rows]) == {"val"}


# ---- KID, precision, recall -------------------------------------------------------------------------------
def test_kid_std_is_real_when_the_subset_reaches_the_sample():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    mean, std = kernel_inception_distance(x, y, n_subsets=20, subset_size=1000, seed=0)
    assert std > 1e-4  # was ~1e-14: every "subset" was the whole sample
    assert abs(mean) < 3 * std  # same distribution: unbiased estimate ~ 0
    far, far_std = kernel_inception_distance(x, y + 2.0, n_subsets=20, subset_size=1000, seed=0)
    assert far > mean + 5 * far_std


def test_precision_recall_k_nn_manifolds():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 8))
    p, r = precision_recall(real, rng.normal(size=(300, 8)), k=3)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(real, rng.normal(size=(300, 8)) + 20.0, k=3)
    assert p == 0.0 and r == 0.0
    collapsed = np.zeros((300, 8)) + rng.normal(scale=1e-3, size=(300, 8))  # mode collapse at the mean
    p, r = precision_recall(real, collapsed, k=3)
    assert p == 1.0 and r < 0.2  # realistic but covers nothing


def test_judge_metrics_keys_and_order():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 8))
    near = judge_metrics(real, rng.normal(size=(120, 8)))
    far = judge_metrics(real, rng.normal(size=(120, 8)) * 0.2 + 1.0)
    assert set(near) == {"fd", "kid_mean", "kid_std", "precision", "recall"}
    assert near["fd"] < far["fd"] and near["kid_mean"] < far["kid_mean"]
    assert near["recall"] > far["recall"]


# ---- the judge network, trained and cached ---------------------------------------------------------------
@pytest.fixture
def judged(tmp_path, one_thread):
    mdir = make_tiny_manifest(tmp_path, n_classes=4, per_class=18, size=16)
    m = load_manifest(mdir)
    cfg = JudgeConfig(**{**FAST.__dict__, "cache_dir": str(tmp_path / "judge-cache")})
    return mdir, m, cfg, load_or_train_judge(m, cfg)


def test_judge_trains_on_train_split_learns_and_is_cached(judged):
    mdir, m, cfg, judge = judged
    assert judge.info["train_images"] == len(m.rows("train"))
    assert judge.info["val_images"] == len(m.rows("val"))
    assert judge.info["task"] == "classes"
    path = judge.folder / "judge.pt"
    assert path.is_file() and m.content_sha256[:16] in str(judge.folder)
    before = path.stat().st_mtime_ns
    again = load_or_train_judge(m, cfg)  # cached: loaded, not trained again
    assert path.stat().st_mtime_ns == before
    x = torch.rand(5, 3, 32, 32) * 2 - 1  # any size: resized to the judge's 16 px
    f1, f2 = judge.features(x), again.features(x)
    assert f1.shape == (5, judge.feature_dim) and torch.allclose(f1, f2)
    # a feature is a function of one image, not of its batch-mates
    assert torch.allclose(judge.features(x[:1]), f1[:1], atol=1e-5)


def test_judge_features_separate_real_from_noise(judged):
    _, m, _, judge = judged
    real = reference_features(judge, m, image_size=16, n=100, seed=0, split="train")
    assert (judge.folder / "reference-train-16px-n100-s0.npy").is_file()
    a, b = real[0::2], real[1::2]  # the sample is sorted by class: interleave for two like halves
    g = torch.Generator().manual_seed(0)
    noise_images = torch.rand(len(b), 3, 16, 16, generator=g) * 2 - 1
    noise = judge.collect([noise_images])
    same = judge_metrics(a, b)
    fake = judge_metrics(a, noise)
    assert score(judge, a, [noise_images[:20], noise_images[20:]]) == pytest.approx(fake)
    assert same["fd"] < fake["fd"] / 2
    assert same["recall"] > fake["recall"]  # noise images all look alike: they cover nothing


def test_judge_figures_do_not_depend_on_manifest_row_order(judged, tmp_path):
    mdir, m, cfg, judge = judged
    real = reference_features(judge, m, image_size=16, n=16, seed=0)
    permute_manifest(mdir)
    m2 = load_manifest(mdir)
    judge2 = load_or_train_judge(m2, cfg)  # a new manifest hash: trained again, on the permuted rows
    assert judge2.folder != judge.folder
    real2 = reference_features(judge2, m2, image_size=16, n=16, seed=0)
    np.testing.assert_allclose(real, real2, atol=1e-4)


def test_judge_refuses_a_manifest_without_train_images(tmp_path):
    import pandas as pd

    mdir = make_tiny_manifest(tmp_path, n_classes=2, per_class=6, size=8)
    df = pd.read_parquet(mdir / "manifest.parquet")
    df["split"] = "val"
    df.to_parquet(mdir / "manifest.parquet", index=False)
    stats = json.loads((mdir / "stats.json").read_text())
    stats.pop("manifest_sha256")
    (mdir / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(UserError, match="at least 2 train images"):
        load_or_train_judge(load_manifest(mdir), JudgeConfig(cache_dir=str(tmp_path / "c")))
