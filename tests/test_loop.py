"""The training skeleton (pokegan/loop.py): the metrics log cut back on resume, prerequisites checked before a
step folder is touched, and checkpoints in the layout written before the skeleton still resume (or are
refused with a message naming what is wrong)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from pokedata.errors import UserError
from pokegan.config import PretrainConfig, load_step_config
from pokegan.loop import MetricsLog
from pokegan.runs import RunDir
from pokegan.steps.pretrain import run_pretrain
from tests.helpers.step3_run import make_step3_run

pytestmark = pytest.mark.usefixtures("one_thread")

# the keys of a step-2 last.pt as pokegan/steps/pretrain.py wrote it before the skeleton (its _checkpoint)
PRE_SKELETON_PRETRAIN_KEYS = {
    "kind",
    "model_args",
    "generator",
    "optimizer",
    "schedule",
    "scaler",
    "step",
    "epoch",
    "batch_in_epoch",
    "rng",
    "config",
    "classes",
    "manifest_sha256",
}


def test_metrics_log_keeps_the_rows_up_to_the_resumed_step(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for epoch, step in ((1, 3), (2, 6), (3, 9)):
        log.append({"epoch": epoch, "step": step, "loss": 1.0 / epoch})
    # resumed from last.pt at the end of epoch 2 (step 6): epoch 2's row stays, epoch 3's goes
    again = MetricsLog(tmp_path / "metrics.jsonl")
    again.truncate(6)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] == [r["epoch"] for r in again.rows]


@pytest.fixture(scope="module")
def step2_run(tmp_path_factory):
    """A run with step 1 done (synthetic) and step 2 not started; 36 train images at 16 px."""
    run = make_step3_run(tmp_path_factory.mktemp("loop"), image_size=16)
    shutil.rmtree(run.step_dir("pretrain"))
    return run


@pytest.fixture(scope="module")
def stopped_run(step2_run, tmp_path_factory):
    """``step2_run`` with step 2 stopped after one optimizer step (``pretrain/last.pt``)."""
    run = RunDir(tmp_path_factory.mktemp("stopped") / "run")
    shutil.copytree(step2_run.root, run.root)
    assert run_pretrain(_cfg(stop_after_steps=1), run.root) == {"stopped": True, "step": 1}
    return run


def _cfg(**over) -> PretrainConfig:
    base = {"epochs": 1, "data.num_workers": 0, "grid_n": 2, **over}
    data = {"data": {"image_size": 16, "batch_size": 8}}
    return load_step_config(PretrainConfig, "pretrain", preset="tiny", overrides=base, base=data)


def _copy(run, tmp_path) -> RunDir:
    shutil.copytree(run.root, tmp_path / "run")
    return RunDir(tmp_path / "run")


def test_a_missing_prerequisite_touches_no_step_folder(step2_run, tmp_path):
    run = _copy(step2_run, tmp_path)
    (run.step_dir("classify") / "done.json").unlink()
    with pytest.raises(UserError, match="the classify step of .* is not finished"):
        run_pretrain(_cfg(), run.root)
    assert not run.step_dir("pretrain").exists()  # so the next try needs no --resume


@pytest.mark.slow
def test_a_pre_skeleton_checkpoint_resumes(stopped_run, tmp_path):
    run = _copy(stopped_run, tmp_path)
    path = run.step_dir("pretrain") / "last.pt"
    saved = torch.load(path, weights_only=False)
    assert set(saved) == PRE_SKELETON_PRETRAIN_KEYS  # the layout did not change
    # exactly the old layout, written as the old code wrote it (a plain dict, torch.save)
    torch.save({k: saved[k] for k in PRE_SKELETON_PRETRAIN_KEYS}, path)
    summary = run_pretrain(_cfg(), run.root, resume=True)
    assert summary["steps"] == 4  # 36 images, batches of 8: steps 2..4 after the resumed step 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "poke-pretrain-0"}, "is a 'poke-pretrain-0' checkpoint, not 'poke-pretrain-1'"),
        ({"manifest_sha256": "0" * 64}, "was trained on another manifest"),
        ({"drop": "batch_in_epoch"}, "has no 'batch_in_epoch': it is not a resumable pretrain checkpoint"),
        ({"model_args": {"generator": {"image_size": 64}}}, "holds a different generator"),
    ],
)
def test_an_unfit_checkpoint_is_refused_by_name(stopped_run, tmp_path, change, message):
    run = _copy(stopped_run, tmp_path)
    path = run.step_dir("pretrain") / "last.pt"
    saved = torch.load(path, weights_only=False)
    saved.pop(change.pop("drop", None), None)
    saved.update(change)
    torch.save(saved, path)
    with pytest.raises(UserError, match=message):
        run_pretrain(_cfg(), run.root, resume=True)
