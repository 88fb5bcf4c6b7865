"""Typer command groups of the training side; assembled into ``poke`` by the top-level ``cli.py``."""
