"""``poke status``: what the ledger of a dataset directory holds."""

from __future__ import annotations

import typer

app = typer.Typer()
