"""The progressive DCGAN's training state: where it is (stage, cycle entry, epoch, batch, alpha), the
models and optimizers, and its checkpoints.

A checkpoint (``progan/last.pt``, ``stage_<size>px.pt``, ``final.pt``) holds the model arguments (so G and D
rebuild from it alone, at the right size, with the right frozen layers), both state dicts (and the EMA
generator's with ``ema_decay > 0``: grids, snapshots and :func:`load_generator` use it), ``alpha``, both
optimizers, the :class:`Position` (stage index and size, cycle entry, epoch, batch within the epoch, global
and in-stage step), the fixed latents, every RNG state, the resolved config, the class list and the
manifest hash. A class-conditional run (``conditional``) also keeps the fixed labels beside the fixed latents
and the train split's count per class (``class_counts``: the prior its samples draw labels from).
``--resume`` restores all of it and carries on mid-stage, mid-epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pokedata.errors import UserError
from pokegan import device as dev
from pokegan.checkpoint import check_compatible, load_checkpoint, provenance, save_on_main, set_rng_state
from pokegan.device import make_grad_scaler
from pokegan.ema import EMA
from pokegan.losses import GANLoss, make_loss
from pokegan.progan.config import ProGANConfig
from pokegan.progan.gradflow import GradFlow
from pokegan.progan.grow import GrowReport, build_models, grow, transfer_weights
from pokegan.progan.models import Discriminator, Generator, ProGANArgs

CHECKPOINT_KIND = "poke-progan-1"

# Changing these between a run and its --resume would not fit the saved models or position.
_FIXED_ON_RESUME = (
    "sizes",
    "z_dim",
    "channel_base",
    "max_channels",
    "norm",
    "d_norm",
    "upsample",
    "padding",
    "mbstd",
    "loss",
    "conditional",
)
# How the models grow: these may change while a run is still in its first stage (no growth done yet:
# the first-stage models are the same network whichever way they will grow), not after.
_FIXED_AFTER_GROWTH = ("fade_in", "freeze", "skip_rgb")


@dataclass
class Position:
    """Where the training is. ``batch`` counts batches done in the current epoch."""

    stage: int = 0  # index into cfg.sizes
    entry: int = 0  # index into the stage's cycle
    epoch: int = 0  # epoch within the cycle entry
    batch: int = 0  # batches done within the epoch
    step: int = 0  # batches done over the whole training
    stage_step: int = 0  # batches done within the stage (drives alpha)


@dataclass
class ProGANState:
    cfg: ProGANConfig
    out: Path
    device: torch.device
    G: Generator
    D: Discriminator
    loss: GANLoss
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    fixed_z: torch.Tensor  # [n_fixed, z_dim] on device
    classes: list[str]
    manifest_sha256: str
    pos: Position = field(default_factory=Position)
    flows: tuple[GradFlow, GradFlow] = field(
        default_factory=lambda: (GradFlow("G"), GradFlow("D"))
    )  # this stage
    scaler_g: Any = None  # torch.amp.GradScaler for G: enabled only under fp16 autocast (D runs in float32)
    ema: EMA | None = None  # moving average of G's weights (ema_decay > 0)
    G_train: Any = None  # what the generator step calls: G, under DDP when distributed (see wrap)
    D_train: Any = None  # what the critic step calls: D, under DDP when distributed
    fixed_y: torch.Tensor | None = None  # [n_fixed] class indices on device (conditional runs)
    class_counts: list[int] | None = None  # train images per class (conditional runs): the label prior

    @property
    def size(self) -> int:
        return self.cfg.sizes[self.pos.stage]

    @property
    def sample_model(self) -> Generator:
        """The generator that draws grids, snapshots and evaluations: the EMA copy when there is one."""
        return self.ema.model if self.ema is not None else self.G

    def set_alpha(self, alpha: float) -> None:
        self.G.alpha = self.D.alpha = float(alpha)
        if self.ema is not None:
            self.ema.model.alpha = float(alpha)

    def wrap(self) -> None:
        """(Re)wrap G and D for data-parallel training, after they are built, loaded or grown.

        Under torchrun DDP averages their gradients over the ranks (rank 0's weights are broadcast first);
        while a stage fades in, a faded-out branch may get no gradient: DDP then looks for unused ones.
        """
        self.G_train = dev.data_parallel(self.G, self.device, find_unused=self.G.args.fade)
        self.D_train = dev.data_parallel(self.D, self.device, find_unused=self.G.args.fade)

    def set_lr(self, lr_g: float, lr_d: float) -> None:
        for opt, lr in ((self.opt_g, lr_g), (self.opt_d, lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr


def stage_args(cfg: ProGANConfig, stage: int, n_classes: int = 0) -> ProGANArgs:
    """The model arguments of stage ``stage`` (what G and D look like while training at that size);
    ``n_classes``: the manifest's class count, used when ``cfg.conditional``."""
    return ProGANArgs(
        resolution=cfg.sizes[stage],
        grown_from=cfg.sizes[stage - 1] if stage else 0,
        fade=bool(cfg.fade_in and stage),
        z_dim=cfg.z_dim,
        channel_base=cfg.channel_base,
        max_channels=cfg.max_channels,
        g_norm=cfg.norm,
        d_norm=cfg.resolved_d_norm,
        g_upsample=cfg.upsample,
        padding=cfg.padding,
        mbstd=cfg.mbstd,
        skip_rgb=cfg.skip_rgb,
        rgb_from=cfg.sizes[0] if cfg.skip_rgb else 0,
        n_classes=n_classes if cfg.conditional else 0,
    ).validate()


def make_optimizers(loss: GANLoss, cfg: ProGANConfig, g: Generator, d: Discriminator, stage: int):
    """Optimizers over the trainable parameters only (frozen layers are not stepped, nor kept in state)."""
    first = cfg.stage_cycle(cfg.sizes[stage])[0]
    g_params = [p for p in g.parameters() if p.requires_grad]
    d_params = [p for p in d.parameters() if p.requires_grad]
    return loss.make_optimizers(g_params, d_params, cfg.loss_config(first.lr, first.lr_d))


def fixed_labels(class_counts: list[int], n: int, seed: int) -> torch.Tensor:
    """``[n]`` class indices for the sample grids: every class with train images once, in a seeded order,
    before any repeats (so a grid of 64 shows 64 different classes when the data has them)."""
    present = torch.tensor([c for c, k in enumerate(class_counts) if k > 0], dtype=torch.long)
    if present.numel() == 0:
        raise UserError("the train split has no labelled images", hint="rebuild the manifest")
    gen = torch.Generator().manual_seed(seed)
    reps = -(-n // present.numel())
    order = torch.cat([present[torch.randperm(present.numel(), generator=gen)] for _ in range(reps)])
    return order[:n]


def new_state(
    cfg: ProGANConfig,
    out: Path,
    device: torch.device,
    classes: list[str],
    manifest_sha256: str,
    class_counts: list[int] | None = None,
) -> ProGANState:
    """Stage-0 models, the loss, optimizers and fixed latents (seeded); with ``cfg.conditional`` the models
    take labels of ``len(classes)`` classes and ``class_counts`` (train images per class) is required."""
    if cfg.conditional and (class_counts is None or len(class_counts) != len(classes)):
        raise ValueError("a conditional progan needs class_counts: the train images of every class")
    torch.manual_seed(cfg.seed)
    g, d = build_models(stage_args(cfg, 0, len(classes)), freeze=cfg.freeze)
    g, d = g.to(device), d.to(device)
    loss = make_loss(cfg.loss_config())
    opt_g, opt_d = make_optimizers(loss, cfg, g, d, 0)
    fixed_z = torch.randn(cfg.n_fixed, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
    st = ProGANState(
        cfg, out, device, g, d, loss, opt_g, opt_d, fixed_z.to(device), list(classes), manifest_sha256
    )
    if cfg.conditional:
        st.class_counts = [int(c) for c in class_counts]
        st.fixed_y = fixed_labels(st.class_counts, cfg.n_fixed, cfg.seed + 2).to(device)
    st.scaler_g = make_grad_scaler(device, cfg.amp)
    st.ema = EMA(g, cfg.ema_decay) if cfg.ema_decay > 0 else None
    st.wrap()
    if dev.rank() > 0:  # seeded alike for equal initial weights; the latents of each rank are its own
        dev.reseed_rank(cfg.seed, 0)
    return st


def grow_state(st: ProGANState) -> GrowReport:
    """Move to the next stage: grow G and D, fresh optimizers, position at the start of the stage."""
    nxt = st.pos.stage + 1
    old_ema = st.ema
    st.G, st.D, report = grow(
        st.G, st.D, st.cfg.sizes[nxt], fade=st.cfg.fade_in, freeze=st.cfg.freeze, skip_rgb=st.cfg.skip_rgb
    )
    if old_ema is not None:  # the grown average: old layers keep their averages, new ones start at G's
        st.ema = EMA(st.G, old_ema.decay)
        transfer_weights(old_ema.model, st.ema.model)
        st.ema.num_updates = old_ema.num_updates
        st.ema.model.alpha = st.G.alpha
    st.opt_g, st.opt_d = make_optimizers(st.loss, st.cfg, st.G, st.D, nxt)
    st.pos = Position(stage=nxt, step=st.pos.step)
    st.flows = (GradFlow("G"), GradFlow("D"))
    st.wrap()
    return report


def state_dict(st: ProGANState) -> dict:
    p = st.pos
    return {
        "kind": CHECKPOINT_KIND,
        "model_args": asdict(st.G.args),
        "generator": st.G.state_dict(),
        "discriminator": st.D.state_dict(),
        "alpha": st.G.alpha,
        "frozen": {"G": list(st.G.frozen), "D": list(st.D.frozen)},
        "opt_g": st.opt_g.state_dict(),
        "opt_d": st.opt_d.state_dict(),
        "scaler_g": st.scaler_g.state_dict() if st.scaler_g is not None else None,
        "ema": st.ema.state_dict() if st.ema is not None else None,
        "position": asdict(p),
        "stage": {"index": p.stage, "size": st.size},
        "cycle_position": {"entry": p.entry, "epoch": p.epoch, "batch": p.batch},
        "step": p.step,
        "fixed_latents": st.fixed_z.cpu(),
        "fixed_labels": st.fixed_y.cpu() if st.fixed_y is not None else None,
        "class_counts": st.class_counts,
        "gradflow": [f.state_dict() for f in st.flows],
        **provenance(st.cfg, st.classes, st.manifest_sha256),
    }


def save_state(st: ProGANState, path: Path) -> None:
    """Save a checkpoint (rank 0: the replicas are equal; the others go on)."""
    save_on_main(path, lambda: state_dict(st))


def check_resumable(saved: dict, cfg: ProGANConfig, path: Path) -> None:
    """Refuse a resume whose config would not fit the saved models or position.

    The growth settings (fade-in, freezing, skip outputs) count only once the run has grown."""
    old = dict(saved.get("config", {}))
    grown = saved.get("position", {}).get("stage", 0) > 0
    new = {k: getattr(cfg, k) for k in _FIXED_ON_RESUME + (_FIXED_AFTER_GROWTH if grown else ())}
    old.setdefault("skip_rgb", False)  # written before skip outputs existed
    old.setdefault("conditional", False)  # written before conditional runs existed
    old["batch_size"] = old.get("data", {}).get("batch_size")
    new["batch_size"] = cfg.data.batch_size
    changed = [k for k in new if k in old and old[k] != new[k]]
    if changed:
        what = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in changed)
        raise UserError(
            f"{path} was trained with other settings ({what})",
            hint="resume with the same options (or config file), or start a new run with a new --out",
        )


def load_state(st: ProGANState, path: Path) -> None:
    """Restore models (rebuilt at the saved stage), alpha, optimizers, position, latents and RNG states."""
    saved = load_checkpoint(path)
    check_compatible(
        saved, path, manifest_sha256=st.manifest_sha256, classes=st.classes, kind=CHECKPOINT_KIND
    )
    check_resumable(saved, st.cfg, path)
    pos = Position(**saved["position"])
    args = ProGANArgs(**saved["model_args"])
    g, d = build_models(args, freeze=st.cfg.freeze)
    g.load_state_dict(saved["generator"])
    d.load_state_dict(saved["discriminator"])
    st.G, st.D = g.to(st.device), d.to(st.device)
    st.ema = EMA(st.G, st.cfg.ema_decay) if st.cfg.ema_decay > 0 else None
    if st.ema is not None and saved.get("ema"):
        st.ema.load_state_dict(saved["ema"])
        st.ema.decay = st.cfg.ema_decay
    st.pos = pos
    st.set_alpha(float(saved["alpha"]))
    st.opt_g, st.opt_d = make_optimizers(st.loss, st.cfg, st.G, st.D, pos.stage)
    st.opt_g.load_state_dict(saved["opt_g"])
    st.opt_d.load_state_dict(saved["opt_d"])
    if saved.get("scaler_g") and st.scaler_g is not None:
        st.scaler_g.load_state_dict(saved["scaler_g"])
    st.fixed_z = saved["fixed_latents"].to(st.device)
    if saved.get("fixed_labels") is not None:
        st.fixed_y = saved["fixed_labels"].to(st.device)
        st.class_counts = list(saved["class_counts"])
    for flow, flow_state in zip(st.flows, saved.get("gradflow", []), strict=False):
        flow.load_state_dict(flow_state, st.device)
    set_rng_state(saved["rng"])
    if dev.rank() > 0:  # the checkpoint holds rank 0's streams: the other ranks draw their own again
        dev.reseed_rank(st.cfg.seed, pos.step)
    st.wrap()


def load_generator(path: Path, device: torch.device | str = "cpu") -> tuple[Generator, dict]:
    """The generator of a progan checkpoint, rebuilt from the checkpoint alone (eval mode); and the state.

    Its EMA weights when the run kept an average (``ema_decay > 0``), else the trained weights. A
    conditional generator (``g.args.n_classes > 0``) takes labels: the state's ``class_counts`` is the
    train split's prior over them, ``classes`` their names."""
    saved = load_checkpoint(path)
    if saved.get("kind") != CHECKPOINT_KIND:
        raise UserError(f"{path} is not a progan checkpoint", hint="use RUN/progan/final.pt or last.pt")
    g = Generator(ProGANArgs(**saved["model_args"]))
    g.load_state_dict(saved["ema"]["model"] if saved.get("ema") else saved["generator"])
    g.alpha = float(saved.get("alpha", 1.0))
    return g.to(device).eval(), saved
