"""The write audit both torchrun workers install (``sys.addaudithook``): which paths a rank writes, per step.

``write_audit(prefix_of, writes, current)`` returns the hook: every ``open`` for writing, ``mkdir``,
``rename``, ``replace`` and ``remove`` under ``prefix_of(current["step"])`` is appended, relative to that
prefix, to ``writes[current["step"]]``. The tests then assert that only rank 0 wrote.
"""

from __future__ import annotations

import os
from collections.abc import Callable

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def write_audit(
    prefix_of: Callable[[str], str | None], writes: dict[str, list[str]], current: dict[str, str]
) -> Callable[[str, tuple], None]:
    def audit(event: str, args) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS
            )
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove"):
            path, writing = args[0], True
        else:
            return
        prefix = prefix_of(current["step"])
        if writing and prefix and isinstance(path, (str, bytes, os.PathLike)):
            p = os.path.abspath(os.fsdecode(path))
            if p.startswith(prefix):
                writes.setdefault(current["step"], []).append(os.path.relpath(p, prefix))

    return audit
