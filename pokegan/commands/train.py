"""``poke train``: the training steps (classify, embed, pretrain, gmm, gan), ``all``, and ``progan``.

Every step's options come from its config dataclass (``opt.config_options``), and every config module is
torch-free; the step modules (torch) are imported inside each command, not at the top: ``poke --help``
builds every command, and importing torch would take seconds.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pokegan.commands import options as opt
from pokegan.config import (  # torch-free: --help stays fast
    ClassifyConfig,
    EmbedConfig,
    PretrainConfig,
    config_to_toml,
    load_step_config,
)
from pokegan.progan.config import ProGANConfig
from pokegan.steps.gan_config import GANConfig
from pokegan.steps.gmm_config import GMMConfig

app = typer.Typer(
    help="Train: classify -> embed -> pretrain -> gmm -> gan (or all at once), and the progressive DCGAN.",
    no_args_is_help=True,
)


@app.command("progan")
@opt.config_options(
    ProGANConfig,
    "sizes",
    "cycle",
    "loss",
    "norm",
    "freeze",
    "fade_in",
    "skip_rgb",
    "conditional",
    "data.batch_size",
    "data.num_workers",
    "data.use_cache",
    "device",
    "seed",
)
def progan(
    run: Path | None = typer.Option(
        None, "--run", help="An existing run directory (runs/NAME): trains RUN/progan/."
    ),
    out: Path | None = typer.Option(None, "--out", help="A new run directory (needs --manifest)."),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="Manifest folder (manifests/NAME) for a new --out run."
    ),
    data_root: Path | None = opt.data_root_opt(),
    config: Path | None = opt.config_opt(),
    preset: str | None = opt.preset_opt(),
    resume: bool = opt.resume_opt(),
    dry_run: bool = opt.dry_run_opt(),
    overrides: dict | None = None,
) -> None:
    """Progressive DCGAN: train at each --sizes stage, grow G and D one block, copy and freeze, repeat."""
    from pokegan.progan.train import ProGANJob, train_progan

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
    cfg = load_step_config(EmbedConfig, "embed", config_file=config, preset=preset, overrides=overrides)
    if dry_run:
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
    "augment",
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
@opt.config_options(GMMConfig, "components", "bic", "covariance", "backend", "max_rows", "device", "seed")
def gmm(
    run: Path = opt.run_opt(),
    config: Path | None = opt.config_opt(),
    preset: str | None = opt.preset_opt(),
    resume: bool = opt.resume_opt(),
    dry_run: bool = opt.dry_run_opt(),
    overrides: dict | None = None,
) -> None:
    """Step 3a: fit a Gaussian mixture to the step-1 embeddings: RUN/gmm/ (gmm.pt, bic.json, pca.png)."""
    cfg = load_step_config(GMMConfig, "gmm", config_file=config, preset=preset, overrides=overrides)
    if dry_run:
        opt.print_dry_run({"config": config_to_toml(cfg)})
        return
    from pokegan.steps.gmm import run_gmm

    run_gmm(cfg, run, resume=resume)


@app.command("gan")
@opt.config_options(
    GANConfig,
    "loss",
    "steps",
    "n_critic",
    "gp_weight",
    "lr_g",
    "lr_d",
    "ema_decay",
    "sample_every",
    "metrics_every",
    "checkpoint_every",
    "from_scratch",
    "diffaugment",
    "data.batch_size",
    "data.num_workers",
    "device",
    "seed",
)
def gan(
    run: Path = opt.run_opt(),
    config: Path | None = opt.config_opt(),
    preset: str | None = opt.preset_opt(),
    resume: bool = opt.resume_opt(),
    dry_run: bool = opt.dry_run_opt(),
    overrides: dict | None = None,
) -> None:
    """Step 3b: GAN fine-tuning of the step-2 generator on GMM latents: RUN/gan/."""
    cfg = load_step_config(
        GANConfig, "gan", config_file=config, preset=preset, overrides=overrides, base=_run_base(run)
    )
    from pokegan.runs import open_run
    from pokegan.steps.gan import run_gan
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
        configs = resolve_configs(cfg.validate())
        opt.print_dry_run({"config": "\n".join(config_to_toml(c) for c in configs.values())})
        return
    run_all(cfg)
