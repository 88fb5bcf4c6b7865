"""``poke demo``: the whole pipeline offline on a synthetic sprite set (see pokedata/demo.py)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer()


@app.command("demo")
def demo(
    out: Path = typer.Option(
        Path("runs/demo"),
        "--out",
        help="Folder for everything the demo makes (sprites, dataset, manifest, run).",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted demo in --out (every stage picks up where it stopped).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sprite set, the splits and the training."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Fewer classes and images and shorter training: about a minute on a laptop CPU.",
    ),
) -> None:
    """Run the whole pipeline offline on a synthetic sprite set: fetch folder -> clean --dedup ->
    build-manifest -> train all --preset tiny -> sample, printing each stage's figures."""
    from pokedata.demo import DemoConfig, run_demo

    summary = run_demo(DemoConfig(out=out, resume=resume, seed=seed, quick=quick))
    if not summary.complete:
        raise typer.Exit(code=1)
