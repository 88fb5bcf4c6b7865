"""The judge: a network the generator never saw, and the figures it gives (FD, KID, precision, recall).

Why: step 2 trains the generator against the step-1 classifier's feature maps, so a distance measured in
that classifier's space (FCD) rewards the generator for fooling the very network it was fitted to. The
judge is a separate network, trained once per manifest on the manifest's *train* split only, never used in
any training loss, and its pooled features are the space the headline figures are computed in.

Choice (see :mod:`pokegan.models.judge_net`): a ResNet-18 layout (2-2-2-2 basic blocks) with a stride-2
3x3 stem, width 16 (128-d features), trained from scratch at 32 px with its own seed. Another depth, stem,
width, seed and normalisation than step 1's ResNet-34, so it does not share its blind spots by
construction. 32 px keeps it cheap everywhere (``bench/judge.py``: a few ms per training image on 2 CPU
cores, so a few minutes at most for the 4,000-image x 6-epoch cap, seconds for sets of a few hundred
images and on a GPU) and is the resolution sprites are generated at on a CPU;
larger generated images are downsampled to 32 px (antialiased) for judging, real and fake through the
same function. It judges global shape and colour, not fine texture: what the figures need to tell a
creature from a blob.

Usage::

    judge = load_or_train_judge(manifest)                      # cached: trained once per manifest + config
    ref = reference_features(judge, manifest, image_size=64, n=2000, seed=0)   # cached by (size, n, seed)
    fake = judge.collect(generated_batches(...))               # [N, 128]
    judge_metrics(ref, fake)    # {"fd", "kid_mean", "kid_std", "precision", "recall"}

Cache layout: ``CACHE_DIR/<manifest content sha256[:16]>-<config key>/judge.pt`` (weights, config, the judge's own
val top-1) and ``reference-<split>-<S>px-n<N>-s<SEED>.npy`` beside it; ``CACHE_DIR`` defaults to
``DATA_ROOT/cache/judge``. Every file is written atomically: a kill during training loses that training
(minutes at most) and the next call starts it again; it never leaves a half-written judge.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_bytes
from pokegan.checkpoint import load_checkpoint, save_checkpoint
from pokegan.data import augment_batch, make_loader, reference_rows, to_unit
from pokegan.device import resolve_device
from pokegan.judge_config import JUDGE_KIND, JudgeConfig  # torch-free: the [gan] config validates with it
from pokegan.metrics import (
    feature_stats,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
    reference_loader,
    reference_split,
)
from pokegan.models.classifier import rotate_batch
from pokegan.models.judge_net import JudgeNet, JudgeNetArgs
from pokegan.schedule import WarmupCosine


class Judge:
    """The trained judge network in eval mode: images in [-1, 1] of any size -> features ``[B, D]``."""

    def __init__(self, net, cfg: JudgeConfig, folder: Path, info: dict, device: torch.device):
        self.net, self.cfg, self.folder, self.info, self.device = net, cfg, Path(folder), info, device

    @property
    def feature_dim(self) -> int:
        return self.net.args.feature_dim

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """``[B, 3, S, S]`` in [-1, 1] -> ``[B, D]`` float32 on the CPU (resized to the judge's size)."""
        x = to_judge_size(images.to(self.device, non_blocking=True).float(), self.cfg.image_size)
        return self.net.features(x).cpu()

    def collect(self, batches: Iterable) -> np.ndarray:
        """Features ``[N, D]`` (float32) of image batches (tensors or ``(images, ...)`` tuples)."""
        out = [self.features(b[0] if isinstance(b, (list, tuple)) else b) for b in batches]
        if not out:
            raise UserError("no images to judge", hint="check the manifest and --n-samples")
        return torch.cat(out).numpy()


def to_judge_size(x: Tensor, size: int) -> Tensor:
    """Resize ``[B, 3, S, S]`` to ``size`` (antialiased bilinear); real and fake images both pass here."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# ---- the figures ----------------------------------------------------------------------------------------
def judge_metrics(
    real: np.ndarray | Tensor,
    fake: np.ndarray | Tensor,
    *,
    k: int = 3,
    kid_subsets: int = 50,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """``{"fd", "kid_mean", "kid_std", "precision", "recall"}`` of fake against real features.

    ``fd``: Frechet distance of Gaussians fitted to the two sets (lower is better); ``kid_mean``/``kid_std``:
    unbiased polynomial-kernel MMD^2 over random subsets and its spread (lower is better; unbiased, so a
    perfect generator gives ~0 +- std); ``precision``/``recall``: k-NN manifold coverage (higher is better).
    """

    mu_r, sig_r = feature_stats(real)
    mu_f, sig_f = feature_stats(fake)
    kid, kid_std = kernel_inception_distance(
        real, fake, n_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
    )
    precision, recall = precision_recall(real, fake, k=k)
    return {
        "fd": frechet_distance(mu_r, sig_r, mu_f, sig_f),
        "kid_mean": kid,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
    }


def score(judge: Judge, real: np.ndarray, fake_batches: Iterable, seed: int = 0) -> dict[str, float]:
    """:func:`judge_metrics` of generated batches against reference features, with the judge's settings."""
    return score_features(judge, real, judge.collect(fake_batches), seed)


def score_features(judge: Judge, real: np.ndarray, fake: np.ndarray, seed: int = 0) -> dict[str, float]:
    """:func:`judge_metrics` of judge features with the judge's k and KID settings."""
    c = judge.cfg
    return judge_metrics(
        real, fake, k=c.knn_k, kid_subsets=c.kid_subsets, kid_subset_size=c.kid_subset_size, seed=seed
    )


# ---- the reference sample ---------------------------------------------------------------------------------
def reference_features(
    judge: Judge, manifest, *, image_size: int, n: int, seed: int, split: str | None = None
) -> np.ndarray:
    """Judge features ``[min(n, split), D]`` of :func:`pokegan.data.reference_rows`, cached by (size, n, seed).

    The images are decoded at ``image_size`` (the generator's) and then resized to the judge's size by the
    same function as the generated ones.
    """

    split = split or reference_split(manifest)
    path = judge.folder / f"reference-{split}-{image_size}px-n{n}-s{seed}.npy"
    if path.is_file():
        return np.load(path)
    loader = reference_loader(manifest, image_size, n, seed, judge.cfg.batch_size, split=split)
    feats = judge.collect(loader)
    buf = io.BytesIO()
    np.save(buf, feats)
    atomic_write_bytes(path, buf.getvalue())
    return feats


# ---- training and the cache -------------------------------------------------------------------------------
def judge_folder(manifest, cfg: JudgeConfig) -> Path:
    root = Path(cfg.cache_dir) if cfg.cache_dir else manifest.data_root / "cache" / "judge"
    return root / f"{(manifest.content_sha256 or manifest.sha256)[:16]}-{cfg.key()}"


def load_or_train_judge(
    manifest, cfg: JudgeConfig | None = None, device: torch.device | None = None
) -> Judge:
    """The cached judge of ``manifest`` (a :class:`pokegan.data.Manifest`), trained first when absent."""

    cfg = (cfg or JudgeConfig()).validate()
    device = device or resolve_device(cfg.device)
    folder = judge_folder(manifest, cfg)
    path = folder / "judge.pt"
    if path.is_file():
        state = load_checkpoint(path)
        if state.get("kind") != JUDGE_KIND or state.get("manifest_sha256") != manifest.sha256:
            raise UserError(f"{path} is not this manifest's judge", hint=f"delete {folder} to retrain it")
    else:
        state = train_judge(manifest, cfg, device)
        save_checkpoint(path, state)
        console.print(
            f"judge: trained in {state['info']['seconds']:.0f} s on {state['info']['train_images']} train "
            f"images, val top-1 {state['info']['val_top1']:.1%}; cached in {folder}"
        )
    net = JudgeNet(JudgeNetArgs(**state["model_args"]))
    net.load_state_dict(state["model"])
    return Judge(net.to(device).eval().requires_grad_(False), cfg, folder, state["info"], device)


def train_judge(manifest, cfg: JudgeConfig, device: torch.device) -> dict:
    """Train the judge on the manifest's train split (seeded shuffle); returns its checkpoint dict.

    The train images are decoded once into memory (uint8, ``[N, 3, S, S]``: 12 MB for 4,000 at 32 px);
    every epoch is a seeded permutation of them, flipped and lightly cropped as step 1's are
    (:func:`pokegan.data.augment_batch`)."""

    t0 = time.perf_counter()
    labels = manifest.labels()
    if len(manifest.rows("train")) < 2:
        raise UserError(
            f"the judge needs at least 2 train images; {manifest.dir} has {len(manifest.rows('train'))}",
            hint="add train images to the manifest",
        )
    # the train split only; a class-stratified subset in (class, image_id) order: the seeded shuffle then
    # visits the same images in the same order whatever the manifest's row order
    rows = reference_rows(manifest, cfg.max_train_images or len(manifest), cfg.seed, "train")
    n_classes = len(np.unique(labels[rows]))
    task = "classes" if n_classes >= 2 else "rotation"  # unlabelled data: which way up (RotNet)
    args = JudgeNetArgs(num_outputs=manifest.num_classes if task == "classes" else 4, width=cfg.width)
    torch.manual_seed(cfg.seed)
    net = JudgeNet(args).to(device)

    def loader(shuffle: bool, augment: bool, split_rows: np.ndarray, split: str):
        return make_loader(
            manifest,
            split,
            cfg.image_size,
            cfg.batch_size,
            augment=augment,
            shuffle=shuffle,
            drop_last=shuffle,
            seed=cfg.seed,
            num_workers=0,
            distributed=False,
            device=device,
            rows=split_rows,
        )

    images, targets = _decode_once(loader(False, False, rows, "train"))  # uint8 [N, 3, S, S], [N]
    n = len(images)
    bs = min(cfg.batch_size, n)
    steps = cfg.epochs * (n // bs)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = WarmupCosine(cfg.lr, steps, warmup_steps=max(1, steps // 20), min_ratio=0.01)
    rot, aug = torch.Generator().manual_seed(cfg.seed), torch.Generator()
    step = 0
    net.train()
    with console.status(f"judge: training on {n} train images ({cfg.epochs} epochs)"):
        for epoch in range(cfg.epochs):
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
            for i in range(n // bs):
                idx = perm[i * bs : (i + 1) * bs]
                aug.manual_seed(cfg.seed * 7_919 + epoch * 104_729 + i)
                x, y = augment_batch(images[idx].to(device), aug), targets[idx]
                if task == "rotation":
                    x, y = rotate_batch(x, rot)
                sched.apply(opt, step)
                loss = F.cross_entropy(net(x), y.to(device), label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed - 1))
        _recalibrate_batchnorm(net, (to_unit(images[perm[i : i + bs]].to(device)) for i in range(0, n, bs)))
    net.eval()
    val_rows = manifest.rows("val")
    val_top1 = (
        _accuracy(net, loader(False, False, val_rows, "val"), task, rot) if len(val_rows) else float("nan")
    )
    info = {
        "task": task,
        "train_images": int(len(rows)),
        "val_images": int(len(val_rows)),
        "val_top1": val_top1,
        "final_train_loss": float(loss.item()),
        "steps": step,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return {
        "kind": JUDGE_KIND,
        "model_args": asdict(args),
        "model": net.cpu().state_dict(),
        "config": asdict(cfg),
        "manifest_sha256": manifest.sha256,
        "classes": list(manifest.classes),
        "info": info,
    }


def _decode_once(batches) -> tuple[Tensor, Tensor]:
    """(uint8 images ``[N, 3, S, S]`` on the CPU, labels ``[N]``) from loader batches in [-1, 1]."""
    xs, ys = zip(*[(x.cpu(), y) for x, y, _ in batches], strict=True)
    images = ((torch.cat(xs) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # exact: x was u8/127.5-1
    return images, torch.cat(ys)


@torch.no_grad()
def _recalibrate_batchnorm(net, batches) -> None:
    """Running BatchNorm statistics recomputed as a plain average with the final weights (eval reads them)."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    net.train()
    for x in batches:
        if len(x) >= 2:
            net.features(x)
    for bn in bns:
        bn.momentum = 0.1


@torch.no_grad()
def _accuracy(net, batches, task: str, rot: torch.Generator) -> float:

    hits = total = 0
    for x, y, _ in batches:
        if task == "rotation":
            x, y = rotate_batch(x, rot)
        hits += int((net(x).argmax(1).cpu() == y.cpu()).sum())
        total += len(y)
    return hits / max(1, total)


__all__ = [
    "JUDGE_KIND",
    "Judge",
    "JudgeConfig",
    "judge_folder",
    "judge_metrics",
    "load_or_train_judge",
    "reference_features",
    "score",
    "score_features",
    "to_judge_size",
    "train_judge",
]
