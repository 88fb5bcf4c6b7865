"""``poke sample`` and ``poke eval``: use a finished run directory."""

from __future__ import annotations

import typer

app = typer.Typer()
