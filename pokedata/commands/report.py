"""``poke report``: a static HTML browser of a dataset, its manifest and a training run."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer()


@app.command("report")
def report(
    data: Path = typer.Option(Path("data"), "--data", help="Dataset directory to report on."),
    manifest: Path | None = typer.Option(
        None,
        "--manifest",
        help="Manifest folder (manifests/NAME) for split counts and figures; default: the run's.",
    ),
    run: Path | None = typer.Option(
        None, "--run", help="Run directory (runs/NAME): steps, curves, grids over time."
    ),
    out: Path = typer.Option(
        Path("report"), "--out", help="Folder for the report (opens from disk, no server)."
    ),
    page_size: int = typer.Option(400, "--page-size", help="Thumbnails per page."),
    thumb: int = typer.Option(64, "--thumb", help="Thumbnail side in pixels."),
    image_format: str = typer.Option("webp", "--format", help="Sprite sheet format: webp or jpeg."),
    workers: int = typer.Option(2, "--workers", help="Processes drawing sprite sheets."),
    force: bool = typer.Option(False, "--force", help="Redraw everything, not only what changed."),
) -> None:
    """Write a static HTML report: overview, classes, class pages with thumbnails, duplicate groups,
    conflicts, quarantine and (with --run) the training run. Reruns update only what changed."""
    from pokedata.log import out as console
    from pokedata.report import ReportConfig, build_report

    summary = build_report(
        ReportConfig(
            data=data, out=out, manifest=manifest, run=run, page_size=page_size, thumb=thumb,
            image_format=image_format, workers=workers, force=force,
        )
    )  # fmt: skip
    console.print(summary.table())
    console.print(f"open {summary.index}", highlight=False, soft_wrap=True)
