"""Typer command groups of the data side; assembled into ``poke`` by the top-level ``cli.py``.

``cli.py`` imports every module here at start-up, so each command imports its stage (and the stage's heavy
libraries) inside the command function: that keeps ``poke --help`` fast (``tests/test_imports.py`` checks
that it loads no numpy, Pillow, pandas, torch or requests). Option defaults come from the config
dataclasses (:func:`pokedata.commands.options.default_of`), read from light modules.
"""
