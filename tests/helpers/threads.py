"""``one_thread``: run a test with one torch intra-op thread (tiny models gain nothing from more, and on a
shared 2-core machine extra threads only spin against each other). Import it into a test module and use
``pytestmark = pytest.mark.usefixtures("one_thread")``."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
