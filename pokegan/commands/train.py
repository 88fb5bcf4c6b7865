"""``poke train``: the three training steps (classify, embed, pretrain, gmm, gan), ``all``, and ``progan``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Train: classify -> embed -> pretrain -> gmm -> gan (or all at once), and the progressive DCGAN.",
    no_args_is_help=True,
)
