"""``poke fetch``: get images from Danbooru (live API or Danbooru20xx dumps), DuckDuckGo, or a local folder.

Every source plans rows into the dataset's ledger and stores files under ``DIR/raw/<class>/``; rerunning
the same command resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Get images from Danbooru (API or dumps), DuckDuckGo image search, or a local folder.",
    no_args_is_help=True,
)


@app.command("folder")
def fetch_folder(
    path: Path = typer.Argument(
        ..., help="Image folder to import (e.g. the Kaggle set: one PNG per species)."
    ),
    class_from: str = typer.Option(
        "dirname",
        "--class-from",
        help="Where the class comes from: dirname (first sub-folder), filename (file stem), or catalog "
        "(folder or file name matched against the catalog; unmatched files are skipped).",
    ),
    catalog: Path | None = typer.Option(
        None,
        "--catalog",
        help="Catalog CSV to match names against (default: the shipped one with --class-from catalog).",
        dir_okay=False,
    ),
    link: bool = typer.Option(False, "--link", help="Hard-link files instead of copying them."),
    limit: int | None = typer.Option(None, "--limit", help="Import at most N files this run."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Also retry files that failed before."),
    data: Path = typer.Option(Path("data"), "--data", help="Dataset directory (created if missing)."),
) -> None:
    """Import an existing image folder into the dataset store (copies or hard-links; rerun adds nothing)."""
    from pokedata.fetch.folder import FolderImportConfig, import_folder
    from pokedata.log import console

    cfg = FolderImportConfig(
        root=path,
        data=data,
        class_from=class_from,
        catalog=catalog,
        link=link,
        limit=limit,
        retry_failed=retry_failed,
    )
    console.print(import_folder(cfg).table())
