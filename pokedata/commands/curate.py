"""``poke clean`` and ``poke build-manifest``: fetched files -> clean JPGs (deduplicated) -> a manifest."""

from __future__ import annotations

import typer

app = typer.Typer()
