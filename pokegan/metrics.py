"""Quality metrics that work offline: Frechet distance and KID in the frozen step-1 classifier's space.

"FCD" (Frechet Classifier Distance) and "FCK" (KID in the same space) compare real (val) images with
generated ones through the 512-d pooled features of the frozen step-1 classifier. We use the features
*before* its statistics-free BatchNorm: that BatchNorm normalises every batch by its own mean and
variance, so a set of fakes passed through it would be standardised on its own and a shift of the
whole distribution would become invisible. The pooled layer-4 features are a fixed function of each
image, which is what a distance between distributions needs.

The numbers are comparable within a run (same classifier), not across runs or with published FIDs.
Standard FID / KID (Inception-v3 features) are computed through ``torchmetrics`` only when the user gives
local Inception weights (``--inception-weights PATH``, the torch-fidelity ``pt_inception-2015-12-05``
file); without them nothing is downloaded and the report says so. ``torchmetrics`` is an optional extra:
``pip install 'poke[fid]'``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pokedata.errors import UserError
from pokedata.store import atomic_write_bytes
from pokegan.data import make_loader, reference_rows

STANDARD_FID_SKIPPED = (
    "standard FID/KID skipped: no Inception weights given (pass --inception-weights PATH to a local "
    "pt_inception-2015-12-05 file; nothing is downloaded)"
)


# ---- statistics -------------------------------------------------------------------------------------
def feature_stats(feats: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (float64) of features ``[N, D]``."""
    f = np.asarray(feats.detach().cpu() if isinstance(feats, Tensor) else feats, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature rows, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    ``Tr((S1 S2)^(1/2))`` equals ``Tr((S1^(1/2) S2 S1^(1/2))^(1/2))``, the sum of the square roots of the
    eigenvalues of a symmetric PSD matrix: two symmetric eigendecompositions (``eigh``), much faster and
    stabler than a general ``eig``/``sqrtm`` of ``S1 S2``. Tiny negative round-off is clipped.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    diff = mu1 - mu2
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt_s1 @ s2 @ sqrt_s1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def kernel_inception_distance(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray,
    *,
    n_subsets: int = 50,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel ``(x.y / d + 1)^3`` (Binkowski et al. 2018).

    Averaged over ``n_subsets`` random subsets of ``m = min(subset_size, len(real) // 2, len(fake) // 2)``
    rows; returns (mean, std over the subsets). The cap at half of each sample keeps the subsets
    different from one another, so the std measures how much the estimate moves with the sample (a subset
    as large as the sample would be the same rows every time, and the std would be round-off, ~1e-14).
    The std is that of an estimate from ``m`` rows, an upper bound for the mean over all subsets.
    """
    x = np.asarray(real.detach().cpu() if isinstance(real, Tensor) else real, np.float64)
    y = np.asarray(fake.detach().cpu() if isinstance(fake, Tensor) else fake, np.float64)
    m = min(subset_size, len(x) // 2, len(y) // 2)
    if m < 2:
        raise ValueError("KID needs at least 4 real and 4 fake feature rows")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx = (a @ a.T / d + 1) ** 3
        kyy = (b @ b.T / d + 1) ** 3
        kxy = (a @ b.T / d + 1) ** 3
        mmd = (
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean()
        )
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))


def precision_recall(
    real: Tensor | np.ndarray, fake: Tensor | np.ndarray, *, k: int = 3, chunk: int = 1024
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifolds.

    Each real feature row gets a ball reaching its k-th nearest real neighbour (itself excluded); the
    union of the balls estimates the real manifold. Precision: the fraction of fake rows inside it (are
    the samples realistic?). Recall: the same with the roles swapped, the fraction of real rows inside the
    fake manifold (do the samples cover the data?). Both in [0, 1], higher is better.
    """
    x = torch.as_tensor(
        np.asarray(real.detach().cpu() if isinstance(real, Tensor) else real), dtype=torch.float32
    )
    y = torch.as_tensor(
        np.asarray(fake.detach().cpu() if isinstance(fake, Tensor) else fake), dtype=torch.float32
    )
    if min(len(x), len(y)) <= k:
        raise ValueError(f"precision/recall with k={k} need more than {k} real and fake rows")
    return _coverage(x, y, k, chunk), _coverage(y, x, k, chunk)


def _coverage(manifold: Tensor, probe: Tensor, k: int, chunk: int) -> float:
    """Fraction of ``probe`` rows within the k-NN radius of at least one ``manifold`` row."""
    radii = torch.cat(
        [
            torch.cdist(manifold[i : i + chunk], manifold).kthvalue(k + 1, dim=1).values
            for i in range(0, len(manifold), chunk)
        ]
    )  # [M]: the (k+1)-th smallest distance, the first being the row itself
    inside = torch.cat(
        [
            (torch.cdist(probe[i : i + chunk], manifold) <= radii[None]).any(dim=1)
            for i in range(0, len(probe), chunk)
        ]
    )
    return float(inside.float().mean())


# ---- the classifier feature space -------------------------------------------------------------------
def classifier_features(classifier: nn.Module, images: Tensor) -> Tensor:
    """Pooled layer-4 features ``[B, 512]`` of the frozen classifier (before its per-batch BatchNorm)."""
    if hasattr(classifier, "pooled"):
        return classifier.pooled(images).float()
    return classifier.feature_maps(images)["layer4"].float().mean(dim=(2, 3))


@torch.no_grad()
def collect_features(
    classifier: nn.Module, batches: Iterable[Tensor], device: torch.device, limit: int | None = None
) -> Tensor:
    """Features ``[N, 512]`` (float32, CPU) of image batches in [-1, 1]; stops after ``limit`` rows."""
    out, n = [], 0
    for x in batches:
        if isinstance(x, (list, tuple)):
            x = x[0]
        f = classifier_features(classifier, x.to(device, non_blocking=True).float())
        out.append(f.cpu())
        n += len(f)
        if limit is not None and n >= limit:
            break
    if not out:
        raise UserError("no images to compute metrics on", hint="check that the manifest has a val split")
    feats = torch.cat(out)
    return feats[:limit] if limit is not None else feats


@dataclass
class RealStats:
    """Reference statistics of the real (val) images, computed once per run and cached on disk."""

    mu: np.ndarray
    sigma: np.ndarray
    feats: np.ndarray  # the reference features themselves, for KID

    def save(self, path: Path) -> None:

        buf = io.BytesIO()
        np.savez(buf, mu=self.mu, sigma=self.sigma, feats=self.feats)
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> RealStats:
        with np.load(path) as z:
            return cls(z["mu"], z["sigma"], z["feats"])

    @classmethod
    def from_features(cls, feats: Tensor, keep: int | None = None) -> RealStats:
        mu, sigma = feature_stats(feats)
        return cls(mu, sigma, feats[:keep].numpy().astype(np.float32))


def reference_split(manifest) -> str:
    """The split reference samples come from: val when it has at least two images, else train."""
    return "val" if len(manifest.rows("val")) >= 2 else "train"


def reference_loader(
    manifest, image_size: int, n: int, seed: int, batch_size: int, device=None, split: str | None = None
):
    """Batches of the reference sample (:func:`pokegan.data.reference_rows`: seeded, class-stratified,
    ``split`` or :func:`reference_split`) at ``image_size``, not augmented, in (class, image_id) order."""

    split = split or reference_split(manifest)
    return make_loader(
        manifest,
        split,
        image_size,
        batch_size,
        augment=False,
        shuffle=False,
        drop_last=False,
        seed=seed,
        num_workers=0,
        distributed=False,
        device=device,
        rows=reference_rows(manifest, n, seed, split),
    )


def classifier_reference(
    manifest,
    classifier: nn.Module,
    *,
    image_size: int,
    n: int,
    seed: int,
    batch_size: int,
    device,
    folder: Path,
) -> RealStats:
    """Step-1 classifier statistics of the reference sample, cached in ``folder`` by (size, ``n``, ``seed``)."""
    path = Path(folder) / f"real_stats-{image_size}px-n{n}-s{seed}.npz"
    if path.is_file():
        return RealStats.load(path)
    loader = reference_loader(manifest, image_size, n, seed, batch_size, device)
    rs = RealStats.from_features(collect_features(classifier, loader, device))
    rs.save(path)
    return rs


def fcd_metrics(
    real: RealStats, fake_feats: Tensor, *, kid_subsets: int = 20, seed: int = 0
) -> dict[str, float]:
    """``{"fcd": ..., "fck": ..., "fck_std": ...}`` of fake features against the real statistics."""
    mu, sigma = feature_stats(fake_feats)
    fcd = frechet_distance(real.mu, real.sigma, mu, sigma)
    kid, kid_std = kernel_inception_distance(
        real.feats, fake_feats, n_subsets=kid_subsets, subset_size=1000, seed=seed
    )
    return {"fcd": fcd, "fck": kid, "fck_std": kid_std}


@torch.no_grad()
def generated_batches(sample_fn: Callable[[int], Tensor], n: int, batch_size: int) -> Iterable[Tensor]:
    """Yield ``ceil(n / batch_size)`` batches of generated images from ``sample_fn(batch) -> [B, 3, H, W]``."""
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        yield sample_fn(b)
        done += b


# ---- standard FID / KID (optional) -------------------------------------------------------------------
def _to_uint8(x: Tensor) -> Tensor:
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def standard_fid_kid(
    real_batches: Iterable[Tensor],
    fake_batches: Iterable[Tensor],
    weights_path: Path,
    device: torch.device,
) -> dict[str, float]:
    """Inception-v3 FID and KID through torchmetrics, from local weights only (never downloads).

    ``weights_path``: torch-fidelity's ``pt_inception-2015-12-05-6726825d.pth``.
    """
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise UserError(
            f"--inception-weights {weights_path} does not exist", hint="pass the path of a local .pth file"
        )
    try:  # an optional extra (poke[fid]): imported only when Inception weights are given
        from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as exc:
        raise UserError(
            "standard FID/KID need torchmetrics (with torch-fidelity)", hint="pip install 'poke[fid]'"
        ) from exc
    try:
        net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=str(weights_path),
        )
    except TypeError as exc:  # an old torchmetrics without local-weights support
        raise UserError(
            "this torchmetrics cannot load local Inception weights", hint="pip install -U 'poke[fid]'"
        ) from exc
    fid = FrechetInceptionDistance(feature=net, normalize=False).to(device)
    kid = KernelInceptionDistance(feature=net, normalize=False, subset_size=50).to(device)
    n_real = n_fake = 0
    for x in real_batches:
        x = x[0] if isinstance(x, (list, tuple)) else x
        u = _to_uint8(x).to(device)
        fid.update(u, real=True)
        kid.update(u, real=True)
        n_real += len(u)
    for x in fake_batches:
        u = _to_uint8(x).to(device)
        fid.update(u, real=False)
        kid.update(u, real=False)
        n_fake += len(u)
    if min(n_real, n_fake) <= 50:
        kid.subset_size = max(2, min(n_real, n_fake) - 1)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)
