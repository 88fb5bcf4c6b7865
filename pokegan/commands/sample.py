"""``poke sample`` and ``poke eval``: use a finished run directory.

The library modules are imported inside each command, not at the top: ``poke --help`` builds every
command, and importing torch for it would take seconds.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer()


@app.command("sample")
def sample(
    run: Path = typer.Option(
        ...,
        "--run",
        help="Run directory (runs/NAME) with gmm/ and gan/ checkpoints (or progan/, with --step progan).",
    ),
    n: int = typer.Option(64, "--n", help="How many images to generate."),
    grid: Path | None = typer.Option(
        None,
        "--grid",
        help="Write a sample grid PNG here (default RUN/samples/grid-seedS.png when --out is not given).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write every image as an individual PNG into this folder."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the GMM latents (same seed, same images)."),
    interpolate: int = typer.Option(
        0,
        "--interpolate",
        help="Also write a looping latent-interpolation GIF through K keyframes (0: none).",
    ),
    frames: int = typer.Option(12, "--frames", help="Frames between two keyframes of the interpolation GIF."),
    checkpoint: str | None = typer.Option(
        None,
        "--checkpoint",
        help="Which checkpoint. gan: best (default: by the judge FD, step 0 included; else final), final or"
        " last. progan: final (default; else last), last or stage_<S>px.",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    step: str = typer.Option(
        "gan", "--step", help="gan (step 3, GMM latents) or progan (the progressive DCGAN of RUN/progan)."
    ),
    classes: list[str] = typer.Option(
        [],
        "--class",
        help="progan --conditional runs: draw --n images of this class (repeat for more; a grid row each).",
    ),
) -> None:
    """Generate images from GMM latents through the EMA generator (or, with --step progan, from the
    progressive DCGAN, by class when it is conditional); works from the run directory alone."""
    from pokedata.errors import UserError

    if step not in ("gan", "progan"):
        raise UserError(f"--step {step!r} is not gan or progan", hint="e.g. --step progan")
    if step == "progan":
        if interpolate:
            raise UserError("--interpolate is for --step gan", hint="drop it with --step progan")
        from pokegan.progan.sampling import ProGANSampleConfig, sample_progan

        sample_progan(
            ProGANSampleConfig(
                run=run,
                n=n,
                classes=list(classes),
                grid=grid,
                out=out,
                seed=seed,
                checkpoint=checkpoint or "final",
                device=device,
            )
        )
        return
    if classes:
        raise UserError(
            "--class is for --step progan (a conditional progressive DCGAN)",
            hint="add --step progan, or drop --class",
        )
    from pokegan.sampling import SampleConfig, run_sample

    run_sample(
        SampleConfig(
            run=run,
            n=n,
            grid=grid,
            out=out,
            seed=seed,
            interpolate=interpolate,
            frames_between=frames,
            checkpoint=checkpoint or "best",
            device=device,
        )
    )


@app.command("eval")
def evaluate(
    run: Path = typer.Option(
        ..., "--run", help="Run directory (runs/NAME) with a trained step 3 (or progan, with --step progan)."
    ),
    n_samples: int = typer.Option(
        2000, "--n-samples", help="Generated (and at most as many real) images per metric."
    ),
    inception_weights: Path | None = typer.Option(
        None,
        "--inception-weights",
        help="Local Inception-v3 weights (torch-fidelity pt_inception-2015-12-05) for standard FID/KID; never downloaded.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated latents."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    step: str = typer.Option(
        "gan",
        "--step",
        help="gan (step 3's final and best checkpoints) or progan (every stage checkpoint of RUN/progan).",
    ),
) -> None:
    """Print and save (RUN/gan/eval.json) the judge's FD/KID/precision/recall, FCD/FCK, and FID/KID with --inception-weights."""
    import json

    from rich.table import Table

    from pokedata.errors import UserError
    from pokedata.log import out
    from pokegan.evaluate import EvalConfig, evaluate_run

    if step not in ("gan", "progan"):
        raise UserError(f"--step {step!r} is not gan or progan", hint="e.g. --step progan")
    if step == "progan":
        if inception_weights is not None:
            raise UserError("--inception-weights is for --step gan", hint="drop it with --step progan")
        from pokegan.progan.evaluate import ProGANEvalConfig, evaluate_progan

        results = evaluate_progan(ProGANEvalConfig(run=run, n_samples=n_samples, seed=seed, device=device))
        if json_out:
            out.print_json(json.dumps(results))
            return
        table = Table(title=f"{run}: progan figures (the judge; lower FD/KID, higher precision/recall)")
        keys = ("size", "step", "judge_fd", "judge_kid_mean", "judge_precision", "judge_recall")
        for col in ("checkpoint", *keys):
            table.add_column(col, justify="right")
        for name, m in results.items():
            table.add_row(name, *(f"{m[k]:.4g}" if isinstance(m[k], float) else str(m[k]) for k in keys))
        out.print(table)
        return
    results = evaluate_run(
        EvalConfig(
            run=run, n_samples=n_samples, inception_weights=inception_weights, seed=seed, device=device
        )
    )
    if json_out:
        out.print_json(json.dumps(results))
        return
    rows = (  # (key, network, better): one row per figure, one column per checkpoint
        ("step", "", ""),
        ("judge_fd", "judge", "lower"),
        ("judge_kid_mean", "judge", "lower"),
        ("judge_kid_std", "judge", ""),
        ("judge_precision", "judge", "higher"),
        ("judge_recall", "judge", "higher"),
        ("fcd", "step-1 classifier", "lower"),
        ("fck", "step-1 classifier", "lower"),
        ("fck_std", "step-1 classifier", ""),
        ("fid", "Inception-v3", "lower"),
        ("kid", "Inception-v3", "lower"),
        ("kid_std", "Inception-v3", ""),
    )
    table = Table(title=f"{run}: step-3 figures (docs/training.md says what each means)")
    for name in ("figure", "network", "better"):
        table.add_column(name)
    for which in results:
        table.add_column(which, justify="right")
    for key, network, better in rows:
        if any(key in m for m in results.values()):
            cells = [m.get(key) for m in results.values()]
            table.add_row(
                key,
                network,
                better,
                *(f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v)) for v in cells),
            )
    out.print(table)
