"""FCD/KID math, the classifier feature space, the optional standard FID, and the EMA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pokedata.errors import UserError
from pokegan.ema import EMA
from pokegan.metrics import (
    RealStats,
    collect_features,
    fcd_metrics,
    feature_stats,
    frechet_distance,
    kernel_inception_distance,
    standard_fid_kid,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_frechet_distance_closed_form():
    # diagonal covariances: FD = |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 5))
    s = m @ m.T + np.eye(5)
    assert abs(frechet_distance(mu1[:1].repeat(5), s, mu1[:1].repeat(5), s)) < 1e-8


def test_kid_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, _ = kernel_inception_distance(x, y, n_subsets=10, subset_size=200)
    shifted, _ = kernel_inception_distance(x, y + 1.0, n_subsets=10, subset_size=200)
    assert abs(same) < 0.05 and shifted > 10 * abs(same) and shifted > 0.1


class _FakeClassifier(nn.Module):
    """feature_maps -> layer4 = the image itself repeated, so features are the channel means."""

    def feature_maps(self, x):
        return {"layer4": x}


def test_fcd_sees_a_shift_that_batch_norm_would_hide():
    clf = _FakeClassifier()
    gen = torch.Generator().manual_seed(0)
    real = [torch.randn(32, 3, 4, 4, generator=gen) * 0.3 for _ in range(4)]
    same = [torch.randn(32, 3, 4, 4, generator=gen) * 0.3 for _ in range(4)]
    shifted = [b + 0.8 for b in same]
    rs = RealStats.from_features(collect_features(clf, real, torch.device("cpu")))
    m_same = fcd_metrics(rs, collect_features(clf, same, torch.device("cpu")), kid_subsets=5)
    m_shift = fcd_metrics(rs, collect_features(clf, shifted, torch.device("cpu")), kid_subsets=5)
    assert m_shift["fcd"] > 1.0 > m_same["fcd"] >= 0
    assert m_shift["fck"] > m_same["fck"]
    assert collect_features(clf, real, torch.device("cpu"), limit=40).shape == (40, 3)


def test_real_stats_roundtrip(tmp_path):
    rs = RealStats.from_features(torch.randn(50, 6), keep=20)
    rs.save(tmp_path / "real.npz")
    back = RealStats.load(tmp_path / "real.npz")
    assert np.allclose(back.sigma, rs.sigma) and back.feats.shape == (20, 6)
    mu, sigma = feature_stats(torch.randn(10, 6))
    assert mu.shape == (6,) and sigma.shape == (6, 6)


def test_standard_fid_without_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="--inception-weights"):
        standard_fid_kid([], [], tmp_path / "missing.pth", torch.device("cpu"))


def test_ema_tracks_and_ramps():
    torch.manual_seed(0)
    net = nn.Linear(4, 4)
    ema = EMA(net, decay=0.9)
    assert not any(p.requires_grad for p in ema.model.parameters())
    assert ema.current_decay() == pytest.approx(0.1)  # ramp-up: (1 + 0) / (10 + 0)
    with torch.no_grad():
        net.weight.fill_(1.0)
    for _ in range(200):
        ema.update(net)
    assert torch.allclose(ema.model.weight, torch.ones(4, 4), atol=1e-6)
    state = ema.state_dict()
    other = EMA(nn.Linear(4, 4), decay=0.5)
    other.load_state_dict(state)
    assert other.num_updates == 200 and other.decay == 0.9
    assert torch.equal(other.model.weight, ema.model.weight)


def test_ema_without_ramp_keeps_a_trained_start():
    """Step 3 from step 2's generator: the first updates move the average by (1 - decay) of the step, not
    by ~90 % of it as the ramp from a random start does."""
    net = nn.Linear(4, 4)
    with torch.no_grad():
        net.weight.zero_()
    ramped, held = EMA(net, decay=0.99), EMA(net, decay=0.99, ramp=False)
    assert held.current_decay() == 0.99
    with torch.no_grad():
        net.weight.fill_(1.0)  # one large optimizer step away from the trained start
    ramped.update(net), held.update(net)
    assert torch.allclose(held.model.weight, torch.full((4, 4), 0.01))
    assert torch.allclose(ramped.model.weight, torch.full((4, 4), 0.9))


def test_fcd_reference_is_stratified_order_invariant_and_keyed_by_count(tmp_path):
    """The reference of FCD/FCK: every class (not the first val rows), the same images whatever the row
    order, and a cache per (size, count, seed) rather than one file reused for any count."""
    from pokegan.data import load_manifest
    from pokegan.metrics import classifier_reference
    from pokegan.models.classifier import load_frozen_classifier
    from tests.helpers.step3_run import make_step3_run
    from tests.helpers.tiny_manifest import permute_manifest

    run = make_step3_run(tmp_path, image_size=16, per_class=12)  # 4 classes x 2 val images
    clf = load_frozen_classifier(run)
    cpu = torch.device("cpu")

    def ref(n: int, folder: str) -> RealStats:
        m = load_manifest(run.manifest_dir)
        kw = {"image_size": 16, "seed": 0, "batch_size": 3, "device": cpu}
        return classifier_reference(m, clf, n=n, folder=tmp_path / folder, **kw)

    four = ref(4, "a")
    assert four.feats.shape[0] == 4
    assert ref(8, "a").feats.shape[0] == 8  # a new count is a new reference, not the cached 4
    assert {p.name for p in (tmp_path / "a").iterdir()} == {
        "real_stats-16px-n4-s0.npz",
        "real_stats-16px-n8-s0.npz",
    }
    # the 4 rows are one per class; the first 4 val rows in manifest order would be classes 0 and 1
    whole = ref(8, "b").feats  # all 8 val images, sorted by class: 2 per class
    for f in four.feats:
        i = int(np.argmin(np.abs(whole - f).sum(1)))
        assert np.allclose(whole[i], f, atol=1e-5)
    matched = sorted(int(np.argmin(np.abs(whole - f).sum(1))) // 2 for f in four.feats)
    assert matched == [0, 1, 2, 3]
    permute_manifest(run.manifest_dir)
    shuffled = ref(4, "c")
    np.testing.assert_allclose(shuffled.mu, four.mu, atol=1e-5)
    np.testing.assert_allclose(shuffled.sigma, four.sigma, atol=1e-5)
