"""How one Gaussian mixture is fitted (:class:`GMMFitConfig`), importable without torch: ``poke train gmm``
builds its options from these fields, and the ``[gmm]`` step config holds one inline (its keys are
``[gmm]`` keys). The mixture itself is :mod:`pokegan.gmm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pokedata.errors import UserError
from pokegan.config import DEVICE, SEED, cli


@dataclass
class GMMFitConfig:
    """How one mixture is fitted (the step config adds the BIC range and I/O on top)."""

    # the key `components` of [gmm]
    n_components: int = field(
        default=10, metadata={**cli("Mixture components (without --bic)."), "key": "components"}
    )
    covariance: str = field(default="full", metadata=cli("full (default) or diag."))  # "full" | "diag"
    max_iter: int = 100
    tol: float = 1e-3  # stop when the mean log-likelihood improves by less than this
    reg_covar: float = 1e-6
    kmeans_iter: int = 20  # Lloyd iterations after k-means++ seeding
    kmeans_restarts: int = 3  # k-means runs; the lowest inertia initialises EM
    seed: int = field(default=0, metadata=SEED)
    # "torch" (GPU when available) | "sklearn"
    backend: str = field(
        default="torch",
        metadata=cli("torch (EM on the GPU when available; default) or sklearn (CPU reference)."),
    )
    device: str = field(default="auto", metadata=DEVICE)  # "auto" | "cpu" | "cuda" (torch backend)
    dtype: str = "float32"  # "float32" | "float64" (torch backend)

    def validate(self) -> GMMFitConfig:
        if self.n_components < 1:
            raise UserError(f"n_components {self.n_components} must be >= 1", hint="e.g. --components 10")
        if self.covariance not in ("full", "diag"):
            raise UserError(
                f"covariance {self.covariance!r} must be 'full' or 'diag'", hint="--covariance full"
            )
        if self.backend not in ("torch", "sklearn"):
            raise UserError(f"backend {self.backend!r} must be 'torch' or 'sklearn'", hint="--backend torch")
        if self.dtype not in ("float32", "float64"):
            raise UserError(f"dtype {self.dtype!r} must be float32 or float64", hint="fix [gmm] dtype")
        if self.max_iter < 1 or self.tol <= 0 or self.reg_covar < 0:
            raise UserError("max_iter must be >= 1, tol > 0, reg_covar >= 0", hint="fix the [gmm] section")
        return self


__all__ = ["GMMFitConfig"]
