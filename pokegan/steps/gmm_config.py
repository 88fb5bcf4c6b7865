"""``[gmm]``, step 3a's config (:class:`GMMConfig`), importable without torch: ``poke train gmm`` builds its
options from these fields. The step itself is :mod:`pokegan.steps.gmm`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pokedata.errors import UserError
from pokegan.config import cli, inline, parse_ints
from pokegan.gmm_config import GMMFitConfig


@dataclass
class GMMConfig:
    """``[gmm]``: the mixture fitted to the step-1 embeddings.

    ``fit`` holds how one mixture is fitted; its keys (``components``, ``covariance``, ``max_iter``, ``tol``,
    ``reg_covar``, ``kmeans_iter``, ``kmeans_restarts``, ``seed``, ``backend``, ``device``, ``dtype``) are
    ``[gmm]`` keys, and ``seed`` also draws the row subset and the plotted points.
    """

    fit: GMMFitConfig = inline(GMMFitConfig)
    # candidate counts; non-empty = choose by BIC
    bic: list[int] = field(
        default_factory=list,
        metadata=cli("Candidate component counts, e.g. 8,16,32: the lowest BIC is kept.", parse=parse_ints),
    )
    # fit on a seeded random subset of this many rows (0 = all)
    max_rows: int = field(default=0, metadata=cli("Fit on a seeded random subset of N embeddings (0 = all)."))
    plot_points: int = 3000

    def validate(self) -> GMMConfig:
        for k in [self.fit.n_components, *self.bic]:
            self.fit_config(int(k)).validate()
        if self.max_rows < 0:
            raise UserError(f"max_rows {self.max_rows} must be >= 0", hint="0 fits on every embedding")
        return self

    def candidates(self) -> list[int]:
        return sorted({int(k) for k in self.bic}) or [self.fit.n_components]

    def fit_config(self, k: int) -> GMMFitConfig:
        """The fit of the ``k``-component candidate."""
        return dataclasses.replace(self.fit, n_components=k)


__all__ = ["GMMConfig"]
