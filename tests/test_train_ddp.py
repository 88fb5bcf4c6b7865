"""Steps 1, embed and 2 under ``torchrun --nproc_per_node=2`` with DDP on the gloo backend (CPU).

One torchrun launch runs ``poke train classify``, ``embed`` and ``pretrain`` through the CLI in two processes
(tests/helpers/ddp_worker.py). Checked: it finishes; the data is sharded (half the optimizer steps of one
process); only rank 0 prints and writes checkpoints, logs and pictures (every file a rank creates under the run
directory is recorded by an audit hook; embed's shared array is the one file both ranks fill, by design);
the two replicas end with identical weights (and BatchNorm statistics), equal to what rank 0 saved; the
sharded embeddings cover every row and equal a single-process encoding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.tiny_manifest import make_tiny_manifest

REPO = Path(__file__).resolve().parent.parent
WORKER = REPO / "tests" / "helpers" / "ddp_worker.py"


pytestmark = pytest.mark.slow  # two torchrun processes train three steps: ~50 s


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    tmp = tmp_path_factory.mktemp("ddp")
    manifest = make_tiny_manifest(tmp, n_classes=3, per_class=8, size=16)  # 18 train, 3 val images
    run_dir, report = tmp / "run", tmp / "report"
    report.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(WORKER),
        str(manifest),
        str(run_dir),
        str(report),
        *("--preset", "tiny", "--image-size", "16", "--batch-size", "4", "--epochs", "1"),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    reports = [json.loads((report / f"rank-{r}.json").read_text()) for r in range(2)]
    return {"manifest": manifest, "run": run_dir, "report": report, "ranks": reports, "log": proc.stderr}


def test_every_step_finishes_sharded(ddp_run):
    from pokegan.runs import open_run

    assert [r["world"] for r in ddp_run["ranks"]] == [2, 2]
    run = open_run(ddp_run["run"], resume=False, create=False)
    assert all(run.is_done(s) for s in ("classify", "embed", "pretrain"))
    # 18 train images over 2 ranks = 9 each, batches of 4 (drop_last): 2 steps per epoch (one process
    # would take 4); classify runs 1 epoch, pretrain 2
    assert run.done_summary("classify")["steps"] == 2
    assert run.done_summary("pretrain")["steps"] == 4
    for step, epochs in (("classifier", 1), ("pretrain", 2)):
        rows = (ddp_run["run"] / step / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(r)["epoch"] for r in rows] == list(range(1, epochs + 1))  # not doubled


def test_only_rank0_writes_and_logs(ddp_run):
    for line in (
        "classify epoch 1/1: train",
        "classify: done",
        "embed: 24 x 512",
        "pretrain epoch 2/2: loss",
        "pretrain: done",
    ):
        assert ddp_run["log"].count(line) == 1, line  # printed by rank 0 only
    w0, w1 = (r["writes"] for r in ddp_run["ranks"])
    assert w1.get("classify", []) == [] and w1.get("pretrain", []) == []
    # embed: both ranks fill their rows of the one shared array rank 0 created; nothing else
    assert {Path(p).name for p in w1.get("embed", [])} <= {"embeddings.partial.npy"}
    assert any(p.startswith("classifier/tb") for p in w0["classify"])
    assert any(p.startswith("pretrain/recon") for p in w0["pretrain"])
    assert any("final.pt" in p for p in w0["classify"]) and any("final.pt" in p for p in w0["pretrain"])
    assert any("index.parquet" in p for p in w0["embed"])


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_replicas_identical_and_saved(ddp_run):
    rep, run = ddp_run["report"], ddp_run["run"]
    for step, saved_file, key in (
        ("classify", run / "classifier" / "final.pt", "model"),
        ("pretrain", run / "pretrain" / "final.pt", "generator"),
    ):
        r0, r1 = _load(rep / f"rank-0-{step}.pt"), _load(rep / f"rank-1-{step}.pt")
        saved = _load(saved_file)[key]
        assert r0.keys() == r1.keys() == saved.keys()
        for k in r0:
            assert torch.equal(r0[k], r1[k]), f"{step}: replicas differ at {k}"
            assert torch.equal(r0[k], saved[k]), f"{step}: saved {k} differs from the replicas"


def test_sharded_embeddings_cover_every_row(ddp_run):
    from pokegan.data import load_manifest, make_loader
    from pokegan.models.classifier import load_frozen_classifier
    from pokegan.runs import open_run
    from pokegan.steps.embed import load_embedding_index

    run = open_run(ddp_run["run"], resume=False, create=False)
    emb, index = load_embedding_index(run)
    manifest = load_manifest(ddp_run["manifest"])
    assert index["image_id"].tolist() == manifest.df["image_id"].tolist()
    model = load_frozen_classifier(run)
    loader = make_loader(manifest, "all", 16, 64, augment=False, seed=0, num_workers=0, distributed=False)
    ref = np.zeros_like(np.asarray(emb))
    with torch.no_grad():
        for x, _, rows in loader:
            ref[rows.numpy()] = model.embed(x).numpy()
    assert np.abs(ref).sum(1).min() > 0  # every row encoded
    np.testing.assert_allclose(np.asarray(emb), ref, atol=2e-4, rtol=1e-4)
