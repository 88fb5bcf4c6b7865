"""Step 3b plumbing: building every object the loop needs, and its checkpoints.

A GAN checkpoint (``gan/last.pt``, ``best.pt``, ``final.pt``) holds the generator and discriminator
arguments and weights, the EMA generator, both optimizers, the step, the learning-rate scale left by NaN
recoveries, the best judge FD so far (``best.pt`` is chosen by the judge, :mod:`pokegan.judge`), every RNG state (torch, the latent generator, CUDA), the resolved config,
the class list and the manifest hash: ``poke sample`` rebuilds the EMA generator from it alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pokedata.errors import UserError
from pokedata.log import console
from pokegan import device as dev
from pokegan.checkpoint import (
    check_compatible,
    load_checkpoint,
    provenance,
    save_checkpoint,
    save_on_main,
    set_rng_state,
)
from pokegan.config import PretrainConfig, config_to_toml, load_step_config
from pokegan.data import load_manifest, loader_from_config
from pokegan.ema import EMA
from pokegan.gmm import GaussianMixture
from pokegan.judge import load_or_train_judge, reference_features
from pokegan.loop import MetricsLog
from pokegan.losses import make_loss
from pokegan.metrics import classifier_reference
from pokegan.models.classifier import load_frozen_classifier
from pokegan.models.discriminator import DiscriminatorArgs, build_discriminator
from pokegan.models.generator import Generator, GeneratorArgs
from pokegan.steps.gan_config import GANConfig  # torch-free: the CLI reads its fields
from pokegan.steps.pretrain import generator_args

CHECKPOINT_KIND = "poke-gan-1"


@dataclass
class GANState:
    """Everything the loop touches. Built by :func:`build_state`, saved/restored by save/load_state."""

    cfg: GANConfig
    out: Path
    device: torch.device
    G: nn.Module
    D: nn.Module
    ema: Any
    loss: Any
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: Any  # torch.amp.GradScaler: enabled only under fp16 autocast (the critic runs in float32)
    gmm: Any
    fixed_latents: torch.Tensor
    latent_gen: torch.Generator
    scales: list[int]
    g_args: dict
    d_args: dict
    classifier: nn.Module
    real_stats: Any
    judge: Any  # pokegan.judge.Judge
    judge_ref: Any  # its features of the reference sample [n, D]
    loader: Any
    classes: list[str]
    manifest_sha256: str
    step: int = 0
    lr_scale: float = 1.0
    nan_events: int = 0
    best_judge_fd: float = math.inf
    best_step: int = -1
    data_epoch: int = 0  # the real-data position: epoch, and batches handed out in it
    data_batch: int = 0
    metrics: Any = None  # pokegan.loop.MetricsLog of gan/metrics.jsonl (rank 0 writes)
    G_train: Any = None  # what the generator step calls: G (multi-scale or not), under DDP when distributed
    D_train: Any = None  # what the critic step calls: D, under DDP when distributed

    def apply_lr(self) -> None:
        for opt, base in ((self.opt_g, self.cfg.loss.lr_g), (self.opt_d, self.cfg.loss.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * self.lr_scale


# ---- prerequisites ---------------------------------------------------------------------------------
def pretrain_checkpoint(run) -> Path | None:
    """The finished step-2 generator checkpoint (``pretrain/final.pt``) of a run, or None."""
    path = Path(run.step_dir("pretrain")) / "final.pt"
    return path if path.is_file() else None


def scratch_generator_args(run, pretrain_cfg=None) -> dict:
    """The generator ``--from-scratch`` builds: the one step 2 would build, from the same ``[pretrain]``
    settings (``pretrain_cfg``: the resolved PretrainConfig of this preset/config file; else the run's
    ``pretrain/config.toml`` when step 2 started; else the ``[pretrain]`` defaults), so "from scratch" and
    "pretrained" compare the same model. The image size is the run's."""
    if pretrain_cfg is None:
        saved = Path(run.step_dir("pretrain")) / "config.toml"
        pretrain_cfg = load_step_config(
            PretrainConfig, "pretrain", config_file=saved if saved.is_file() else None
        )
    if run.image_size:
        pretrain_cfg = dataclasses.replace(
            pretrain_cfg, data=dataclasses.replace(pretrain_cfg.data, image_size=run.image_size)
        )
    return asdict(generator_args(pretrain_cfg))


def _build_generator(run, cfg: GANConfig, scratch_args: dict | None = None):
    """(G, generator args dict): the step-2 generator's weights, or a fresh one with ``from_scratch``
    (``scratch_args``, default :func:`scratch_generator_args`)."""
    ckpt = pretrain_checkpoint(run)
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        args = state["model_args"]
        args = args.get("generator", args) if isinstance(args, dict) else asdict(args)
        g = Generator(GeneratorArgs(**args))
        g.load_state_dict(state.get("generator", state.get("model")))
        console.print(f"gan: starting from the step-2 generator {ckpt}")
        return g, args
    if not cfg.from_scratch:
        raise UserError(
            f"no step-2 generator in {run.step_dir('pretrain')}",
            hint="run `poke train pretrain --run RUN` first, or pass --from-scratch to train G from random weights",
        )
    args = dict(scratch_args or scratch_generator_args(run))
    console.print(
        f"[yellow]gan: --from-scratch: a randomly initialised {args['image_size']} px generator "
        f"(the [pretrain] generator settings)[/]"
    )
    return Generator(GeneratorArgs(**args)), args


def _fixed_latents(out: Path, gmm, cfg: GANConfig) -> torch.Tensor:
    path = out / "fixed_latents.pt"
    if path.is_file():
        z = torch.load(path, map_location="cpu")
        if z.shape == (cfg.n_fixed, gmm.dim):
            return z
    z, _ = gmm.sample(cfg.n_fixed, torch.Generator().manual_seed(cfg.seed))
    if dev.is_main():
        save_checkpoint(path, z)
    return z


class GeneratorView(nn.Module):
    """G as the generator step calls it (and DDP wraps it): the pyramid (coarse -> fine) for multi-scale
    losses, else the final images. DDP only sees ``forward``, hence this view of ``forward_multiscale``."""

    def __init__(self, G: nn.Module, multiscale: bool):
        super().__init__()
        self.G, self.multiscale = G, multiscale

    def forward(self, z: torch.Tensor):
        return self.G.forward_multiscale(z) if self.multiscale else self.G(z)


def _critic(cfg: GANConfig, loss, scales: list[int], device) -> tuple[nn.Module, DiscriminatorArgs]:
    d_args = DiscriminatorArgs(
        image_size=scales[-1],
        kind="msg" if loss.multiscale else "dcgan",
        base_channels=cfg.d_channels,
        max_channels=cfg.d_max_channels,
        min_size=scales[0] if loss.multiscale else 4,
        downsample=cfg.d_downsample,
    )
    if loss.multiscale and scales != d_args.resolutions()[::-1]:
        raise UserError(
            f"the generator's scales {scales} are not consecutive powers of two",
            hint="use --loss wgan-gp (single scale) with this generator",
        )
    return build_discriminator(d_args).to(device), d_args


def _yardsticks(manifest, cfg: GANConfig, classifier, image_size: int, out: Path, device) -> dict:
    """What evaluations compare against (rank 0 only: the judge is trained once, its cache written once):
    the judge and its features of the reference sample, the step-1 classifier's statistics of it."""
    if not dev.is_main():
        return {"judge": None, "judge_ref": None, "real_stats": None}
    judge = load_or_train_judge(manifest, cfg.judge_config(), device)
    n, seed = cfg.metrics_samples, cfg.seed
    return {
        "judge": judge,
        "judge_ref": reference_features(judge, manifest, image_size=image_size, n=n, seed=seed),
        "real_stats": classifier_reference(
            manifest,
            classifier,
            image_size=image_size,
            n=n,
            seed=seed,
            batch_size=cfg.data.batch_size,
            device=device,
            folder=out,
        ),
    }


def build_state(run, cfg: GANConfig, scratch_args: dict | None = None, device=None) -> GANState:
    """Load prerequisites (GMM, step-2 G, classifier, manifest) and build models, loss, optimizers, EMA.

    ``scratch_args``: the generator arguments for ``from_scratch`` (see :func:`scratch_generator_args`).
    ``device``: the session's (else resolved and seeded here). Under torchrun G and D are wrapped in DDP
    (rank 0's weights on every rank) before the EMA copies G; the data is sharded.
    """
    if not run.is_done("gmm"):
        raise UserError(
            f"no fitted mixture in {run.step_dir('gmm')}", hint="run `poke train gmm --run RUN` first"
        )
    if device is None:
        device = dev.resolve_device(cfg.device)
        dev.setup_torch(device, cfg.seed)
    out = Path(run.step_dir("gan"))
    gmm = GaussianMixture.load(Path(run.step_dir("gmm")) / "gmm.pt")
    G, g_args = _build_generator(run, cfg, scratch_args)
    G = G.to(device)
    with torch.no_grad():
        pyramid = G.forward_multiscale(torch.zeros(2, gmm.dim, device=device))
    scales = [int(p.shape[-1]) for p in pyramid]
    loss = make_loss(cfg.loss)
    D, d_args = _critic(cfg, loss, scales, device)
    # the single-scale loss reads only G's last toRGB: DDP must not wait for the coarser ones' gradients
    G_train = dev.data_parallel(GeneratorView(G, loss.multiscale), device, find_unused=not loss.multiscale)
    D_train = dev.data_parallel(D, device)
    opt_g, opt_d = loss.make_optimizers(G.parameters(), D.parameters())
    manifest = load_manifest(run.manifest_dir, data_root=run.data_root or cfg.data.data_root or None)
    classifier = load_frozen_classifier(run, device)
    # real images: flips only (a crop the fakes never get would teach G to draw crops); DiffAugment,
    # when asked for, transforms real and fake alike inside the critic (pokegan.diffaugment)
    data = dataclasses.replace(cfg.data, image_size=scales[-1], crop_scale=1.0)
    # rank 0 draws the latents of a single process; every other rank its own stream
    latent_seed = cfg.seed + 2 + 7919 * dev.rank()
    return GANState(
        cfg=cfg,
        out=out,
        device=device,
        G=G,
        D=D,
        ema=EMA(G, cfg.ema_decay, ramp=cfg.from_scratch),  # from step 2: average from the trained start
        loss=loss,
        opt_g=opt_g,
        opt_d=opt_d,
        scaler_g=dev.make_grad_scaler(device, cfg.amp),
        gmm=gmm,
        fixed_latents=_fixed_latents(out, gmm, cfg),
        latent_gen=torch.Generator().manual_seed(latent_seed),
        scales=scales,
        g_args=dict(g_args),
        d_args=asdict(d_args),
        classifier=classifier,
        **_yardsticks(manifest, cfg, classifier, scales[-1], out, device),
        loader=loader_from_config(
            manifest, "train", data, train=True, device=device, augment=None if cfg.augment else False
        ),
        classes=list(manifest.classes),
        manifest_sha256=str(manifest.sha256),
        metrics=MetricsLog(out / "metrics.jsonl", enabled=dev.is_main()),
        G_train=G_train,
        D_train=D_train,
    )


# ---- checkpoints -----------------------------------------------------------------------------------
def state_dict(st: GANState) -> dict:
    return {
        "kind": CHECKPOINT_KIND,
        "model_args": {"generator": st.g_args, "discriminator": st.d_args},
        "generator": st.G.state_dict(),
        "discriminator": st.D.state_dict(),
        "ema": st.ema.state_dict(),
        "opt_g": st.opt_g.state_dict(),
        "opt_d": st.opt_d.state_dict(),
        "scaler_g": st.scaler_g.state_dict(),
        "step": st.step,
        "lr_scale": st.lr_scale,
        "nan_events": st.nan_events,
        "best_judge_fd": st.best_judge_fd,
        "best_step": st.best_step,
        "data_position": {"epoch": st.data_epoch, "batch": st.data_batch},
        "latent_rng": st.latent_gen.get_state(),
        **provenance(st.cfg, st.classes, st.manifest_sha256),
    }


def save_state(st: GANState, path: Path) -> None:
    """Save a checkpoint (rank 0: the replicas are equal; the others go on)."""
    save_on_main(path, lambda: state_dict(st))


def load_state(st: GANState, path: Path) -> None:
    """Restore models, EMA, optimizers, counters and RNG states from a GAN checkpoint (every rank)."""
    state = load_checkpoint(path)
    check_compatible(
        state, path, manifest_sha256=st.manifest_sha256, classes=st.classes, kind=CHECKPOINT_KIND
    )
    if state["model_args"]["discriminator"] != st.d_args:
        raise UserError(
            f"{path} was saved with another discriminator ({state['config'].get('loss')} loss)",
            hint="resume with the same --loss and critic options, or start a new run",
        )
    st.G.load_state_dict(state["generator"])
    st.D.load_state_dict(state["discriminator"])
    st.ema.load_state_dict(state["ema"])
    st.opt_g.load_state_dict(state["opt_g"])
    st.opt_d.load_state_dict(state["opt_d"])
    if state.get("scaler_g"):
        st.scaler_g.load_state_dict(state["scaler_g"])
    st.step = int(state["step"])
    st.lr_scale = float(state["lr_scale"])
    st.nan_events = int(state["nan_events"])
    st.best_judge_fd = float(state.get("best_judge_fd", math.inf))  # older checkpoints: chosen by FCD
    st.best_step = int(state["best_step"])
    pos = state.get("data_position", {"epoch": 0, "batch": 0})  # older checkpoints: from the start
    st.data_epoch, st.data_batch = int(pos["epoch"]), int(pos["batch"])
    set_rng_state(state["rng"])
    st.latent_gen.set_state(state["latent_rng"])
    if dev.rank() > 0:  # the checkpoint holds rank 0's streams: the other ranks draw their own again
        st.latent_gen.manual_seed(dev.rank_seed(st.cfg.seed + 2, st.step))
        dev.reseed_rank(st.cfg.seed, st.step)
    st.apply_lr()
    st.metrics.truncate(st.step)


def describe(cfg: GANConfig, run, scratch_args: dict | None = None) -> dict:
    """``--dry-run``: the resolved config and the sizes of G (from step 2, or ``--from-scratch``) and D."""
    info: dict[str, Any] = {"config": config_to_toml(cfg), "model": {}}
    try:
        g, g_args = _build_generator(run, cfg, scratch_args)
    except UserError as exc:
        info["config"] += f"\n# generator: {exc}\n"
        return info
    loss = make_loss(cfg.loss)
    size = int(g_args["image_size"])
    d = build_discriminator(
        DiscriminatorArgs(
            image_size=size,
            kind="msg" if loss.multiscale else "dcgan",
            base_channels=cfg.d_channels,
            max_channels=cfg.d_max_channels,
            downsample=cfg.d_downsample,
        )
    )
    info["model"] = {
        "generator": sum(p.numel() for p in g.parameters()),
        f"discriminator ({'msg' if loss.multiscale else 'dcgan'})": sum(p.numel() for p in d.parameters()),
    }
    return info
