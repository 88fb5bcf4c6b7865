"""Step 1, ``poke train classify``: train the ResNet-34 embedding classifier.

Writes ``RUN/classifier/``::

    config.toml               the resolved config (``--config`` it to reproduce the step)
    last.pt                   the latest checkpoint (every epoch end and every ``checkpoint_every`` steps)
    best.pt                   the weights with the best val top-1 so far (no optimizer state)
    final.pt                  the finished classifier (BatchNorm statistics re-estimated with the final weights)
                              and its frozen encoding statistics: what later steps load
    feature_stats.pt          those statistics alone: mean and variance of the pooled features
    per_class_accuracy.csv    val accuracy per class after the latest epoch (worst classes printed)
    metrics.jsonl, curves.png per-epoch loss and accuracy; tb/ TensorBoard scalars
    done.json                 written last

Task ``classes`` trains on the manifest labels; ``rotation`` (RotNet) on which of 0/90/180/270 degrees an
image was turned, for data without usable labels (``auto`` picks it when every image shares one class).
The loop: cross-entropy with label smoothing, AdamW or SGD, warm-up + cosine per optimizer step, gradient
accumulation, bf16 autocast on CUDA, channels_last, optional ``torch.compile``, DDP under torchrun (the
embedding BatchNorm normalises each replica's batch by its own statistics: it has no state to sync).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_text
from pokegan import device as dev
from pokegan.checkpoint import save_checkpoint, unwrap
from pokegan.config import ClassifyConfig, config_to_toml
from pokegan.data import canonical_order, load_manifest, loader_from_config, stratified_subset
from pokegan.loop import (
    EpochState,
    Session,
    checkpoint,
    open_session,
    resume_epochs,
    start_run,
    steps_per_epoch,
    train_epochs,
)
from pokegan.models.classifier import (
    CLASSIFIER_KIND,
    EmbeddingClassifier,
    feature_statistics,
    param_count,
    recalibrate_batchnorm,
    rotate_batch,
)
from pokegan.runs import RunDir
from pokegan.schedule import WarmupCosine
from pokegan.steps import param_groups
from pokegan.viz import plot_curves

ROTATIONS = ["0", "90", "180", "270"]


def resolve_task(cfg: ClassifyConfig, manifest) -> str:
    """``classes`` or ``rotation``; ``auto`` -> rotation when every train image shares one class."""
    n_labels = manifest.df.loc[manifest.rows("train"), "class_index"].nunique()
    if cfg.task == "auto":
        return "rotation" if n_labels < 2 else "classes"
    if cfg.task == "classes" and n_labels < 2:
        raise UserError(
            f"--task classes needs at least 2 classes with train images; {manifest.dir} has {n_labels}",
            hint="use --task rotation (self-supervised) for unlabelled data",
        )
    return cfg.task


def output_names(task: str, manifest) -> list[str]:
    return list(manifest.classes) if task == "classes" else ROTATIONS


def _rot_gen(seed: int, epoch: int, batch: int) -> torch.Generator:
    """The rotation labels of a batch are a pure function of (seed, epoch, batch): resumable."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 10_007 + batch) % 2**63)


def _inputs(x, y, task: str, gen: torch.Generator, device, channels_last: bool):
    if task == "rotation":
        x, y = rotate_batch(x, gen)
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


VAL_STATS_IMAGES = 4096  # train images behind the embedding statistics of each epoch's validation


def validate(model, val_loader, stats_loader, *, epoch: int, task: str, n_out: int, device, cfg) -> dict:
    """:func:`evaluate` with the embedding BatchNorm frozen to dataset statistics, as ``embed`` encodes.

    The embedding BatchNorm normalises by batch statistics; the val loader is not shuffled and a manifest
    is sorted by class, so its batches hold 2-4 classes each: batch statistics would subtract the classes'
    own mean and the figures (top-1, per-class accuracy, worst classes, best.pt) would depend on the row
    order. Here the mean and variance of the pooled features over up to ``min(stats_images, 4096)`` train
    images (shuffled by the seed and the epoch, not augmented) are frozen for the pass, so every val image
    is scored by itself. Training goes on with batch statistics afterwards.
    """
    base = unwrap(model)
    stats_loader.set_epoch(epoch)
    limit = math.ceil(min(cfg.stats_images, VAL_STATS_IMAGES) / dev.world_size())
    stats = feature_statistics(base, stats_loader, device, limit=limit)
    base.set_frozen_stats(stats["mean"], stats["var"])
    try:
        return evaluate(model, val_loader, task=task, n_out=n_out, device=device, cfg=cfg)
    finally:
        base.set_frozen_stats(None, None)
        model.train()


@torch.no_grad()
def evaluate(model, loader, *, task: str, n_out: int, device, cfg: ClassifyConfig) -> dict:
    """Loss, top-1 and top-5 over a loader, plus per-output counts ``(total [n_out], correct [n_out])``.

    Meaningful only with frozen embedding statistics set (:func:`validate`): else each batch normalises
    itself and the figures depend on which images share a batch.
    """
    model.eval()
    total = torch.zeros(n_out, dtype=torch.float64, device=device)
    correct = torch.zeros(n_out, dtype=torch.float64, device=device)
    top5 = torch.zeros((), dtype=torch.float64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for b, (x, y, _) in enumerate(loader):
        x, y = _inputs(x, y, task, _rot_gen(cfg.seed, -1, b), device, cfg.channels_last)
        with dev.autocast(device, cfg.amp):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        k = min(5, n_out)
        hits = logits.topk(k, dim=1).indices == y[:, None]  # [B, k]
        top5 += hits.any(1).sum()
        total.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
        correct.index_add_(0, y, hits[:, 0].double())
    for t in (total, correct, top5, loss_sum):
        dev.all_reduce_sum(t)
    model.train()
    n = max(1.0, total.sum().item())
    return {
        "loss": loss_sum.item() / n,
        "top1": correct.sum().item() / n,
        "top5": top5.item() / n,
        "total": total.cpu().numpy(),
        "correct": correct.cpu().numpy(),
    }


def write_per_class(
    path: Path, names: list[str], total: np.ndarray, correct: np.ndarray, worst_k: int
) -> list[dict]:
    """``per_class_accuracy.csv`` (index, name, n, correct, accuracy); returns the ``worst_k`` classes with images."""
    lines = ["class_index,class_name,n,correct,accuracy"]
    rows = []
    for i, name in enumerate(names):
        n, c = int(total[i]), int(correct[i])
        acc = c / n if n else float("nan")
        lines.append(f'{i},"{name}",{n},{c},{"" if not n else f"{acc:.4f}"}')
        if n:
            rows.append({"class_index": i, "class_name": name, "n": n, "accuracy": acc})
    atomic_write_text(path, "\n".join(lines) + "\n")
    return sorted(rows, key=lambda r: (r["accuracy"], -r["n"]))[:worst_k]


def make_optimizer(cfg: ClassifyConfig, model) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))


def build_model(cfg: ClassifyConfig, n_out: int):
    model = EmbeddingClassifier(n_out)
    if cfg.init_weights:
        loaded, _ = model.load_init_weights(cfg.init_weights)
        console.print(f"classify: {len(loaded)} tensors loaded from --init-weights {cfg.init_weights}")
    return model


def describe(cfg: ClassifyConfig, manifest_dir: Path | str) -> dict:
    """What ``--dry-run`` prints: the resolved config, the task, the data and the model size."""
    manifest = load_manifest(manifest_dir, cfg.data.data_root or None)
    task = resolve_task(cfg, manifest)
    n_out = len(output_names(task, manifest))
    rows = canonical_order(manifest, manifest.rows("train"))
    train = stratified_subset(rows, manifest.labels(), cfg.data.max_images, cfg.data.seed)
    return {
        "config": config_to_toml(cfg),
        "task": task,
        "outputs": n_out,
        "train_images": len(train),
        "val_images": len(manifest.rows("val")),
        "model": {"classifier (ResNet-34 + embedding BN + head)": param_count(build_model(cfg, n_out))},
    }


@dataclass
class ClassifyState(EpochState):
    """Step 1's training state: the epoch loop's, plus the task, its outputs and this epoch's sums."""

    task: str = "classes"
    n_out: int = 0
    best_top1: float = -1.0
    loss_sum: float = 0.0  # over the train batches of this epoch (this rank)
    seen: int = 0
    hits: int = 0


@dataclass
class ClassifyStep:
    """What step 1 supplies to the epoch loop (:func:`pokegan.loop.train_epochs`)."""

    cfg: ClassifyConfig
    names: list[str]  # the outputs (class names, or the four rotations)
    val_loader: Any  # None without val images
    stats_loader: Any  # train images, not augmented: the embedding statistics of validation
    device: torch.device
    name: str = "classify"
    kind: str = CLASSIFIER_KIND

    def payload(self, st: ClassifyState) -> dict:
        return {
            "model_args": {"num_classes": st.n_out, "task": st.task},
            "model": unwrap(st.model).state_dict(),
            "best_top1": st.best_top1,
        }

    def restore(self, st: ClassifyState, state: dict, path: Path) -> None:
        if state["model_args"]["num_classes"] != st.n_out:
            raise UserError(
                f"{path} has {state['model_args']['num_classes']} outputs, not {st.n_out}",
                hint="resume with the same --task and manifest, or start a new run",
            )
        unwrap(st.model).load_state_dict(state["model"])
        st.best_top1 = float(state["best_top1"])

    def micro_batch(self, st: ClassifyState, batch, epoch: int, i: int):
        cfg = self.cfg
        x, y = _inputs(
            batch[0], batch[1], st.task, _rot_gen(cfg.seed, epoch, i), self.device, cfg.channels_last
        )
        with dev.autocast(self.device, cfg.amp):
            logits = st.model(x).float()  # [B, n_out]
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        st.loss_sum += loss.item() * len(y)
        st.seen += len(y)
        st.hits += (logits.argmax(1) == y).sum().item()
        return loss, {}

    def end_epoch(self, s: Session, st: ClassifyState, epoch: int) -> None:
        """Validate (every rank), then the metrics row, per-class CSV, curves and best.pt (rank 0)."""
        cfg = self.cfg
        row = {"epoch": epoch + 1, "step": st.step, "lr": st.sched.lr_at(st.step)}
        row["train_loss"] = st.loss_sum / max(1, st.seen)
        row["train_top1"] = st.hits / max(1, st.seen)
        st.loss_sum, st.seen, st.hits = 0.0, 0, 0
        dev.sync_buffers(unwrap(st.model))  # eval mode reads BatchNorm statistics: rank 0's on every rank
        if self.val_loader is not None:
            ev = validate(
                st.model,
                self.val_loader,
                self.stats_loader,
                epoch=epoch,
                task=st.task,
                n_out=st.n_out,
                device=self.device,
                cfg=cfg,
            )
            row.update(val_loss=ev["loss"], val_top1=ev["top1"], val_top5=ev["top5"])
            if s.main:
                path = s.dir / "per_class_accuracy.csv"
                worst = write_per_class(path, self.names, ev["total"], ev["correct"], cfg.worst_k)
                row["worst"] = [f"{w['class_name']} {w['accuracy']:.0%}" for w in worst]
        if not s.main:
            return
        _log_epoch(row, s, cfg)
        s.metrics.append(row)
        plot_curves(s.metrics.curves("train_loss", "val_loss"), s.dir / "curves.png", title="classify: loss")
        top1 = row.get("val_top1", row["train_top1"])
        if top1 > st.best_top1:
            st.best_top1 = top1
            best = checkpoint(self, st, cfg, epoch=epoch + 1, batch=0)
            best.pop("optimizer")  # weights for reference; resuming uses last.pt
            save_checkpoint(s.dir / "best.pt", best)


def new_run(
    cfg: ClassifyConfig, manifest_dir: Path | str, out: Path | str, *, resume: bool = False
) -> RunDir:
    """Step 1's start: check the config against the manifest (a bad ``--task`` creates nothing), then
    create the run ``out`` (``resume``: reopen it) recording the manifest, data root and image size."""
    cfg.validate()
    resolve_task(cfg, load_manifest(manifest_dir, cfg.data.data_root or None))
    return start_run(
        out, manifest_dir, resume=resume, data_root=cfg.data.data_root, image_size=cfg.data.image_size
    )


def run_classify(cfg: ClassifyConfig, run: RunDir | Path | str, *, resume: bool = False) -> dict:
    """Train step 1 into ``RUN/classifier/`` (a run :func:`new_run` made); returns the summary."""
    cfg.validate()
    s = open_session("classify", cfg, run, resume=resume)
    if s.done:
        return s.done_summary()
    manifest = load_manifest(s.run.manifest_dir, cfg.data.data_root or s.run.data_root)
    task = resolve_task(cfg, manifest)
    names = output_names(task, manifest)
    model = build_model(cfg, len(names)).to(s.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = loader_from_config(manifest, "train", cfg.data, train=True, device=s.device)
    has_val = len(manifest.rows("val")) > 0
    plain = dataclasses.replace(cfg.data, augment=False, balanced=False)
    step = ClassifyStep(
        cfg,
        names,
        val_loader=loader_from_config(manifest, "val", cfg.data, train=False, device=s.device)
        if has_val
        else None,
        stats_loader=loader_from_config(manifest, "train", plain, train=True, device=s.device),
        device=s.device,
    )
    total = cfg.epochs * steps_per_epoch(loader, cfg.grad_accum)
    opt = make_optimizer(cfg, model)
    st = ClassifyState(
        model=model,
        opt=opt,
        sched=WarmupCosine(cfg.lr, total, cfg.warmup_steps, cfg.min_lr_ratio),
        scaler=dev.make_grad_scaler(s.device, cfg.amp),
        classes=list(manifest.classes),
        manifest_sha256=manifest.sha256,
        task=task,
        n_out=len(names),
    )
    resume_epochs(s, step, st)
    if train_epochs(s, step, st, cfg, loader):
        return {"stopped": True, "step": st.step}
    dev.sync_buffers(unwrap(st.model))
    return _finish(s, step, st, manifest)


def _log_epoch(row: dict, s: Session, cfg: ClassifyConfig) -> None:
    msg = f"classify epoch {row['epoch']}/{cfg.epochs}: train loss {row['train_loss']:.3f} top-1 {row['train_top1']:.1%}"
    if "val_top1" in row:
        msg += f" | val loss {row['val_loss']:.3f} top-1 {row['val_top1']:.1%} top-5 {row['val_top5']:.1%}"
    console.print(msg)
    if row.get("worst"):
        console.print(f"  worst classes: {', '.join(row['worst'])}")
    keys = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5")
    s.scalars({k.replace("_", "/", 1): row[k] for k in keys if k in row}, row["step"])


def _finish(s: Session, step: ClassifyStep, st: ClassifyState, manifest) -> dict:
    """Precise BatchNorm statistics, the frozen encoding statistics, final.pt and done.json."""
    cfg = step.cfg
    model = unwrap(st.model)
    # shuffled batches of the training size, not augmented: what the BatchNorms saw in training
    data = dataclasses.replace(cfg.data, max_images=0, augment=False, balanced=False)
    loader = loader_from_config(manifest, "train", data, train=True, device=s.device)
    limit = math.ceil(cfg.stats_images / dev.world_size())
    with console.status("classify: precise BatchNorm statistics, then the frozen embedding statistics"):
        loader.set_epoch(cfg.epochs)
        bn_images = recalibrate_batchnorm(model, loader, s.device, limit)
        loader.set_epoch(cfg.epochs + 1)
        stats = feature_statistics(model, loader, s.device, limit=limit)
    last = s.metrics.rows[-1] if s.metrics.rows else {}
    summary = {
        "task": st.task,
        "epochs": cfg.epochs,
        "steps": st.step,
        "outputs": st.n_out,
        "train_top1": last.get("train_top1"),
        "val_top1": last.get("val_top1"),
        "val_top5": last.get("val_top5"),
        "best_top1": st.best_top1,
        "stats_images": stats["n"],
        "bn_recalibration_images": bn_images * dev.world_size(),
        "seconds_this_session": s.seconds(),
        "final": str(s.dir / "final.pt"),
    }
    if s.main:
        state = checkpoint(step, st, cfg, epoch=cfg.epochs, batch=0)
        state["feature_stats"] = {"mean": stats["mean"], "var": stats["var"], "n": stats["n"]}
        save_checkpoint(s.dir / "final.pt", state)
        save_checkpoint(s.dir / "feature_stats.pt", state["feature_stats"])
        console.print(f"classify: done, final classifier in {s.dir / 'final.pt'}")
    return s.finish(summary)


__all__ = [
    "ClassifyState",
    "ClassifyStep",
    "describe",
    "evaluate",
    "new_run",
    "resolve_task",
    "run_classify",
    "validate",
]
