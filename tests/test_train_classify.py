"""Step 1: the embedding classifier's shapes and BatchNorm, learning, resume, the rotation task."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pokegan.config import ClassifyConfig, load_step_config
from pokegan.models.classifier import EmbeddingClassifier, load_frozen_classifier, rotate_batch
from pokegan.runs import open_run
from pokegan.steps.classify import run_classify
from tests.helpers.tiny_manifest import make_tiny_manifest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # trains: ~2 min in all


def _cfg(**over) -> ClassifyConfig:
    base = {
        "data.image_size": 32,
        "data.batch_size": 16,
        "data.num_workers": 0,
        "warmup_steps": 3,
        "lr": 2e-3,
    }
    base["label_smoothing"] = 0.0
    return load_step_config(ClassifyConfig, "classify", preset="tiny", overrides={**base, **over})


def test_shapes_bn_and_no_nans():
    m = EmbeddingClassifier(7)
    assert list(m.bn.parameters()) == [] and list(m.bn.buffers()) == []
    x = torch.randn(4, 3, 32, 32)
    feats = m.feature_maps(x)
    assert [tuple(f.shape[1:]) for f in feats.values()] == [(64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1)]
    z, logits = m.embed(x), m(x)
    assert z.shape == (4, 512) and logits.shape == (4, 7) and torch.isfinite(logits).all()
    assert (
        z.mean(0).abs().max() < 1e-4 and (z.var(0, unbiased=False) - 1).abs().max() < 1e-2
    )  # batch-normalised
    r, k = rotate_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(r[0], torch.rot90(x[0], int(k[0]), dims=(1, 2)))


def test_learns_a_four_class_set(four_class_run):
    # the session's shared run (tests/helpers/train_runs.py): 4 classes x 13 train images at 16 px,
    # batches of 16 (3 steps per epoch), 3 epochs
    run_dir, m, summary = four_class_run
    assert summary["task"] == "classes" and summary["steps"] == 9 and summary["outputs"] == 4
    run = open_run(run_dir, resume=False, create=False)
    assert run.is_done("classify") and (run.step_dir("classify") / "per_class_accuracy.csv").is_file()
    # train accuracy of the final model (frozen encoding statistics, no augmentation)
    from pokegan.data import load_manifest, make_loader

    man = load_manifest(m)
    model = load_frozen_classifier(run)
    hit = n = 0
    loader = make_loader(man, "train", 16, 64, augment=False, seed=0, num_workers=0, distributed=False)
    with torch.no_grad():
        for x, y, _ in loader:
            hit += (model(x).argmax(1) == y).sum().item()
            n += len(y)
    assert n == 52 and hit / n > 0.9, f"train accuracy {hit / n:.2f}"


def test_resume_continues_identically(tmp_path):
    m = make_tiny_manifest(tmp_path, n_classes=3, per_class=8, size=16)
    cfg = _cfg(epochs=2, **{"data.image_size": 16, "data.batch_size": 8, "stats_images": 16})
    run_classify(cfg, m, tmp_path / "a")
    stopped = run_classify(dataclasses.replace(cfg, stop_after_steps=3), m, tmp_path / "b")
    assert stopped == {"stopped": True, "step": 3}  # 18 train images, batches of 8: mid-epoch 2
    saved = torch.load(tmp_path / "b/classifier/last.pt", weights_only=False)
    assert saved["step"] == 3 and saved["epoch"] == 1 and saved["batch_in_epoch"] == 1
    with pytest.raises(Exception, match="already exists"):
        run_classify(cfg, m, tmp_path / "b")
    run_classify(cfg, m, tmp_path / "b", resume=True)
    a = torch.load(tmp_path / "a/classifier/last.pt", weights_only=False)
    b = torch.load(tmp_path / "b/classifier/last.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for k, v in a["model"].items():
        assert torch.allclose(v.float(), b["model"][k].float(), atol=1e-5), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(sa[i]["step"] == sb[i]["step"] for i in sa)
    assert all(torch.allclose(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"], atol=1e-7) for i in sa)


def test_rotation_task_for_one_class(tmp_path):
    m = make_tiny_manifest(tmp_path, n_classes=1, per_class=12, size=16)
    import json

    only = json.loads((m / "classes.json").read_text())["classes"][0]  # keep the rows' class_name valid
    (m / "classes.json").write_text(json.dumps({"catalog": "x", "classes": [only, "Unused"]}))
    cfg = _cfg(epochs=1, **{"data.image_size": 16, "data.batch_size": 8, "stats_images": 8})
    summary = run_classify(cfg, m, tmp_path / "run")
    assert summary["task"] == "rotation" and summary["outputs"] == 4
    model = load_frozen_classifier(open_run(tmp_path / "run", resume=False, create=False))
    assert model.fc.out_features == 4 and model.frozen_stats() is not None


def test_val_figures_do_not_depend_on_the_manifest_row_order(tmp_path):
    """The same rows in another order (stats.json untouched, as after a hand edit) give the same run.

    Before: val batches of a class-sorted manifest were normalised over 2-4 classes each by the
    embedding BatchNorm, and the packed cache, keyed by stats.json's recorded hash, served the old
    order's images under the new rows' labels (val top-1 0.93 -> 0.17 on 8 real species)."""
    import shutil

    from tests.helpers.tiny_manifest import permute_manifest

    m = make_tiny_manifest(tmp_path, n_classes=4, per_class=12, size=16)  # 2 val images per class
    shuffled = tmp_path / "manifests" / "shuffled"
    shutil.copytree(m, shuffled)
    permute_manifest(shuffled, keep_recorded_hash=True)
    over = {"data.image_size": 16, "data.batch_size": 4, "stats_images": 64, "data.use_cache": True}
    cfg = _cfg(epochs=2, **over)
    a = run_classify(cfg, m, tmp_path / "a")
    b = run_classify(cfg, shuffled, tmp_path / "b")
    assert a["val_top1"] == pytest.approx(b["val_top1"], abs=1e-9)
    assert a["val_top5"] == pytest.approx(b["val_top5"], abs=1e-9)
    per_class = [(tmp_path / r / "classifier" / "per_class_accuracy.csv").read_text() for r in "ab"]
    assert per_class[0] == per_class[1]


@pytest.mark.parametrize(
    ("splits", "error"),
    [
        (["train", "train", "val"], None),  # a val batch of one: was a BatchNorm ValueError traceback
        (["train", "val", "test"], "has 1 image\\(s\\); training needs at least 2"),
    ],
)
def test_three_images(tmp_path, splits, error):
    import json

    import pandas as pd

    from pokedata.errors import UserError

    m = make_tiny_manifest(tmp_path, n_classes=3, per_class=1, size=16)
    df = pd.read_parquet(m / "manifest.parquet")
    df["split"] = splits
    df.to_parquet(m / "manifest.parquet", index=False)
    stats = json.loads((m / "stats.json").read_text())
    stats.pop("manifest_sha256")
    (m / "stats.json").write_text(json.dumps(stats))
    cfg = _cfg(epochs=1, **{"data.image_size": 16})
    if error is None:
        summary = run_classify(cfg, m, tmp_path / "run")
        assert summary["val_top1"] is not None
    else:
        with pytest.raises(UserError, match=error):
            run_classify(cfg, m, tmp_path / "run")
