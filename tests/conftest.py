"""Shared fixtures. The core suite makes its own tiny images; tests that read ../shared skip without it.

Test helpers live in the ``tests`` package and are imported from it (``from tests.helpers.images import
...``, ``from tests.servers.images import ...``); pytest puts the repository root on ``sys.path``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

pytest_plugins = ["tests.helpers.train_runs"]  # four_class_run: the session's shared trained run


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch intra-op thread while a module's tests run, restored afterwards: use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``. The model tests use tiny tensors, where a second
    thread gains nothing; on a shared 2-core machine it only spins against the first (measured under load:
    a [16, 3, 64, 64] uint8 -> float conversion took ~50 ms with 2 threads, 0.13 ms with 1)."""
    with torch_threads(1):
        yield


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repo root; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()
