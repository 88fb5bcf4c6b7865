"""Typer command groups of the data side; assembled into ``poke`` by the top-level ``cli.py``."""
