"""``poke fetch``: get images from Danbooru (live API or Danbooru20xx dumps), DuckDuckGo, or a local folder.

Every source plans rows into the dataset's ledger and stores files under ``DIR/raw/<class>/``; rerunning
the same command resumes where it stopped.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Get images from Danbooru (API or dumps), DuckDuckGo image search, or a local folder.",
    no_args_is_help=True,
)
