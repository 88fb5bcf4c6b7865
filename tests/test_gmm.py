"""The torch GMM: agrees with scikit-learn, samples by the mixture weights, BIC, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pokedata.errors import UserError
from pokegan.gmm import GaussianMixture, GMMFitConfig, fit_gmm

pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(n=3000, d=8, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (k, d))
    sizes = rng.multinomial(n, np.full(k, 1 / k))
    parts = []
    for c, m in zip(centres, sizes, strict=True):
        a = rng.normal(0, 1, (d, d)) * 0.4 + np.eye(d)  # correlated (full covariance matters)
        parts.append(c + rng.normal(0, 1, (m, d)) @ a.T)
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_fit_agrees_with_sklearn(covariance):
    from sklearn.mixture import GaussianMixture as SkGMM

    x = _blobs()
    ours = fit_gmm(x, GMMFitConfig(n_components=4, covariance=covariance, seed=0))
    sk = SkGMM(4, covariance_type=covariance, random_state=0).fit(x)
    assert ours.meta["converged"]
    assert ours.score(x) == pytest.approx(sk.score(x), abs=2e-3)
    assert ours.bic(x) == pytest.approx(sk.bic(x), rel=1e-4)
    # the same clusters: sorted weights agree
    assert np.allclose(np.sort(ours.weights.numpy()), np.sort(sk.weights_), atol=1e-3)


def test_sklearn_backend_gives_the_same_object():
    x = _blobs(n=800, d=4, k=3)
    g = fit_gmm(x, GMMFitConfig(n_components=3, backend="sklearn"))
    assert g.meta["backend"] == "sklearn" and g.means.shape == (3, 4)
    assert g.score(x) == pytest.approx(g.meta["mean_log_likelihood"], abs=1e-6)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_sample_component_counts_match_weights(covariance):
    """Chi-square goodness of fit of the components of 10k samples against the mixture weights."""
    from scipy.stats import chisquare

    w = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03], dtype=torch.float64)
    d = 3
    means = torch.arange(5, dtype=torch.float64)[:, None].repeat(1, d) * 10
    cov = torch.eye(d, dtype=torch.float64).repeat(5, 1, 1) if covariance == "full" else torch.ones(5, d)
    g = GaussianMixture(w, means, cov, covariance)
    x, comp = g.sample(10_000, torch.Generator().manual_seed(0))
    assert x.shape == (10_000, d) and x.dtype == torch.float32
    counts = torch.bincount(comp, minlength=5).numpy()
    assert chisquare(counts, (w * 10_000).numpy()).pvalue > 0.001
    # each sample sits near its own component's mean (not one component for the whole batch)
    assert torch.allclose(x.double().mean(1), means[comp, 0], atol=5.0)
    assert len(torch.unique(comp)) == 5


def test_sample_covariance_is_respected():
    cov = torch.tensor([[[4.0, 1.5], [1.5, 1.0]]], dtype=torch.float64)
    g = GaussianMixture(
        torch.ones(1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64), cov, "full"
    )
    x, _ = g.sample(20_000, torch.Generator().manual_seed(1))
    assert np.allclose(np.cov(x.numpy(), rowvar=False), cov[0].numpy(), atol=0.15)


def test_seeded_and_save_load(tmp_path):
    x = _blobs(n=600, d=4, k=3, seed=3)
    a = fit_gmm(x, GMMFitConfig(n_components=3, seed=5))
    b = fit_gmm(x, GMMFitConfig(n_components=3, seed=5))
    assert torch.equal(a.means, b.means)
    a.save(tmp_path / "gmm.pt")
    c = GaussianMixture.load(tmp_path / "gmm.pt")
    assert torch.equal(c.means, a.means) and c.covariance == a.covariance
    assert c.score(x) == pytest.approx(a.score(x))
    s1, _ = a.sample(5, torch.Generator().manual_seed(9))
    s2, _ = c.sample(5, torch.Generator().manual_seed(9))
    assert torch.equal(s1, s2)


def test_bic_prefers_the_true_count():
    x = _blobs(n=2000, d=4, k=3, seed=2)
    bics = {k: fit_gmm(x, GMMFitConfig(n_components=k, seed=0)).bic(x) for k in (1, 2, 3, 5)}
    assert min(bics, key=bics.get) == 3


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="components"):
        fit_gmm(np.zeros((3, 2), np.float32), GMMFitConfig(n_components=5))
    with pytest.raises(UserError, match="NaN"):
        fit_gmm(np.full((10, 2), np.nan, np.float32), GMMFitConfig(n_components=2))
    with pytest.raises(UserError, match="covariance"):
        GMMFitConfig(covariance="tied").validate()
    with pytest.raises(UserError, match="poke train gmm"):
        GaussianMixture.load(tmp_path / "missing.pt")


def test_full_covariance_with_fewer_points_than_dimensions_float32():
    """Animation frames embed to near-duplicates: 1,500 points around 40 centres in 512-d leave every
    component a singular scatter matrix. Accumulated in float32 its rounding exceeded reg_covar and the
    Cholesky failed (the small preset's gmm step crashed on the gen-1 sprite frames); full covariances
    are now accumulated in float64."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 512))
    x = (centres[rng.integers(0, 40, 1500)] + 0.01 * rng.normal(size=(1500, 512))).astype(np.float32)
    gmm = fit_gmm(x, GMMFitConfig(n_components=4, covariance="full", dtype="float32", max_iter=5))
    assert torch.isfinite(gmm.log_prob(x[:10])).all()
    z, _ = gmm.sample(32, torch.Generator().manual_seed(0))
    assert z.shape == (32, 512) and torch.isfinite(z).all()


def test_on_manifold_tells_blends_from_samples_near_the_data():
    """Tight clusters far apart: one broad component samples in the gaps, one per cluster near the data."""
    from pokegan.steps.gmm import nearest_distance, nn_reference, sample_nn

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (12, 16))
    x = (centres.repeat(20, 0) + rng.normal(0, 0.3, (240, 16))).astype(np.float32)
    broad = fit_gmm(x, GMMFitConfig(n_components=1, covariance="full"))
    fine = fit_gmm(x, GMMFitConfig(n_components=12, covariance="diag"))
    ref, real_nn = nn_reference(x, seed=0)
    assert len(ref) == len(x) and 0.5 < real_nn < 2  # within-cluster spacing, self excluded
    assert sample_nn(fine, ref, seed=0) < 2 * real_nn < sample_nn(broad, ref, seed=0)
    ref = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert nearest_distance(torch.tensor([[0.0, 1.0]]), ref) == pytest.approx(1.0)
    assert nearest_distance(ref, ref, exclude_self=True) == pytest.approx(5.0)
