"""Step 2, ``poke train pretrain``: the generator learns to reconstruct images from their embeddings.

Per batch: the frozen step-1 classifier encodes the (augmented) real images to ``z [B, 512]`` (frozen
encoding statistics, as in ``embed``) and, in the same pass, gives the target feature maps; the generator
reconstructs ``G(z)``; the loss is the perceptual distance of :mod:`pokegan.perceptual` (layer1..layer4,
weighted) plus an optional pixel L1. One classifier instance serves the encoding and the loss.

Writes ``RUN/pretrain/``::

    config.toml, last.pt (resume), final.pt (step 3 starts from it), metrics.jsonl, curves.png, tb/
    recon/epoch-001.png ...   fixed val images (top row) and their reconstructions (bottom row), per epoch
    done.json                 written last

A checkpoint holds ``model_args = {"generator": GeneratorArgs}`` and the weights under ``generator``, so
the generator rebuilds from it alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import torch

from pokedata.errors import UserError
from pokedata.log import console
from pokegan.config import PretrainConfig

PRETRAIN_KIND = "poke-pretrain-1"


def generator_args(cfg: PretrainConfig):
    from pokegan.models.generator import GeneratorArgs

    return GeneratorArgs(
        image_size=cfg.data.image_size,
        z_dim=512,
        channel_base=cfg.g_channel_base,
        max_channels=cfg.g_max_channels,
        min_channels=cfg.g_min_channels,
        dilate_from=cfg.g_dilate_from,
        dilation=cfg.g_dilation,
        upsample=cfg.g_upsample,
    )


def describe(cfg: PretrainConfig) -> dict:
    """What ``--dry-run`` prints: the resolved config and the generator size."""
    from pokegan.config import config_to_toml
    from pokegan.models.classifier import param_count
    from pokegan.models.generator import Generator

    return {
        "config": config_to_toml(cfg),
        "model": {f"generator ({cfg.data.image_size} px)": param_count(Generator(generator_args(cfg)))},
    }


def _checkpoint(st: dict, cfg: PretrainConfig, *, epoch: int, batch: int) -> dict:
    from pokegan.checkpoint import rng_state, unwrap

    return {
        "kind": PRETRAIN_KIND,
        "model_args": {"generator": dataclasses.asdict(st["g_args"])},
        "generator": unwrap(st["G"]).state_dict(),
        "optimizer": st["opt"].state_dict(),
        "schedule": st["sched"].state_dict(),
        "scaler": st["scaler"].state_dict(),
        "step": st["step"],
        "epoch": epoch,
        "batch_in_epoch": batch,
        "rng": rng_state(),
        "config": dataclasses.asdict(cfg),
        "classes": st["classes"],
        "manifest_sha256": st["manifest"].sha256,
    }


def _grid_images(manifest, cfg: PretrainConfig, device) -> torch.Tensor:
    """The fixed images of the reconstruction grids: the first ``grid_n`` val images (train if no val)."""
    from pokegan.data import make_loader

    split = "val" if len(manifest.rows("val")) >= 2 else "train"
    rows = manifest.rows(split)[: cfg.grid_n]
    loader = make_loader(
        manifest,
        split,
        cfg.data.image_size,
        len(rows),
        augment=False,
        seed=0,
        num_workers=0,
        distributed=False,
        rows=rows,
    )
    return next(iter(loader))[0].to(device)


@torch.no_grad()
def _recon_grid(
    st: dict, loss_fn, images: torch.Tensor, path: Path, writer, cfg: PretrainConfig, device
) -> None:
    from pokegan import device as dev
    from pokegan.checkpoint import unwrap
    from pokegan.viz import recon_grid, save_recon_grid

    g = unwrap(st["G"])
    g.eval()
    z, _ = loss_fn.encode(images)
    with dev.autocast(device, cfg.amp):
        recon = g(z).float()
    g.train()
    save_recon_grid(images, recon, path)
    if writer is not None:
        writer.add_image("recon/inputs_above_reconstructions_below", recon_grid(images, recon), st["step"])


def run_pretrain(cfg: PretrainConfig, run_dir: Path | str, *, resume: bool = False) -> dict:
    """Train step 2 into ``RUN/pretrain/``; returns the summary written to ``done.json``."""
    from pokegan import device as dev
    from pokegan.checkpoint import check_compatible, load_checkpoint, restore_training_state, save_checkpoint
    from pokegan.data import load_manifest, loader_from_config
    from pokegan.models.classifier import load_frozen_classifier
    from pokegan.models.generator import Generator
    from pokegan.perceptual import PerceptualLoss
    from pokegan.schedule import WarmupCosine
    from pokegan.steps import (
        MetricsLog,
        optimizer_step,
        param_groups,
        prepare_step,
        progress,
        tb_writer,
        write_config,
    )
    from pokegan.viz import plot_curves

    cfg.validate()
    dev.init_distributed()
    device = dev.resolve_device(cfg.device)
    dev.setup_torch(device, cfg.seed)
    main = dev.is_main()
    place = prepare_step("pretrain", resume=resume, run_dir=run_dir)
    run, step_dir = place.run, place.dir
    if run.is_done("pretrain"):
        console.print(f"[dim]pretrain: {step_dir}/done.json exists, nothing to do[/]")
        return run.done_summary("pretrain")
    if not run.is_done("classify"):
        raise UserError(
            f"step 1 of {run.root} is not finished", hint="run `poke train classify` (or --resume it) first"
        )
    write_config(step_dir, cfg)
    manifest = load_manifest(run.manifest_dir, cfg.data.data_root or run.data_root)
    classifier = load_frozen_classifier(run, device)
    if cfg.channels_last:
        classifier = classifier.to(memory_format=torch.channels_last)
    loss_fn = PerceptualLoss(classifier, cfg.layer_weights, cfg.pixel_l1)
    g_args = generator_args(cfg)
    G = Generator(g_args).to(device)
    # Step 2 trains forward(z), which reads only the last toRGB; the coarser ones (step 3's multi-scale
    # discriminator reads them) get no gradient here. Freezing them keeps them out of the optimizer and
    # out of DDP, which would otherwise fail on parameters that never receive a gradient.
    for to_rgb in G.to_rgb[:-1]:
        to_rgb.requires_grad_(False)
    if cfg.channels_last:
        G = G.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(param_groups(G, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    scaler = dev.make_grad_scaler(device, cfg.amp)
    loader = loader_from_config(manifest, "train", cfg.data, train=True, device=device)
    steps_per_epoch = len(loader) // cfg.grad_accum
    if steps_per_epoch < 1:
        raise UserError(
            f"--grad-accum {cfg.grad_accum} exceeds the {len(loader)} batches of an epoch", hint="lower it"
        )
    sched = WarmupCosine(cfg.lr, cfg.epochs * steps_per_epoch, cfg.warmup_steps, cfg.min_lr_ratio)
    st = {"G": G, "g_args": g_args, "opt": opt, "sched": sched, "scaler": scaler, "step": 0}
    st.update(classes=list(manifest.classes), manifest=manifest)
    epoch0, batch0 = 0, 0
    metrics = MetricsLog(step_dir / "metrics.jsonl", enabled=main)
    if (step_dir / "last.pt").is_file():
        state = load_checkpoint(step_dir / "last.pt")
        check_compatible(
            state,
            step_dir / "last.pt",
            manifest_sha256=manifest.sha256,
            classes=st["classes"],
            kind=PRETRAIN_KIND,
        )
        if state["model_args"]["generator"] != dataclasses.asdict(g_args):
            raise UserError(
                f"{step_dir}/last.pt holds a different generator ({state['model_args']['generator']})",
                hint="resume with the same generator options and image size",
            )
        G.load_state_dict(state["generator"])
        restore_training_state(state, opt, scaler)
        st["step"], epoch0, batch0 = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        metrics.truncate(epoch0)
        console.print(f"pretrain: resumed from step {st['step']} (epoch {epoch0}, batch {batch0})")
    model, ddp = dev.wrap_for_training(G, device, cfg.compile)
    st["G"] = model
    grid_images = _grid_images(manifest, cfg, device) if main else None
    writer = tb_writer(step_dir)
    start_step, t0, stopped = st["step"], time.perf_counter(), False
    with progress(main) as bar:
        for epoch in range(epoch0, cfg.epochs):
            start = batch0 if epoch == epoch0 else 0
            loader.set_epoch(epoch, start)
            n_batches = steps_per_epoch * cfg.grad_accum
            task_id = bar.add_task(
                f"pretrain epoch {epoch + 1}/{cfg.epochs}", total=n_batches, completed=start, info=""
            )
            opt.zero_grad(set_to_none=True)
            loss_sum, seen = 0.0, 0
            for i, (x, _, _) in enumerate(loader, start=start):
                if i >= n_batches:
                    break
                x = x.to(device, non_blocking=True)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                last_micro = (i + 1) % cfg.grad_accum == 0
                with dev.autocast(device, cfg.amp):
                    z, targets = loss_fn.encode(x)  # z [B, 512], unit feature maps layer1..4
                sync = ddp.no_sync() if ddp is not None and not last_micro else contextlib.nullcontext()
                with sync:
                    with dev.autocast(device, cfg.amp):
                        recon = model(z)  # [B, 3, S, S]
                        loss, terms = loss_fn(recon, x, targets)
                    if not torch.isfinite(loss):
                        raise UserError(
                            f"pretrain: the loss became {loss.item()} at step {st['step']}",
                            hint="lower --lr and continue with --resume",
                        )
                    scaler.scale(loss / cfg.grad_accum).backward()
                loss_sum, seen = loss_sum + loss.item() * len(x), seen + len(x)
                bar.update(task_id, advance=1, info=f"loss {loss.item():.4f}")
                if not last_micro:
                    continue
                lr = optimizer_step(opt, scaler, sched, model.parameters(), st["step"], cfg.grad_clip)
                st["step"] += 1
                if writer is not None and st["step"] % cfg.log_every == 0:
                    writer.add_scalar("train/loss", loss.item(), st["step"])
                    writer.add_scalar("train/lr", lr, st["step"])
                    for k, v in terms.items():
                        writer.add_scalar(f"loss_terms/{k}", v, st["step"])
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
            if main:
                row = {
                    "epoch": epoch + 1,
                    "step": st["step"],
                    "lr": sched.lr_at(st["step"]),
                    "loss": loss_sum / max(1, seen),
                }
                console.print(f"pretrain epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.4f}")
                if writer is not None:
                    writer.add_scalar("epoch/loss", row["loss"], st["step"])
                metrics.append(row)
                _recon_grid(
                    st,
                    loss_fn,
                    grid_images,
                    step_dir / "recon" / f"epoch-{epoch + 1:03d}.png",
                    writer,
                    cfg,
                    device,
                )
                plot_curves(
                    metrics.curves("loss"),
                    step_dir / "curves.png",
                    title="pretrain: perceptual loss",
                    logy=True,
                )
                save_checkpoint(step_dir / "last.pt", _checkpoint(st, cfg, epoch=epoch + 1, batch=0))
    if writer is not None:
        writer.close()
    dev.barrier()
    if stopped:
        console.print(
            f"pretrain: stopped after {st['step'] - start_step} steps (last.pt saved); continue with --resume"
        )
        return {"stopped": True, "step": st["step"]}
    summary = {
        "epochs": cfg.epochs,
        "steps": st["step"],
        "image_size": cfg.data.image_size,
        "loss": metrics.rows[-1]["loss"] if metrics.rows else None,
        "first_loss": metrics.rows[0]["loss"] if metrics.rows else None,
        "seconds_this_session": round(time.perf_counter() - t0, 1),
        "final": str(step_dir / "final.pt"),
    }
    if main:
        final = _checkpoint(st, cfg, epoch=cfg.epochs, batch=0)
        final.pop("optimizer")
        save_checkpoint(step_dir / "final.pt", final)
        run.mark_done("pretrain", summary)
        console.print(f"pretrain: done, generator in {step_dir / 'final.pt'}")
    dev.barrier()
    return summary


__all__ = ["PRETRAIN_KIND", "describe", "generator_args", "run_pretrain"]
