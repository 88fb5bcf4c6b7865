"""Packages whose public names load on first use (PEP 562): ``pokedata.clean`` and ``pokedata.dedup``.

Their stage modules import numpy and Pillow; the CLI reads the option defaults from their light ``config``
modules at start-up, and importing a submodule imports its package first, so the package itself must not
import the stages.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``exports`` (name -> the submodule defining it)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
