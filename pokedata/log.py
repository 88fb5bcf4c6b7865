"""Logging and console output: one rich console on stderr, ``logging`` through a rich handler."""

from __future__ import annotations

import logging

from rich.console import Console

console = Console(stderr=True)
"""Progress bars, tables and messages for people go here (stderr: stdout stays for data, e.g. --json)."""

out = Console()
"""Machine-readable or primary output (tables a user asked for, JSON)."""


def setup_logging(verbose: bool = False) -> None:
    """Route ``logging`` through rich; INFO by default, DEBUG with ``--verbose``."""
    # here, not above: `poke --help` imports this module
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    root.handlers[:] = [RichHandler(console=console, show_path=verbose, rich_tracebacks=True, markup=False)]
    root.setLevel(level)
    for noisy in ("urllib3", "PIL", "matplotlib", "httpx", "primp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
