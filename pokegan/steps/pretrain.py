"""Step 2, ``poke train pretrain``: the generator learns to reconstruct images from their embeddings.

Per batch: the frozen step-1 classifier encodes the real images (as they are, unless ``augment``) to
``z [B, 512]`` (frozen encoding statistics, as in ``embed``) and, in the same pass, gives the target feature
maps; the generator reconstructs ``G(z)``; the loss is the perceptual distance of :mod:`pokegan.perceptual`
(layer1..layer4, weighted) plus an optional pixel L1. One classifier instance serves the encoding and the
loss.

Writes ``RUN/pretrain/``::

    config.toml, last.pt (resume), final.pt (step 3 starts from it), metrics.jsonl, curves.png, tb/
    recon/epoch-001.png ...   fixed val images (top row) and their reconstructions (bottom row), per epoch
    done.json                 written last

A checkpoint holds ``model_args = {"generator": GeneratorArgs}`` and the weights under ``generator``, so
the generator rebuilds from it alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from pokedata.errors import UserError
from pokedata.log import console
from pokegan import device as dev
from pokegan.checkpoint import save_checkpoint, unwrap
from pokegan.config import PretrainConfig, config_to_toml
from pokegan.data import load_manifest, loader_from_config, make_loader
from pokegan.loop import (
    EpochState,
    Session,
    checkpoint,
    open_session,
    resume_epochs,
    steps_per_epoch,
    train_epochs,
)
from pokegan.models.classifier import load_frozen_classifier, param_count
from pokegan.models.generator import Generator, GeneratorArgs
from pokegan.perceptual import PerceptualLoss
from pokegan.runs import RunDir
from pokegan.schedule import WarmupCosine
from pokegan.steps import param_groups
from pokegan.viz import plot_curves, recon_grid, save_recon_grid

PRETRAIN_KIND = "poke-pretrain-1"


def generator_args(cfg: PretrainConfig) -> GeneratorArgs:
    return GeneratorArgs(
        image_size=cfg.data.image_size,
        z_dim=512,
        channel_base=cfg.g_channel_base,
        max_channels=cfg.g_max_channels,
        min_channels=cfg.g_min_channels,
        dilate_from=cfg.g_dilate_from,
        dilation=cfg.g_dilation,
        upsample=cfg.g_upsample,
        output=cfg.g_output,
    )


def describe(cfg: PretrainConfig) -> dict:
    """What ``--dry-run`` prints: the resolved config and the generator size."""
    return {
        "config": config_to_toml(cfg),
        "model": {f"generator ({cfg.data.image_size} px)": param_count(Generator(generator_args(cfg)))},
    }


def _grid_images(manifest, cfg: PretrainConfig, device) -> torch.Tensor:
    """The fixed images of the reconstruction grids: the first ``grid_n`` val images (train if no val)."""
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


@dataclass
class PretrainState(EpochState):
    """Step 2's training state: the epoch loop's (``model`` is the generator), plus this epoch's sums."""

    g_args: GeneratorArgs | None = None
    loss_sum: float = 0.0
    seen: int = 0


@dataclass
class PretrainStep:
    """What step 2 supplies to the epoch loop (:func:`pokegan.loop.train_epochs`)."""

    cfg: PretrainConfig
    loss_fn: PerceptualLoss  # the frozen classifier: encoder of the inputs and the perceptual loss
    grid_images: torch.Tensor | None  # the fixed images of the reconstruction grids (rank 0)
    device: torch.device
    name: str = "pretrain"
    kind: str = PRETRAIN_KIND

    def payload(self, st: PretrainState) -> dict:
        return {
            "model_args": {"generator": dataclasses.asdict(st.g_args)},
            "generator": unwrap(st.model).state_dict(),
        }

    def restore(self, st: PretrainState, state: dict, path: Path) -> None:
        if state["model_args"]["generator"] != dataclasses.asdict(st.g_args):
            raise UserError(
                f"{path} holds a different generator ({state['model_args']['generator']})",
                hint="resume with the same generator options and image size",
            )
        unwrap(st.model).load_state_dict(state["generator"])

    def micro_batch(self, st: PretrainState, batch, epoch: int, i: int):
        cfg, x = self.cfg, batch[0].to(self.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with dev.autocast(self.device, cfg.amp):
            with torch.no_grad():
                z, targets = self.loss_fn.encode(x)  # z [B, 512], unit feature maps layer1..4
            recon = st.model(z)  # [B, 3, S, S]
            loss, terms = self.loss_fn(recon, x, targets)
        st.loss_sum, st.seen = st.loss_sum + loss.item() * len(x), st.seen + len(x)
        return loss, terms

    def end_epoch(self, s: Session, st: PretrainState, epoch: int) -> None:
        """The metrics row, the reconstruction grid and the curves (rank 0)."""
        loss = st.loss_sum / max(1, st.seen)
        st.loss_sum, st.seen = 0.0, 0
        if not s.main:
            return
        row = {"epoch": epoch + 1, "step": st.step, "lr": st.sched.lr_at(st.step), "loss": loss}
        console.print(f"pretrain epoch {epoch + 1}/{self.cfg.epochs}: loss {loss:.4f}")
        s.scalars({"epoch/loss": loss}, st.step)
        s.metrics.append(row)
        self.recon_grid(s, st, s.dir / "recon" / f"epoch-{epoch + 1:03d}.png")
        plot_curves(
            s.metrics.curves("loss"), s.dir / "curves.png", title="pretrain: perceptual loss", logy=True
        )

    @torch.no_grad()
    def recon_grid(self, s: Session, st: PretrainState, path: Path) -> None:
        g = unwrap(st.model)
        g.eval()
        z, _ = self.loss_fn.encode(self.grid_images)
        with dev.autocast(self.device, self.cfg.amp):
            recon = g(z).float()
        g.train()
        save_recon_grid(self.grid_images, recon, path)
        if s.writer is not None:
            grid = recon_grid(self.grid_images, recon)
            s.writer.add_image("recon/inputs_above_reconstructions_below", grid, st.step)


def build_generator(cfg: PretrainConfig, device) -> Generator:
    """A fresh generator; only the last toRGB trains here.

    Step 2 trains forward(z), which reads only the last toRGB; the coarser ones (step 3's multi-scale
    discriminator reads them) get no gradient here. Freezing them keeps them out of the optimizer and
    out of DDP, which would otherwise fail on parameters that never receive a gradient.
    """
    g = Generator(generator_args(cfg)).to(device)
    for to_rgb in g.to_rgb[:-1]:
        to_rgb.requires_grad_(False)
    return g.to(memory_format=torch.channels_last) if cfg.channels_last else g


def run_pretrain(cfg: PretrainConfig, run: RunDir | Path | str, *, resume: bool = False) -> dict:
    """Train step 2 into ``RUN/pretrain/``; returns the summary written to ``done.json``."""
    cfg.validate()
    s = open_session("pretrain", cfg, run, resume=resume, requires=("classify",))
    if s.done:
        return s.done_summary()
    manifest = load_manifest(s.run.manifest_dir, cfg.data.data_root or s.run.data_root)
    classifier = load_frozen_classifier(s.run, s.device)
    if cfg.channels_last:
        classifier = classifier.to(memory_format=torch.channels_last)
    loss_fn = PerceptualLoss(classifier, cfg.layer_weights, cfg.pixel_l1)
    G = build_generator(cfg, s.device)
    opt = torch.optim.AdamW(param_groups(G, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    scaler = dev.make_grad_scaler(s.device, cfg.amp)
    loader = loader_from_config(manifest, "train", cfg.data, train=True, device=s.device, augment=cfg.augment)
    total = cfg.epochs * steps_per_epoch(loader, cfg.grad_accum)
    st = PretrainState(
        model=G,
        opt=opt,
        sched=WarmupCosine(cfg.lr, total, cfg.warmup_steps, cfg.min_lr_ratio),
        scaler=scaler,
        classes=list(manifest.classes),
        manifest_sha256=manifest.sha256,
        g_args=generator_args(cfg),
    )
    grid = _grid_images(manifest, cfg, s.device) if s.main else None
    step = PretrainStep(cfg, loss_fn, grid, s.device)
    resume_epochs(s, step, st)
    if train_epochs(s, step, st, cfg, loader):
        return {"stopped": True, "step": st.step}
    rows = s.metrics.rows
    summary = {
        "epochs": cfg.epochs,
        "steps": st.step,
        "image_size": cfg.data.image_size,
        "loss": rows[-1]["loss"] if rows else None,
        "first_loss": rows[0]["loss"] if rows else None,
        "seconds_this_session": s.seconds(),
        "final": str(s.dir / "final.pt"),
    }
    if s.main:
        final = checkpoint(step, st, cfg, epoch=cfg.epochs, batch=0)
        final.pop("optimizer")
        save_checkpoint(s.dir / "final.pt", final)
        console.print(f"pretrain: done, generator in {s.dir / 'final.pt'}")
    return s.finish(summary)


__all__ = ["PRETRAIN_KIND", "PretrainState", "PretrainStep", "describe", "generator_args", "run_pretrain"]
