"""Option definitions shared by the ``poke train`` commands (one place for their names and help)."""

from __future__ import annotations

import typer


def config_opt():
    return typer.Option(
        None,
        "--config",
        help=r"TOML file; one file can hold the sections \[data], \[classify], \[embed], \[pretrain], \[gmm], \[gan], \[progan].",
    )


def preset_opt():
    return typer.Option(
        None,
        "--preset",
        help="tiny (CPU smoke run, 32 px), small (CPU recipe: 32 px, a few thousand images, ~30 min on 2 cores) or default (one GPU, 128 px, ~80k images).",
    )


def run_opt():
    return typer.Option(
        ..., "--run", help="The run directory made by `poke train classify --out` (runs/NAME)."
    )


def resume_opt():
    return typer.Option(False, "--resume", help="Continue a started run/step from its last checkpoint.")


def dry_run_opt():
    return typer.Option(
        False, "--dry-run", help="Print the resolved config and the model sizes, train nothing."
    )


def device_opt():
    return typer.Option(
        None, "--device", help="auto (CUDA when available, the torchrun local rank), cpu, cuda or cuda:N."
    )


def seed_opt():
    return typer.Option(None, "--seed", help="Seed of the model initialisation and the data order.")


def epochs_opt():
    return typer.Option(None, "--epochs", help="Passes over the train split.")


def lr_opt():
    return typer.Option(
        None, "--lr", help="Peak learning rate (after the linear warm-up; cosine decay follows)."
    )


def batch_size_opt():
    return typer.Option(None, "--batch-size", help=r"Images per batch and process (\[data] batch_size).")


def image_size_opt():
    return typer.Option(
        None, "--image-size", help="Square image side in px, a power of two (32, 64, 128, 256)."
    )


def num_workers_opt():
    return typer.Option(
        None, "--num-workers", help="DataLoader processes decoding JPEGs (0 = in the main process)."
    )


def cache_opt():
    return typer.Option(
        None, "--cache/--no-cache", help="Read images from the packed uint8 cache (built on first use)."
    )


def compile_opt():
    return typer.Option(None, "--compile/--no-compile", help="torch.compile the model (CUDA only).")


def grad_accum_opt():
    return typer.Option(None, "--grad-accum", help="Micro-batches accumulated per optimizer step.")


def stop_after_opt():
    return typer.Option(
        None,
        "--stop-after-steps",
        help="Stop (checkpoint saved) after N optimizer steps; continue later with --resume.",
    )


def data_root_opt():
    return typer.Option(
        None,
        "--data-root",
        help="Dataset directory the manifest paths are relative to (default: stats.json).",
    )


def print_dry_run(info: dict) -> None:
    """The resolved config on stdout, then the model sizes."""
    from pokedata.log import out

    out.print(info["config"], markup=False, highlight=False)
    for key in ("task", "outputs", "train_images", "val_images"):
        if key in info:
            out.print(f"# {key}: {info[key]}", markup=False)
    for name, n in info.get("model", {}).items():
        out.print(f"# {name}: {n:,} parameters ({n * 4 / 2**20:.1f} MiB float32)", markup=False)


def parse_floats(value: str | None, flag: str) -> list[float] | None:
    """``"1,1,0.5,0"`` -> ``[1.0, 1.0, 0.5, 0.0]``; a clear error naming the flag otherwise."""
    from pokedata.errors import UserError

    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(
            f"{flag} {value!r} is not a comma-separated list of numbers", hint=f"e.g. {flag} 1,1,1,1"
        ) from None
