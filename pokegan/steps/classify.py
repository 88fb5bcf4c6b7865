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

import contextlib
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_text
from pokegan.config import ClassifyConfig

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
    from pokegan.models.classifier import rotate_batch

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
    from pokegan.checkpoint import unwrap
    from pokegan.device import world_size
    from pokegan.models.classifier import feature_statistics

    base = unwrap(model)
    stats_loader.set_epoch(epoch)
    limit = math.ceil(min(cfg.stats_images, VAL_STATS_IMAGES) / world_size())
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
    from pokegan import device as dev

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
    from pokegan.steps import param_groups

    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))


def build_model(cfg: ClassifyConfig, n_out: int):
    from pokegan.models.classifier import EmbeddingClassifier

    model = EmbeddingClassifier(n_out)
    if cfg.init_weights:
        loaded, _ = model.load_init_weights(cfg.init_weights)
        console.print(f"classify: {len(loaded)} tensors loaded from --init-weights {cfg.init_weights}")
    return model


def describe(cfg: ClassifyConfig, manifest_dir: Path | str) -> dict:
    """What ``--dry-run`` prints: the resolved config, the task, the data and the model size."""
    from pokegan.config import config_to_toml
    from pokegan.data import canonical_order, load_manifest, stratified_subset
    from pokegan.models.classifier import param_count

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


def _checkpoint(st: dict, cfg: ClassifyConfig, *, epoch: int, batch: int) -> dict:
    from pokegan.checkpoint import rng_state, unwrap
    from pokegan.models.classifier import CLASSIFIER_KIND

    return {
        "kind": CLASSIFIER_KIND,
        "model_args": {"num_classes": st["n_out"], "task": st["task"]},
        "model": unwrap(st["model"]).state_dict(),
        "optimizer": st["opt"].state_dict(),
        "schedule": st["sched"].state_dict(),
        "scaler": st["scaler"].state_dict(),
        "step": st["step"],
        "epoch": epoch,
        "batch_in_epoch": batch,
        "best_top1": st["best_top1"],
        "rng": rng_state(),
        "config": dataclasses.asdict(cfg),
        "classes": st["classes"],
        "manifest_sha256": st["manifest"].sha256,
    }


def run_classify(
    cfg: ClassifyConfig, manifest_dir: Path | str, out: Path | str, *, resume: bool = False
) -> dict:
    """Train step 1 into ``out/classifier/`` (resuming its last checkpoint with ``resume``); returns the summary."""
    from pokegan import device as dev
    from pokegan.checkpoint import (
        check_compatible,
        load_checkpoint,
        restore_training_state,
        save_checkpoint,
        unwrap,
    )
    from pokegan.data import load_manifest, loader_from_config
    from pokegan.models.classifier import CLASSIFIER_KIND, feature_statistics
    from pokegan.schedule import WarmupCosine
    from pokegan.steps import MetricsLog, optimizer_step, prepare_step, progress, tb_writer, write_config
    from pokegan.viz import plot_curves

    cfg.validate()
    dev.init_distributed()
    device = dev.resolve_device(cfg.device)
    dev.setup_torch(device, cfg.seed)
    main = dev.is_main()
    manifest = load_manifest(manifest_dir, cfg.data.data_root or None)
    task = resolve_task(cfg, manifest)
    names = output_names(task, manifest)
    place = prepare_step(
        "classify",
        resume=resume,
        out=out,
        manifest_dir=manifest.dir,
        data_root=cfg.data.data_root,
        image_size=cfg.data.image_size,
    )
    run, step_dir = place.run, place.dir
    if run.is_done("classify"):
        console.print(f"[dim]classify: {step_dir}/done.json exists, nothing to do[/]")
        return run.done_summary("classify")
    write_config(step_dir, cfg)
    n_out = len(names)
    model = build_model(cfg, n_out).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(cfg, model)
    scaler = dev.make_grad_scaler(device, cfg.amp)
    train_loader = loader_from_config(manifest, "train", cfg.data, train=True, device=device)
    has_val = len(manifest.rows("val")) > 0
    val_loader = (
        loader_from_config(manifest, "val", cfg.data, train=False, device=device) if has_val else None
    )
    plain = dataclasses.replace(cfg.data, augment=False, balanced=False)
    stats_loader = loader_from_config(manifest, "train", plain, train=True, device=device)
    steps_per_epoch = len(train_loader) // cfg.grad_accum
    if steps_per_epoch < 1:
        raise UserError(
            f"--grad-accum {cfg.grad_accum} exceeds the {len(train_loader)} batches of an epoch",
            hint="lower --grad-accum or --batch-size",
        )
    sched = WarmupCosine(cfg.lr, cfg.epochs * steps_per_epoch, cfg.warmup_steps, cfg.min_lr_ratio)
    st = {"model": model, "opt": opt, "sched": sched, "scaler": scaler, "step": 0, "best_top1": -1.0}
    st.update(n_out=n_out, task=task, classes=list(manifest.classes), manifest=manifest)
    epoch0, batch0 = 0, 0
    metrics = MetricsLog(step_dir / "metrics.jsonl", enabled=main)
    if (step_dir / "last.pt").is_file():
        state = load_checkpoint(step_dir / "last.pt")
        check_compatible(
            state,
            step_dir / "last.pt",
            manifest_sha256=manifest.sha256,
            classes=st["classes"],
            kind=CLASSIFIER_KIND,
        )
        if state["model_args"]["num_classes"] != n_out:
            raise UserError(
                f"{step_dir}/last.pt has {state['model_args']['num_classes']} outputs, not {n_out}"
            )
        model.load_state_dict(state["model"])
        restore_training_state(state, opt, scaler)
        st["step"], st["best_top1"] = int(state["step"]), float(state["best_top1"])
        epoch0, batch0 = int(state["epoch"]), int(state["batch_in_epoch"])
        metrics.truncate(epoch0)
        console.print(f"classify: resumed from step {st['step']} (epoch {epoch0}, batch {batch0})")
    model, ddp = dev.wrap_for_training(model, device, cfg.compile)
    st["model"] = model
    writer = tb_writer(step_dir)
    start_step, t0 = st["step"], time.perf_counter()
    stopped = False
    model.train()
    with progress(main) as bar:
        for epoch in range(epoch0, cfg.epochs):
            start = batch0 if epoch == epoch0 else 0
            train_loader.set_epoch(epoch, start)
            n_batches = steps_per_epoch * cfg.grad_accum
            task_id = bar.add_task(
                f"classify epoch {epoch + 1}/{cfg.epochs}", total=n_batches, completed=start, info=""
            )
            opt.zero_grad(set_to_none=True)
            loss_sum, seen, hits = 0.0, 0, 0
            for i, (x, y, _) in enumerate(train_loader, start=start):
                if i >= n_batches:
                    break
                x, y = _inputs(x, y, task, _rot_gen(cfg.seed, epoch, i), device, cfg.channels_last)
                last_micro = (i + 1) % cfg.grad_accum == 0
                sync = ddp.no_sync() if ddp is not None and not last_micro else contextlib.nullcontext()
                with sync:
                    with dev.autocast(device, cfg.amp):
                        logits = model(x).float()  # [B, n_out]
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                    if not torch.isfinite(loss):
                        raise UserError(
                            f"classify: the loss became {loss.item()} at step {st['step']}",
                            hint="lower --lr (or raise --warmup-steps) and continue with --resume",
                        )
                    scaler.scale(loss / cfg.grad_accum).backward()
                loss_sum += loss.item() * len(y)
                seen += len(y)
                hits += (logits.argmax(1) == y).sum().item()
                bar.update(task_id, advance=1, info=f"loss {loss.item():.3f}")
                if not last_micro:
                    continue
                lr = optimizer_step(opt, scaler, sched, model.parameters(), st["step"], cfg.grad_clip)
                st["step"] += 1
                if writer is not None and st["step"] % cfg.log_every == 0:
                    writer.add_scalar("train/loss", loss.item(), st["step"])
                    writer.add_scalar("train/lr", lr, st["step"])
                every = cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0
                stop = cfg.stop_after_steps and st["step"] - start_step >= cfg.stop_after_steps
                if (every or stop) and main:
                    save_checkpoint(step_dir / "last.pt", _checkpoint(st, cfg, epoch=epoch, batch=i + 1))
                if stop:
                    stopped = True
                    break
            bar.remove_task(task_id)
            if stopped:
                break
            row = {"epoch": epoch + 1, "step": st["step"], "lr": sched.lr_at(st["step"])}
            row["train_loss"] = loss_sum / max(1, seen)
            row["train_top1"] = hits / max(1, seen)
            dev.sync_buffers(unwrap(model))  # eval mode reads BatchNorm statistics: rank 0's on every rank
            if val_loader is not None:
                ev = validate(
                    model,
                    val_loader,
                    stats_loader,
                    epoch=epoch,
                    task=task,
                    n_out=n_out,
                    device=device,
                    cfg=cfg,
                )
                row.update(val_loss=ev["loss"], val_top1=ev["top1"], val_top5=ev["top5"])
                if main:
                    worst = write_per_class(
                        step_dir / "per_class_accuracy.csv", names, ev["total"], ev["correct"], cfg.worst_k
                    )
                    row["worst"] = [f"{w['class_name']} {w['accuracy']:.0%}" for w in worst]
            if main:
                _log_epoch(row, writer, cfg)
                metrics.append(row)
                plot_curves(
                    metrics.curves("train_loss", "val_loss"), step_dir / "curves.png", title="classify: loss"
                )
                top1 = row.get("val_top1", row["train_top1"])
                if top1 > st["best_top1"]:
                    st["best_top1"] = top1
                    best = _checkpoint(st, cfg, epoch=epoch + 1, batch=0)
                    best.pop("optimizer")  # weights for reference; resuming uses last.pt
                    save_checkpoint(step_dir / "best.pt", best)
                save_checkpoint(step_dir / "last.pt", _checkpoint(st, cfg, epoch=epoch + 1, batch=0))
    if writer is not None:
        writer.close()
    dev.sync_buffers(unwrap(model))
    dev.barrier()
    if stopped:
        console.print(
            f"classify: stopped after {st['step'] - start_step} steps (last.pt saved); continue with --resume"
        )
        return {"stopped": True, "step": st["step"]}
    return _finish(
        run, step_dir, cfg, st, manifest, metrics, device, time.perf_counter() - t0, feature_statistics
    )


def _log_epoch(row: dict, writer, cfg: ClassifyConfig) -> None:
    msg = f"classify epoch {row['epoch']}/{cfg.epochs}: train loss {row['train_loss']:.3f} top-1 {row['train_top1']:.1%}"
    if "val_top1" in row:
        msg += f" | val loss {row['val_loss']:.3f} top-1 {row['val_top1']:.1%} top-5 {row['val_top5']:.1%}"
    console.print(msg)
    if row.get("worst"):
        console.print(f"  worst classes: {', '.join(row['worst'])}")
    if writer is not None:
        for k in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5"):
            if k in row:
                writer.add_scalar(k.replace("_", "/", 1), row[k], row["step"])


def _finish(
    run, step_dir: Path, cfg: ClassifyConfig, st: dict, manifest, metrics, device, seconds, feature_statistics
):
    """Freeze the encoding statistics, write final.pt and done.json."""
    from pokegan import device as dev
    from pokegan.checkpoint import save_checkpoint, unwrap
    from pokegan.data import loader_from_config
    from pokegan.models.classifier import recalibrate_batchnorm

    model = unwrap(st["model"])
    # shuffled batches of the training size, not augmented: what the BatchNorms saw in training
    data = dataclasses.replace(cfg.data, max_images=0, augment=False, balanced=False)
    loader = loader_from_config(manifest, "train", data, train=True, device=device)
    limit = math.ceil(cfg.stats_images / dev.world_size())
    with console.status("classify: precise BatchNorm statistics, then the frozen embedding statistics"):
        loader.set_epoch(cfg.epochs)
        bn_images = recalibrate_batchnorm(model, loader, device, limit)
        loader.set_epoch(cfg.epochs + 1)
        stats = feature_statistics(model, loader, device, limit=limit)
    last = metrics.rows[-1] if metrics.rows else {}
    summary = {
        "task": st["task"],
        "epochs": cfg.epochs,
        "steps": st["step"],
        "outputs": st["n_out"],
        "train_top1": last.get("train_top1"),
        "val_top1": last.get("val_top1"),
        "val_top5": last.get("val_top5"),
        "best_top1": st["best_top1"],
        "stats_images": stats["n"],
        "bn_recalibration_images": bn_images * dev.world_size(),
        "seconds_this_session": round(seconds, 1),
        "final": str(step_dir / "final.pt"),
    }
    if dev.is_main():
        state = _checkpoint(st, cfg, epoch=cfg.epochs, batch=0)
        state["feature_stats"] = {"mean": stats["mean"], "var": stats["var"], "n": stats["n"]}
        save_checkpoint(step_dir / "final.pt", state)
        save_checkpoint(step_dir / "feature_stats.pt", state["feature_stats"])
        run.mark_done("classify", summary)
        console.print(f"classify: done, final classifier in {step_dir / 'final.pt'}")
    dev.barrier()
    return summary


__all__ = ["describe", "evaluate", "resolve_task", "run_classify", "validate"]
