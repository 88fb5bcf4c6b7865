"""``poke train``: the three training steps (classify, embed, pretrain, gmm, gan), ``all``, and ``progan``.

The library modules are imported inside each command, not at the top: ``poke --help`` builds every
command, and importing torch (every step's module does) would take seconds.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pokegan.commands import options as _opt
from pokegan.config import (  # torch-free: --help stays fast
    ClassifyConfig,
    EmbedConfig,
    PretrainConfig,
    parse_numbers,
)

app = typer.Typer(
    help="Train: classify -> embed -> pretrain -> gmm -> gan (or all at once), and the progressive DCGAN.",
    no_args_is_help=True,
)


@app.command("progan")
def progan(
    run: Path | None = typer.Option(
        None, "--run", help="An existing run directory (runs/NAME): trains RUN/progan/."
    ),
    out: Path | None = typer.Option(None, "--out", help="A new run directory (needs --manifest)."),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="Manifest folder (manifests/NAME) for a new --out run."
    ),
    data_root: Path | None = _opt.data_root_opt(),
    config: Path | None = _opt.config_opt(),
    preset: str | None = _opt.preset_opt(),
    sizes: str | None = typer.Option(
        None, "--sizes", help="Stage sizes, powers of two, increasing: e.g. 16,32,64."
    ),
    cycle: str | None = typer.Option(
        None, "--cycle", help="Every stage's cycle as LR:EPOCHS pairs, e.g. 2e-4:4,5e-5:2."
    ),
    loss: str | None = typer.Option(
        None, "--loss", help="dcgan (default), wgan-gp or wgan: step 3's loss objects."
    ),
    norm: str | None = typer.Option(
        None, "--norm", help="Generator norm: batch (default), instance or none."
    ),
    freeze: bool | None = typer.Option(
        None, "--freeze/--no-freeze", help="Freeze layers learned at smaller sizes (default on)."
    ),
    fade_in: bool | None = typer.Option(
        None,
        "--fade-in/--no-fade-in",
        help="Fade new blocks in with alpha 0->1 (ProGAN) instead of switching hard.",
    ),
    skip_rgb: bool | None = typer.Option(
        None,
        "--skip-rgb/--no-skip-rgb",
        help="Grow with StyleGAN2 skip outputs: G sums every stage's toRGB, a new one starting at zero "
        "(instead of --fade-in).",
    ),
    batch_size: int | None = _opt.batch_size_opt(),
    num_workers: int | None = _opt.num_workers_opt(),
    cache: bool | None = _opt.cache_opt(),
    device: str | None = _opt.device_opt(),
    seed: int | None = _opt.seed_opt(),
    resume: bool = _opt.resume_opt(),
    dry_run: bool = _opt.dry_run_opt(),
) -> None:
    """Progressive DCGAN: train at each --sizes stage, grow G and D one block, copy and freeze, repeat."""
    from pokegan.progan.config import parse_cycle_option, parse_sizes_option
    from pokegan.progan.train import ProGANJob, train_progan

    overrides = {
        "sizes": parse_sizes_option(sizes) if sizes else None,
        "cycle": parse_cycle_option(cycle) if cycle else None,
        "loss": loss,
        "norm": norm,
        "freeze": freeze,
        "fade_in": fade_in,
        "skip_rgb": skip_rgb,
        "device": device,
        "seed": seed,
        "data.batch_size": batch_size,
        "data.num_workers": num_workers,
        "data.use_cache": cache,
    }
    train_progan(
        ProGANJob(
            run=run,
            out=out,
            manifest=manifest,
            data_root=data_root,
            config_file=config,
            preset=preset,
            overrides=overrides,
            resume=resume,
            dry_run=dry_run,
        )
    )


# ---- steps 1 and 2: classify, embed, pretrain --------------------------------------------------------------
from pokegan.commands import options as opt  # noqa: E402


@app.command("classify")
@opt.config_options(
    ClassifyConfig,
    "task",
    "epochs",
    "lr",
    "optimizer",
    "label_smoothing",
    "data.balanced",
    "data.batch_size",
    "data.image_size",
    "data.max_images",
    "grad_accum",
    "data.num_workers",
    "data.use_cache",
    "init_weights",
    "compile",
    "stop_after_steps",
    "device",
    "seed",
)
def classify(
    manifest: Path = typer.Option(
        ..., "--manifest", help="Manifest folder written by `poke build-manifest` (manifests/NAME)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="A new run directory (runs/NAME); an existing one needs --resume."
    ),
    data_root: Path | None = opt.data_root_opt(),
    config: Path | None = opt.config_opt(),
    preset: str | None = opt.preset_opt(),
    resume: bool = opt.resume_opt(),
    dry_run: bool = opt.dry_run_opt(),
    overrides: dict | None = None,
) -> None:
    """Step 1: train the ResNet-34 embedding classifier into RUN/classifier/."""
    from pokegan.config import load_step_config

    overrides = {**overrides, "data.data_root": str(data_root) if data_root else None}
    cfg = load_step_config(ClassifyConfig, "classify", config_file=config, preset=preset, overrides=overrides)
    if dry_run:
        from pokegan.steps.classify import describe

        opt.print_dry_run(describe(cfg, manifest))
        return
    from pokegan.steps.classify import new_run, run_classify

    run_classify(cfg, new_run(cfg, manifest, out, resume=resume), resume=resume)


def _run_base(run: Path) -> dict:
    from pokegan.runs import open_run
    from pokegan.steps.embed import data_section

    return {"data": data_section(open_run(run, resume=True, create=False))}


@app.command("embed")
@opt.config_options(EmbedConfig, "batch_size", "dtype", "num_workers", "device")
def embed(
    run: Path = opt.run_opt(),
    config: Path | None = opt.config_opt(),
    preset: str | None = opt.preset_opt(),
    resume: bool = typer.Option(False, "--resume", help="Redo an interrupted embed step (it starts over)."),
    dry_run: bool = opt.dry_run_opt(),
    overrides: dict | None = None,
) -> None:
    """Encode every manifest image to 512-d with the frozen classifier: RUN/embeddings/."""
    from pokegan.config import load_step_config

    cfg = load_step_config(EmbedConfig, "embed", config_file=config, preset=preset, overrides=overrides)
    if dry_run:
        from pokegan.config import config_to_toml

        opt.print_dry_run({"config": config_to_toml(cfg), "model": {}})
        return
    from pokegan.steps.embed import run_embed

    run_embed(cfg, run, resume=resume)


@app.command("pretrain")
@opt.config_options(
    PretrainConfig,
    "epochs",
    "lr",
    "layer_weights",
    "pixel_l1",
    "data.batch_size",
    "grad_accum",
    "data.num_workers",
    "data.use_cache",
    "compile",
    "stop_after_steps",
    "device",
    "seed",
)
def pretrain(
    run: Path = opt.run_opt(),
    config: Path | None = opt.config_opt(),
    preset: str | None = opt.preset_opt(),
    resume: bool = opt.resume_opt(),
    dry_run: bool = opt.dry_run_opt(),
    overrides: dict | None = None,
) -> None:
    """Step 2: pretrain the generator to reconstruct images from their embeddings: RUN/pretrain/."""
    from pokegan.config import load_step_config

    cfg = load_step_config(
        PretrainConfig,
        "pretrain",
        config_file=config,
        preset=preset,
        overrides=overrides,
        base=_run_base(run),
    )
    if dry_run:
        from pokegan.steps.pretrain import describe

        opt.print_dry_run(describe(cfg))
        return
    from pokegan.steps.pretrain import run_pretrain

    run_pretrain(cfg, run, resume=resume)


# ---- step 3: gmm, gan; and the whole pipeline --------------------------------------------------------------
@app.command("gmm")
def gmm(
    run: Path = opt.run_opt(),
    config: Path | None = opt.config_opt(),
    preset: str | None = opt.preset_opt(),
    components: int | None = typer.Option(None, "--components", help="Mixture components (without --bic)."),
    bic: str | None = typer.Option(
        None, "--bic", help="Candidate component counts, e.g. 8,16,32: the lowest BIC is kept."
    ),
    covariance: str | None = typer.Option(None, "--covariance", help="full (default) or diag."),
    backend: str | None = typer.Option(
        None, "--backend", help="torch (EM on the GPU when available; default) or sklearn (CPU reference)."
    ),
    max_rows: int | None = typer.Option(
        None, "--max-rows", help="Fit on a seeded random subset of N embeddings (0 = all)."
    ),
    device: str | None = opt.device_opt(),
    seed: int | None = opt.seed_opt(),
    resume: bool = opt.resume_opt(),
    dry_run: bool = opt.dry_run_opt(),
) -> None:
    """Step 3a: fit a Gaussian mixture to the step-1 embeddings: RUN/gmm/ (gmm.pt, bic.json, pca.png)."""
    from pokegan.config import config_to_toml, load_step_config
    from pokegan.steps.gmm import GMMConfig, run_gmm

    overrides = {
        "components": components,
        "bic": parse_numbers(bic, "--bic", int) if bic else None,
        "covariance": covariance,
        "backend": backend,
        "max_rows": max_rows,
        "device": device,
        "seed": seed,
    }
    cfg = load_step_config(GMMConfig, "gmm", config_file=config, preset=preset, overrides=overrides)
    if dry_run:
        opt.print_dry_run({"config": config_to_toml(cfg)})
        return
    run_gmm(cfg, run, resume=resume)


@app.command("gan")
def gan(
    run: Path = opt.run_opt(),
    config: Path | None = opt.config_opt(),
    preset: str | None = opt.preset_opt(),
    loss: str | None = typer.Option(None, "--loss", help="wgan-gp-msg (default), wgan-gp, wgan or dcgan."),
    steps: int | None = typer.Option(None, "--steps", help="Generator steps to train."),
    n_critic: int | None = typer.Option(
        None, "--n-critic", help="Critic steps per generator step (0 = the loss's default)."
    ),
    gp_weight: float | None = typer.Option(None, "--gp-weight", help="Gradient-penalty weight (WGAN-GP)."),
    lr_g: float | None = typer.Option(None, "--lr-g", help="Generator learning rate."),
    lr_d: float | None = typer.Option(None, "--lr-d", help="Discriminator learning rate."),
    ema_decay: float | None = typer.Option(None, "--ema-decay", help="EMA decay of the generator weights."),
    sample_every: int | None = typer.Option(None, "--sample-every", help="Steps between sample grids."),
    metrics_every: int | None = typer.Option(
        None, "--metrics-every", help="Steps between evaluations (judge FD/KID/precision/recall, FCD)."
    ),
    checkpoint_every: int | None = typer.Option(
        None, "--checkpoint-every", help="Steps between last.pt saves."
    ),
    from_scratch: bool | None = typer.Option(
        None, "--from-scratch/--from-pretrain", help="Allow a random generator when step 2 has not run."
    ),
    diffaugment: str | None = typer.Option(
        None,
        "--diffaugment",
        help="DiffAugment policy applied to real and fake alike, e.g. color,translation,cutout (default: none; real images are only flipped).",
    ),
    batch_size: int | None = opt.batch_size_opt(),
    num_workers: int | None = opt.num_workers_opt(),
    device: str | None = opt.device_opt(),
    seed: int | None = opt.seed_opt(),
    resume: bool = opt.resume_opt(),
    dry_run: bool = opt.dry_run_opt(),
) -> None:
    """Step 3b: GAN fine-tuning of the step-2 generator on GMM latents: RUN/gan/."""
    from pokegan.config import load_step_config
    from pokegan.runs import open_run
    from pokegan.steps.gan import GANConfig, run_gan

    overrides = {
        "loss": loss,
        "steps": steps,
        "n_critic": n_critic,
        "gp_weight": gp_weight,
        "lr_g": lr_g,
        "lr_d": lr_d,
        "ema_decay": ema_decay,
        "sample_every": sample_every,
        "metrics_every": metrics_every,
        "checkpoint_every": checkpoint_every,
        "from_scratch": from_scratch,
        "diffaugment": diffaugment,
        "device": device,
        "seed": seed,
        "data.batch_size": batch_size,
        "data.num_workers": num_workers,
    }
    cfg = load_step_config(
        GANConfig, "gan", config_file=config, preset=preset, overrides=overrides, base=_run_base(run)
    )
    from pokegan.config import PretrainConfig
    from pokegan.steps.gan_setup import describe, scratch_generator_args

    # --from-scratch builds the generator step 2 would: the same [pretrain] settings of this preset/config
    pretrain = load_step_config(
        PretrainConfig, "pretrain", config_file=config, preset=preset, base=_run_base(run)
    )
    the_run = open_run(run, resume=True, create=False)
    scratch = scratch_generator_args(the_run, pretrain)
    if dry_run:
        opt.print_dry_run(describe(cfg, the_run, scratch))
        return
    run_gan(cfg, run, resume=resume, scratch_args=scratch)


@app.command("all")
def train_all(
    manifest: Path = typer.Option(
        ..., "--manifest", help="Manifest folder written by `poke build-manifest` (manifests/NAME)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="A new run directory (runs/NAME); an existing one needs --resume."
    ),
    preset: str | None = opt.preset_opt(),
    config: Path | None = opt.config_opt(),
    resume: bool = typer.Option(
        False, "--resume", help="Skip finished steps (done.json) and continue the interrupted one."
    ),
    data_root: Path | None = opt.data_root_opt(),
    loss: str | None = typer.Option(
        None, "--loss", help="Step-3 loss: wgan-gp-msg (default), wgan-gp, wgan, dcgan."
    ),
    device: str | None = opt.device_opt(),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print every step's resolved config (all validated), train nothing."
    ),
) -> None:
    """Run classify -> embed -> pretrain -> gmm -> gan; finished steps are skipped; prints a summary."""
    from pokegan.pipeline import PipelineConfig, resolve_configs, run_all

    cfg = PipelineConfig(
        manifest=manifest,
        out=out,
        preset=preset,
        config_file=config,
        resume=resume,
        data_root=data_root,
        device=device,
        overrides={"gan": {"loss": loss}} if loss else {},
    )
    if dry_run:
        from pokegan.config import config_to_toml

        configs = resolve_configs(cfg.validate())
        opt.print_dry_run({"config": "\n".join(config_to_toml(c) for c in configs.values())})
        return
    run_all(cfg)
