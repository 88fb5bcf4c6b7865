"""``poke train``: the three training steps (classify, embed, pretrain, gmm, gan), ``all``, and ``progan``."""

from __future__ import annotations

from pathlib import Path

import typer

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
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Dataset directory the manifest paths are relative to."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with data, progan and progan.cycles sections."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="tiny (CPU smoke run, 8->16->32 px) or default (one GPU)."
    ),
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
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Images per batch (the [data] section)."
    ),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the models, latents and data order."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run from progan/last.pt (mid-stage)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved config and the stages, train nothing."
    ),
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
        "device": device,
        "seed": seed,
        "data.batch_size": batch_size,
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
