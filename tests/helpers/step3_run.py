"""``make_step3_run``: a run directory with steps 1 and 2 "done", built directly (no training), for step-3 tests.

A randomly initialised classifier (with frozen statistics) as ``classifier/final.pt``, embeddings drawn
from a 4-cluster mixture as ``embeddings/embeddings.npy``, and a small random generator as
``pretrain/final.pt``, each with its ``done.json``: exactly the files steps 1 and 2 leave, in seconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from tests.helpers.tiny_manifest import make_tiny_manifest


def make_step3_run(
    tmp_path: Path, *, image_size: int = 32, n_classes: int = 4, per_class: int = 12, seed: int = 0
):
    """Returns the RunDir (``tmp_path/runs/r``) of a tiny manifest with classifier, embeddings and generator."""
    from pokegan.checkpoint import save_checkpoint
    from pokegan.data import load_manifest
    from pokegan.models.classifier import CLASSIFIER_KIND, EmbeddingClassifier
    from pokegan.models.generator import Generator, GeneratorArgs
    from pokegan.runs import open_run

    torch.manual_seed(seed)
    mdir = make_tiny_manifest(tmp_path, n_classes=n_classes, per_class=per_class, size=image_size, seed=seed)
    manifest = load_manifest(mdir)
    run = open_run(
        tmp_path / "runs" / "r", resume=False, create=True, manifest_dir=mdir, image_size=image_size
    )
    common = {"classes": list(manifest.classes), "manifest_sha256": manifest.sha256}

    clf = EmbeddingClassifier(n_classes)
    cdir = run.step_dir("classify")
    save_checkpoint(
        cdir / "final.pt",
        {
            "kind": CLASSIFIER_KIND,
            "model_args": {"num_classes": n_classes},
            "model": clf.state_dict(),
            "feature_stats": {"mean": torch.zeros(512), "var": torch.ones(512), "n": 2},
            "step": 0,
            **common,
        },
    )
    run.mark_done("classify", {"synthetic": True})

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (4, 512))
    emb = (centres[rng.integers(0, 4, len(manifest))] + rng.normal(0, 1, (len(manifest), 512))).astype(
        np.float32
    )
    edir = run.step_dir("embed")
    edir.mkdir(parents=True, exist_ok=True)
    np.save(edir / "embeddings.npy", emb)
    run.mark_done("embed", {"synthetic": True})

    args = GeneratorArgs(image_size=image_size, channel_base=512, max_channels=32, min_channels=8)
    g = Generator(args)
    save_checkpoint(
        run.step_dir("pretrain") / "final.pt",
        {
            "kind": "poke-pretrain-1",
            "model_args": {"generator": dataclasses.asdict(args)},
            "generator": g.state_dict(),
            **common,
        },
    )
    run.mark_done("pretrain", {"synthetic": True})
    return run
