"""``poke clean`` and ``poke build-manifest``: fetched files -> clean JPGs (deduplicated) -> a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from pokedata.clean.config import CleanConfig
from pokedata.commands.options import default_of
from pokedata.dedup.config import DedupConfig
from pokedata.manifest import ManifestConfig

app = typer.Typer()


@app.command("clean")
def clean(
    data: Path = typer.Option(Path("data"), "--data", help="Dataset directory (made by `poke fetch`)."),
    dedup: bool = typer.Option(
        False, "--dedup", help="After cleaning, mark exact and near duplicates and label conflicts."
    ),
    background: str = typer.Option(
        default_of(CleanConfig, "background"),
        "--background",
        help="Colour transparency is composited onto: white, black, gray or #RRGGBB.",
    ),
    min_side: int = typer.Option(
        default_of(CleanConfig, "min_side"),
        "--min-side",
        help="Quarantine images whose shorter side is below N px.",
    ),
    max_side: int = typer.Option(
        default_of(CleanConfig, "max_side"),
        "--max-side",
        help="Downscale so the longer side is at most N px.",
    ),
    max_aspect: float = typer.Option(
        default_of(CleanConfig, "max_aspect"),
        "--max-aspect",
        help="Quarantine images more elongated than N:1 (long side / short side).",
    ),
    frames: str = typer.Option(
        default_of(CleanConfig, "frames"),
        "--frames",
        help="Frames of animated GIF/WebP/APNG to keep: first, all, or every:N (frames 0, N, 2N, ...).",
    ),
    quality: int = typer.Option(
        default_of(CleanConfig, "quality"), "--quality", help="JPEG quality of the clean files (1-100)."
    ),
    workers: int = typer.Option(
        default_of(CleanConfig, "workers"), "--workers", help="Worker processes (0: one per CPU core)."
    ),
    force: bool = typer.Option(
        default_of(CleanConfig, "force"), "--force", help="Redo every image, even those already up to date."
    ),
    include_multiclass: bool = typer.Option(
        default_of(CleanConfig, "include_multiclass"),
        "--include-multiclass",
        help="Also clean rows labelled with several classes (under _unlabelled/).",
    ),
    max_pixels: int | None = typer.Option(
        default_of(CleanConfig, "max_pixels"),
        "--max-pixels",
        help="Decompression-bomb limit in pixels (default: Pillow's, about 89 MP).",
    ),
    method: str = typer.Option(
        default_of(DedupConfig, "method"),
        "--hash",
        help="Perceptual hash for --dedup: phash, dhash, whash, ahash.",
    ),
    threshold: int | None = typer.Option(
        default_of(DedupConfig, "threshold"),
        "--threshold",
        help="Near-duplicate distance in Hamming bits (default: the hash's measured default).",
    ),
    conflict_threshold: int | None = typer.Option(
        default_of(DedupConfig, "conflict_threshold"),
        "--conflict-threshold",
        help="Bits for a match across classes (a label conflict); at most --threshold (default: stricter).",
    ),
    conflicts: str = typer.Option(
        default_of(DedupConfig, "conflicts"),
        "--conflicts",
        help="A near-identical pair under two classes: drop (both sides and their near copies), "
        "keep-first (only the side the survivor policy ranks lower), report (mark nothing).",
    ),
    colour_tolerance: int | None = typer.Option(
        default_of(DedupConfig, "colour_tolerance"),
        "--colour-tolerance",
        help="Near duplicates must also match in colour: largest colour-signature distance (0-2040; "
        "default: measured, keeps palette swaps and shiny recolours apart).",
    ),
    ignore_colour: bool = typer.Option(
        False, "--ignore-colour", help="Judge near duplicates by the perceptual hash alone (recolours fold)."
    ),
    reset_dedup: bool = typer.Option(
        False,
        "--reset-dedup",
        help="Clear every dedup mark (nothing is deleted) and stop; with --dedup, redo.",
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars (e.g. for logs)."),
) -> None:
    """Flatten every fetched image onto a background and save JPGs under DIR/clean/<class>/ (resumable)."""
    from pokedata.clean import run_clean
    from pokedata.log import console

    cfg = CleanConfig(
        data=data,
        background=background,
        min_side=min_side,
        max_side=max_side,
        max_aspect=max_aspect,
        frames=frames,
        quality=quality,
        workers=workers,
        force=force,
        include_multiclass=include_multiclass,
        max_pixels=max_pixels,
        progress=not no_progress,
    )
    cfg.settings()  # validate every clean option before touching anything
    dedup_cfg = None
    if dedup or reset_dedup:
        dedup_cfg = DedupConfig(
            data=data,
            method=method,
            threshold=threshold,
            conflict_threshold=conflict_threshold,
            conflicts=conflicts,
            colour=not ignore_colour,
            colour_tolerance=colour_tolerance,
            workers=workers,
            progress=not no_progress,
        ).validated()
        if dedup:  # hashed from the pixels the clean workers decode anyway: dedup finds them cached
            cfg.hashes = dedup_cfg.cached_methods()
    from pokedata.store import DatasetDir

    with DatasetDir.at(data).require().writer_lock("clean"):  # clean and dedup: one writer at a time
        if reset_dedup:
            from pokedata.dedup import reset_dedup as reset

            n = reset(data)
            console.print(f"cleared the dedup marks of {n:,} images")
            if not dedup:
                return
        from pokedata.removals import print_warnings

        summary = run_clean(cfg)
        console.print(summary.table())
        warnings = summary.warnings
        if dedup_cfg is not None and dedup:
            from pokedata.dedup import run_dedup

            dedup_summary = run_dedup(dedup_cfg)
            console.print(dedup_summary.table())
            warnings = warnings + dedup_summary.warnings
    print_warnings(warnings)  # last, so they are what a user sees when the command ends


@app.command("build-manifest")
def build_manifest(
    data: Path = typer.Option(Path("data"), "--data", help="Dataset directory (cleaned by `poke clean`)."),
    catalog: Path | None = typer.Option(
        default_of(ManifestConfig, "catalog"),
        "--catalog",
        help="Catalog CSV giving the classes and their indices (default: the shipped 799).",
        dir_okay=False,
    ),  # fmt: skip
    name: str | None = typer.Option(
        default_of(ManifestConfig, "name"),
        "--name",
        help="Manifest name (default: the dataset folder's name).",
    ),
    out: Path = typer.Option(
        default_of(ManifestConfig, "out"), "--out", help="Folder the manifest folder NAME goes into."
    ),
    val: float = typer.Option(
        default_of(ManifestConfig, "val"),
        "--val",
        help="Fraction of images (by duplicate group) in the val split.",
    ),
    test: float = typer.Option(
        default_of(ManifestConfig, "test"),
        "--test",
        help="Fraction of images (by duplicate group) in the test split.",
    ),
    min_per_class: int = typer.Option(
        default_of(ManifestConfig, "min_per_class"),
        "--min-per-class",
        help="Leave out classes with fewer kept images than this.",
    ),
    seed: int = typer.Option(
        default_of(ManifestConfig, "seed"), "--seed", help="Seed of the split hash (same seed, same splits)."
    ),
    include_multiclass: bool = typer.Option(
        default_of(ManifestConfig, "include_multiclass"),
        "--include-multiclass",
        help="Include images labelled with several classes, once per class.",
    ),
    allow_drop: bool = typer.Option(
        default_of(ManifestConfig, "allow_drop"),
        "--allow-drop",
        help="Leave out missing files and unknown classes, and allow dropping over half of the images.",
    ),
) -> None:
    """Write manifests/NAME/: manifest.parquet + .csv, classes.json, stats.json and a class-count chart."""
    from pokedata.log import console
    from pokedata.manifest import build_manifest as build

    summary = build(
        ManifestConfig(
            data=data,
            catalog=catalog,
            name=name,
            out=out,
            val=val,
            test=test,
            min_per_class=min_per_class,
            seed=seed,
            include_multiclass=include_multiclass,
            allow_drop=allow_drop,
        )
    )
    console.print(summary.table())
