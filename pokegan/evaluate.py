"""The figures of a generator, and ``poke eval``.

:func:`generator_figures` scores a generator in one pass over its samples: the judge's figures
(:mod:`pokegan.judge`) and, secondary, the step-1 classifier's FCD/FCK (:mod:`pokegan.metrics`).
:func:`evaluate_run` is ``poke eval``: those figures (and standard FID/KID with local Inception weights)
of a run's final and best EMA generators. This module sits above the judge and the metrics (the judge
reads the metrics' statistics; neither imports this module).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_text
from pokegan.checkpoint import load_checkpoint
from pokegan.config import config_from_dict
from pokegan.data import load_manifest
from pokegan.gmm import GaussianMixture, resolve_device
from pokegan.judge import load_or_train_judge, reference_features, score_features
from pokegan.metrics import (
    STANDARD_FID_SKIPPED,
    RealStats,
    classifier_features,
    classifier_reference,
    fcd_metrics,
    generated_batches,
    reference_loader,
    standard_fid_kid,
)
from pokegan.models.classifier import load_frozen_classifier
from pokegan.runs import open_run
from pokegan.sampling import gan_checkpoint_path, generator_from_state
from pokegan.steps.gan_setup import GANConfig


@torch.no_grad()
def generator_figures(
    sample_fn: Callable[[int], Tensor],
    n: int,
    batch_size: int,
    *,
    judge,
    judge_ref: np.ndarray,
    classifier: nn.Module | None = None,
    real_stats: RealStats | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Every figure of a generator from one pass over ``n`` samples of ``sample_fn(batch) -> [B, 3, S, S]``.

    The judge's (:mod:`pokegan.judge`): ``judge_fd``, ``judge_kid_mean``, ``judge_kid_std``,
    ``judge_precision``, ``judge_recall``; with ``classifier`` and ``real_stats`` also the step-1
    classifier's ``fcd``, ``fck``, ``fck_std`` (secondary: step 2 trained the generator on that network).
    """
    judge_feats, clf_feats = [], []
    for x in generated_batches(sample_fn, n, batch_size):
        judge_feats.append(judge.features(x))
        if classifier is not None:
            clf_feats.append(classifier_features(classifier, x).cpu())
    fig = score_features(judge, judge_ref, torch.cat(judge_feats).numpy(), seed)
    m = {f"judge_{k}": v for k, v in fig.items()}
    if classifier is not None and real_stats is not None:
        m.update(fcd_metrics(real_stats, torch.cat(clf_feats), kid_subsets=20, seed=seed))
    return m


@dataclass
class EvalConfig:
    run: Path
    n_samples: int = 2000
    batch_size: int = 64
    seed: int = 0
    inception_weights: Path | None = None
    device: str = "auto"

    def validate(self) -> EvalConfig:
        if self.n_samples < 2:
            raise UserError(f"--n-samples {self.n_samples} must be >= 2", hint="e.g. --n-samples 2000")
        if self.inception_weights is not None and not Path(self.inception_weights).is_file():
            raise UserError(
                f"--inception-weights {self.inception_weights} does not exist", hint="pass a local .pth file"
            )
        return self


def evaluate_run(cfg: EvalConfig) -> dict[str, dict[str, float]]:
    """The judge's figures, FCD/FCK (and FID/KID with Inception weights) of the final and best EMA generators.

    The judge is the one step 3 used (its settings come from the checkpoint's ``[gan]`` config; trained
    now if its cache was removed).

    Writes ``RUN/gan/eval.json`` and returns ``{"final": {...}, "best": {...}}``.
    """
    cfg.validate()
    run = open_run(Path(cfg.run), resume=True, create=False)
    device = resolve_device(cfg.device)
    gan_dir = Path(run.step_dir("gan"))
    gmm = GaussianMixture.load(Path(run.step_dir("gmm")) / "gmm.pt")
    classifier = load_frozen_classifier(run).to(device)
    manifest = load_manifest(run.manifest_dir, data_root=run.data_root)
    results: dict[str, dict[str, float]] = {}
    real_stats = judge = judge_ref = None
    for which in ("final", "best"):
        try:
            path = gan_checkpoint_path(gan_dir.parent, which)
        except UserError:
            continue
        state = load_checkpoint(path)
        g = generator_from_state(state).to(device)
        image_size = int(state["model_args"]["generator"]["image_size"])
        if real_stats is None:
            real_stats = classifier_reference(
                manifest,
                classifier,
                image_size=image_size,
                n=cfg.n_samples,
                seed=cfg.seed,
                batch_size=cfg.batch_size,
                device=device,
                folder=gan_dir,
            )
            gan_cfg = config_from_dict(GANConfig, state.get("config", {}), "gan")
            judge = load_or_train_judge(
                manifest, dataclasses.replace(gan_cfg.judge_config(), device=str(device))
            )
            judge_ref = reference_features(
                judge, manifest, image_size=image_size, n=cfg.n_samples, seed=cfg.seed
            )

        def sample(b: int, g=g, gen=torch.Generator().manual_seed(cfg.seed)) -> Tensor:
            z, _ = gmm.sample(b, gen)
            return g(z.to(device)).float().clamp(-1, 1)

        m: dict[str, float] = {"step": int(state["step"]), "checkpoint": str(path)}
        m.update(
            generator_figures(
                sample,
                cfg.n_samples,
                cfg.batch_size,
                judge=judge,
                judge_ref=judge_ref,
                classifier=classifier,
                real_stats=real_stats,
                seed=cfg.seed,
            )
        )
        if cfg.inception_weights is not None:
            real = reference_loader(manifest, image_size, cfg.n_samples, cfg.seed, cfg.batch_size)
            fakes = generated_batches(sample, cfg.n_samples, cfg.batch_size)
            m.update(standard_fid_kid(real, fakes, cfg.inception_weights, device))
        results[which] = m
    if not results:
        raise UserError(
            f"no GAN checkpoints in {gan_dir}", hint="train step 3 first: `poke train gan --run RUN`"
        )
    if cfg.inception_weights is None:
        console.print(f"[dim]{STANDARD_FID_SKIPPED}[/]")
    atomic_write_text(gan_dir / "eval.json", json.dumps(results, indent=2))
    return results


__all__ = ["EvalConfig", "evaluate_run", "generator_figures"]
