"""A Gaussian mixture in torch: EM with full or diagonal covariance, k-means++ init, seeded, BIC selection.

Why torch and not just scikit-learn: the step-1 embeddings are ~80k x 512, and a full-covariance EM
iteration costs ~2 k N d^2 flops; torch runs it on the GPU when there is one (and in float32 on the CPU,
which is still faster than sklearn's float64). scikit-learn's ``GaussianMixture`` is the reference: the
same formulas (precision Cholesky factors, ``reg_covar`` added to the diagonal, the mean log-likelihood
as the convergence criterion with ``tol``), and ``tests/test_gmm.py`` checks that our mean
log-likelihood matches sklearn's on the same data. ``backend="sklearn"`` fits with sklearn instead (on
CPU, float64) and converts the result, so sampling, saving and plotting are the same either way.

Sampling is correctly weighted: every sample draws its own component from the mixture weights
(``torch.multinomial``), then ``mean + L @ eps`` with that component's Cholesky factor.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pokedata.errors import UserError
from pokegan.checkpoint import save_checkpoint
from pokegan.gmm_config import GMMFitConfig  # torch-free: the [gmm] options are its fields

_LOG_2PI = math.log(2 * math.pi)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device {name!r} requested but CUDA is not available", hint="use --device cpu or auto"
        )
    return torch.device(name)


class GaussianMixture:
    """A fitted (or loaded) mixture: ``weights [K]``, ``means [K, D]``, ``covariances [K, D, D]`` or ``[K, D]``."""

    def __init__(
        self, weights: Tensor, means: Tensor, covariances: Tensor, covariance: str, meta: dict | None = None
    ):
        self.covariance = covariance
        self.weights = weights.double().cpu()
        self.means = means.double().cpu()
        self.covariances = covariances.double().cpu()
        self.meta = dict(meta or {})
        self._chol: Tensor | None = None

    # ---- properties -------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def n_parameters(self) -> int:
        k, d = self.n_components, self.dim
        cov = k * d * (d + 1) // 2 if self.covariance == "full" else k * d
        return cov + k * d + k - 1

    # ---- densities -------------------------------------------------------------------------------
    def log_prob(self, x: Tensor | np.ndarray, device: str | torch.device = "cpu") -> Tensor:
        """Per-sample log density ``[N]`` (float64 on CPU)."""
        x = x if isinstance(x, Tensor) else torch.from_numpy(np.array(x, dtype=np.float64))
        dev = torch.device(device)
        prec = _precision_cholesky(self.covariances.to(dev), self.covariance)
        lp = _weighted_log_prob(
            x.to(dev, torch.float64), self.means.to(dev), prec, self.weights.to(dev), self.covariance
        )
        return torch.logsumexp(lp, dim=1).cpu()

    def score(self, x: Tensor | np.ndarray, device: str | torch.device = "cpu") -> float:
        """Mean log-likelihood per sample (sklearn's ``score``)."""
        return float(self.log_prob(x, device).mean())

    def bic(self, x: Tensor | np.ndarray) -> float:
        n = len(x)
        return -2 * self.score(x) * n + self.n_parameters() * math.log(n)

    # ---- sampling --------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` samples ``[n, D]`` float32 and their components ``[n]``; each sample picks its own component."""
        comp = torch.multinomial(self.weights.float(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        out = torch.empty(n, self.dim, dtype=torch.float64)
        if self.covariance == "diag":
            out = self.means[comp] + eps * self.covariances[comp].sqrt()
        else:
            chol = self._cholesky()
            for j in torch.unique(comp).tolist():
                idx = (comp == j).nonzero(as_tuple=True)[0]
                out[idx] = self.means[j] + eps[idx] @ chol[j].T
        return out.float(), comp

    def _cholesky(self) -> Tensor:
        if self._chol is None:
            self._chol = torch.linalg.cholesky(self.covariances)
        return self._chol

    # ---- persistence -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": "poke-gmm-1",
            "covariance": self.covariance,
            "weights": self.weights,
            "means": self.means,
            "covariances": self.covariances,
            "meta": self.meta,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> GaussianMixture:
        if state.get("format") != "poke-gmm-1":
            raise UserError(
                "not a poke GMM file (format mismatch)", hint="refit with `poke train gmm --run ...`"
            )
        return cls(
            state["weights"], state["means"], state["covariances"], state["covariance"], state.get("meta")
        )

    def save(self, path: Path) -> None:
        save_checkpoint(path, self.state_dict())

    @classmethod
    def load(cls, path: Path) -> GaussianMixture:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no fitted mixture at {path}", hint="run `poke train gmm --run RUN` first")
        return cls.from_state_dict(torch.load(path, map_location="cpu", weights_only=False))


# ---- the math (sklearn's formulation) -----------------------------------------------------------
def _precision_cholesky(cov: Tensor, kind: str) -> Tensor:
    """full: ``[K, D, D]`` upper-triangular P with P P^T = inv(cov); diag: ``[K, D]`` 1/sqrt(var)."""
    if kind == "diag":
        return cov.clamp_min(1e-12).rsqrt()
    try:
        chol = torch.linalg.cholesky(cov.double())  # [K, D, D] lower
    except RuntimeError as exc:  # torch.linalg.LinAlgError subclasses RuntimeError
        raise FloatingPointError("a covariance is not positive definite: increase reg_covar") from exc
    eye = torch.eye(cov.shape[-1], dtype=torch.float64, device=cov.device).expand_as(chol)
    inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^-1
    return inv.transpose(-1, -2).to(cov.dtype)  # (L^-1)^T


def _weighted_log_prob(x: Tensor, means: Tensor, prec: Tensor, weights: Tensor, kind: str) -> Tensor:
    """``[N, K]``: log w_k + log N(x | mu_k, Sigma_k)."""
    n, d = x.shape
    k = means.shape[0]
    means, prec = means.to(x.dtype), prec.to(x.dtype)
    if kind == "diag":
        log_det = prec.log().sum(dim=1)  # [K]
        p2 = prec.pow(2)  # [K, D]
        maha = (means.pow(2) * p2).sum(1) - 2 * x @ (means * p2).T + x.pow(2) @ p2.T  # [N, K]
    else:
        log_det = torch.diagonal(prec, dim1=-2, dim2=-1).log().sum(dim=1)  # [K]
        maha = torch.empty(n, k, dtype=x.dtype, device=x.device)
        for j in range(k):
            y = (x - means[j]) @ prec[j]  # [N, D]
            maha[:, j] = y.pow(2).sum(dim=1)
    log_gauss = -0.5 * (d * _LOG_2PI + maha) + log_det  # [N, K]
    return log_gauss + weights.to(x.dtype).clamp_min(1e-300).log()


def _m_step(x: Tensor, resp: Tensor, kind: str, reg: float) -> tuple[Tensor, Tensor, Tensor]:
    """Weights ``[K]``, means ``[K, D]``, covariances from responsibilities ``resp [N, K]``."""
    eps = 10 * torch.finfo(resp.dtype).eps
    nk = resp.sum(dim=0) + eps  # [K]
    means = (resp.T @ x) / nk[:, None]  # [K, D]
    if kind == "diag":
        avg_x2 = (resp.T @ x.pow(2)) / nk[:, None]
        cov = (avg_x2 - means.pow(2)).clamp_min(0) + reg  # [K, D]
    else:
        # full covariances are accumulated and kept in float64 whatever x's dtype: a component with fewer
        # points than dimensions (16 components over 3,000 512-d embeddings) has a singular scatter
        # matrix, and float32 rounding (~1e-6 at unit variance) is as large as reg_covar, so the
        # regularised matrix came out indefinite and the Cholesky failed
        d = x.shape[1]
        xd, md, rd, nd = x.double(), means.double(), resp.double(), nk.double()
        cov = torch.empty(means.shape[0], d, d, dtype=torch.float64, device=x.device)
        eye = torch.eye(d, dtype=torch.float64, device=x.device)
        for j in range(means.shape[0]):
            diff = xd - md[j]  # [N, D]
            cov[j] = (rd[:, j : j + 1] * diff).T @ diff / nd[j] + reg * eye
    return nk / nk.sum(), means, cov


def kmeans_pp(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding (greedy, 2 + log k trials per centre, as sklearn): centres ``[K, D]``."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    sq = x.pow(2).sum(1)  # [N]
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    closest = (sq - 2 * x @ x[first] + sq[first]).clamp_min(0)  # [N]
    for _ in range(1, k):
        probs = closest / closest.sum() if closest.sum() > 0 else torch.full_like(closest, 1.0 / n)
        cand = torch.multinomial(probs.float().cpu(), trials, replacement=True, generator=generator).to(
            x.device
        )
        d_cand = (sq[None, :] - 2 * x[cand] @ x.T + sq[cand][:, None]).clamp_min(0)  # [T, N]
        new_closest = torch.minimum(closest[None, :], d_cand)  # [T, N]
        best = int(new_closest.sum(1).argmin())
        closest = new_closest[best]
        centres.append(x[cand[best]])
    return torch.stack(centres)


def kmeans(x: Tensor, k: int, iters: int, generator: torch.Generator, restarts: int = 1) -> Tensor:
    """k-means++ seeding then Lloyd iterations, best of ``restarts`` by inertia; hard labels ``[N]``."""
    sq = x.pow(2).sum(1, keepdim=True)
    best_labels, best_inertia = None, math.inf
    for _ in range(max(1, restarts)):
        centres = kmeans_pp(x, k, generator)
        labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        for it in range(max(1, iters)):
            dist = sq - 2 * x @ centres.T + centres.pow(2).sum(1)[None, :]  # [N, K]
            new = dist.argmin(1)
            if it > 0 and torch.equal(new, labels):
                break
            labels = new
            counts = torch.bincount(labels, minlength=k).to(x.dtype)
            sums = torch.zeros_like(centres).index_add_(0, labels, x)
            nonempty = counts > 0
            centres[nonempty] = sums[nonempty] / counts[nonempty, None]
        inertia = float((sq - 2 * x @ centres.T + centres.pow(2).sum(1)[None, :]).min(1).values.sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels


def fit_gmm(x: np.ndarray | Tensor, cfg: GMMFitConfig, progress=None) -> GaussianMixture:
    """Fit one mixture to ``x [N, D]``. ``progress(iteration, mean_ll)`` is called after each EM step."""
    cfg.validate()
    x_np = x.cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if x_np.ndim != 2 or len(x_np) < cfg.n_components:
        raise UserError(
            f"cannot fit {cfg.n_components} components to data of shape {x_np.shape}",
            hint="need a 2-D array with at least as many rows as components",
        )
    if not np.isfinite(x_np).all():
        raise UserError("the embeddings contain NaN or inf", hint="re-run `poke train embed` for this run")
    if cfg.backend == "sklearn":
        return _fit_sklearn(x_np, cfg)
    return _fit_torch(x_np, cfg, progress)


def _fit_sklearn(x: np.ndarray, cfg: GMMFitConfig) -> GaussianMixture:
    from sklearn.mixture import GaussianMixture as SkGMM  # the optional CPU reference: slow to import

    sk = SkGMM(
        n_components=cfg.n_components,
        covariance_type=cfg.covariance,
        tol=cfg.tol,
        reg_covar=cfg.reg_covar,
        max_iter=cfg.max_iter,
        random_state=cfg.seed,
        init_params="k-means++",
    ).fit(x.astype(np.float64))
    meta = {
        "backend": "sklearn",
        "n_iter": int(sk.n_iter_),
        "converged": bool(sk.converged_),
        "config": asdict(cfg),
    }
    gmm = GaussianMixture(
        torch.from_numpy(sk.weights_),
        torch.from_numpy(sk.means_),
        torch.from_numpy(sk.covariances_),
        cfg.covariance,
        meta,
    )
    gmm.meta["mean_log_likelihood"] = float(sk.score(x))
    return gmm


def _fit_torch(x_np: np.ndarray, cfg: GMMFitConfig, progress=None) -> GaussianMixture:
    device = resolve_device(cfg.device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    x = torch.from_numpy(np.array(x_np, dtype=np.float32, copy=not x_np.flags.writeable)).to(
        device=device, dtype=dtype
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    k = cfg.n_components
    labels = kmeans(x, k, cfg.kmeans_iter, gen, cfg.kmeans_restarts)
    resp = torch.zeros(x.shape[0], k, dtype=dtype, device=device)
    resp[torch.arange(x.shape[0], device=device), labels] = 1.0
    weights, means, cov = _m_step(x, resp, cfg.covariance, cfg.reg_covar)
    prev, mean_ll, converged, it = -math.inf, -math.inf, False, 0
    for it in range(1, cfg.max_iter + 1):
        prec = _precision_cholesky(cov, cfg.covariance).to(dtype)
        wlp = _weighted_log_prob(x, means, prec, weights, cfg.covariance)  # [N, K]
        log_norm = torch.logsumexp(wlp, dim=1)  # [N]
        mean_ll = float(log_norm.double().mean())
        if not math.isfinite(mean_ll):
            raise FloatingPointError(
                "GMM log-likelihood became non-finite: increase reg_covar or use dtype float64"
            )
        if progress is not None:
            progress(it, mean_ll)
        if abs(mean_ll - prev) < cfg.tol:
            converged = True
            break
        prev = mean_ll
        resp = (wlp - log_norm[:, None]).exp()
        weights, means, cov = _m_step(x, resp, cfg.covariance, cfg.reg_covar)
    meta = {
        "backend": "torch",
        "device": str(device),
        "n_iter": it,
        "converged": converged,
        "mean_log_likelihood": mean_ll,
        "config": asdict(cfg),
    }
    return GaussianMixture(weights, means, cov, cfg.covariance, meta)
