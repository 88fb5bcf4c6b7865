"""Session-scoped trained runs for tests that need a real finished step 1 (training one costs seconds of CPU).

``tests/conftest.py`` registers it as a pytest plugin (once, so the run is shared by every module that
asks)::

    def test_something(four_class_run):
        run_dir, manifest_dir, summary = four_class_run

``four_class_run``: ``poke train classify`` (the library call) on a 4-class generated set
(``make_tiny_manifest(n_classes=4, per_class=16, size=16)``: 13 train, 2 val, 1 test images per class) at
16 px, trained to > 90% train accuracy. Tests may add later steps (embed, pretrain) to it; they must not
change its ``classifier/`` folder. Tests that need a synthetic run without training use
``tests/helpers/step3_run.py`` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import torch_threads
from tests.helpers.tiny_manifest import make_tiny_manifest

FOUR_CLASS_OVERRIDES = {
    "epochs": 3,
    "lr": 3e-3,
    "warmup_steps": 2,
    "label_smoothing": 0.0,
    "stats_images": 64,
    "data.image_size": 16,
    "data.batch_size": 16,
    "data.num_workers": 0,
}


class TrainedRun(NamedTuple):
    run_dir: Path
    manifest_dir: Path
    summary: dict


@pytest.fixture(scope="session")
def four_class_run(tmp_path_factory) -> TrainedRun:
    """A finished step-1 run of a 4-class generated set (see the module docstring)."""
    from pokegan.config import ClassifyConfig, load_step_config
    from pokegan.steps.classify import run_classify

    tmp = tmp_path_factory.mktemp("four_class_run")
    manifest = make_tiny_manifest(tmp, n_classes=4, per_class=16, size=16)
    cfg = load_step_config(ClassifyConfig, "classify", preset="tiny", overrides=FOUR_CLASS_OVERRIDES)
    with torch_threads(1):
        summary = run_classify(cfg, manifest, tmp / "run")
    return TrainedRun(tmp / "run", manifest, summary)
