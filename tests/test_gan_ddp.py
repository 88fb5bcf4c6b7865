"""Step 3 (GAN) and ProGAN under ``torchrun --nproc_per_node=2`` with DDP on the gloo backend (CPU).

One torchrun launch (tests/helpers/gan_ddp_worker.py) first checks that the gradients DDP averages (the
critic's, with the WGAN-GP penalty's double backward, and the generator's) equal the mean of a
single-process computation of both ranks' half-batches, then runs ``poke train gan`` and
``poke train progan`` through the CLI in two processes. Checked: both finish with the step counts of
sharded data; only rank 0 prints and writes (an audit hook records every file a rank creates under the run
directories); the two replicas end with identical G and D, equal to what rank 0 saved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pokegan.config import load_step_config
from pokegan.runs import RunDir
from pokegan.steps.gmm import GMMConfig, run_gmm
from tests.helpers.step3_run import make_step3_run
from tests.helpers.tiny_manifest import make_tiny_manifest

REPO = Path(__file__).resolve().parent.parent
WORKER = REPO / "tests" / "helpers" / "gan_ddp_worker.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ddp_gan(tmp_path_factory):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    tmp = tmp_path_factory.mktemp("gan_ddp")
    gan_run = make_step3_run(tmp / "gan", image_size=16, per_class=12)  # 36 train images
    run_gmm(load_step_config(GMMConfig, "gmm", preset="tiny", overrides={"components": 2}), gan_run.root)
    manifest = make_tiny_manifest(tmp / "progan", n_classes=3, per_class=12, size=16)  # 27 train images
    config = tmp / "progan.toml"
    config.write_text(
        "[data]\nbatch_size = 4\nnum_workers = 0\nuse_cache = false\n\n"
        '[progan]\nsizes = [8, 16]\ncycle = [{lr = 1e-3, epochs = 1}]\nloss = "wgan-gp"\n'
        "z_dim = 8\nchannel_base = 64\nmax_channels = 16\nn_fixed = 4\nsample_every = 2\n"
        'checkpoint_every = 1\nlog_every = 1\ngradflow_every = 1\ndevice = "cpu"\n'
    )
    report = tmp / "report"
    report.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    progan_out = tmp / "progan-run"
    args = [str(report), str(gan_run.root), str(manifest), str(progan_out), str(config)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER)]
    proc = subprocess.run([*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    ranks = [json.loads((report / f"rank-{r}.json").read_text()) for r in range(2)]
    return {"gan": gan_run.root, "progan": progan_out, "report": report, "ranks": ranks, "log": proc.stderr}


def test_ddp_gradients_equal_the_single_process_mean(ddp_gan):
    for r in ddp_gan["ranks"]:
        g = r["grads"]
        assert g["D_scale"] > 1e-3 and g["G_scale"] > 1e-3  # gradients that mean something
        assert g["D"] <= 1e-5 * max(1.0, g["D_scale"]), g  # the penalty's double backward included
        assert g["G"] <= 1e-5 * max(1.0, g["G_scale"]), g


def test_gan_and_progan_finish_sharded(ddp_gan):
    assert [r["world"] for r in ddp_gan["ranks"]] == [2, 2]
    gan = RunDir(ddp_gan["gan"])
    assert gan.done_summary("gan")["steps"] == 4
    rows = [json.loads(x) for x in (ddp_gan["gan"] / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4]  # evaluated once per cadence (rank 0), not twice
    done = json.loads((ddp_gan["progan"] / "progan" / "done.json").read_text())
    # 27 train images over 2 ranks, batches of 4: 3 batches per rank and epoch (one process: 6);
    # one epoch per stage at 8 and 16 px
    assert done["steps"] == 3 + 3


def test_only_rank0_writes_and_logs(ddp_gan):
    for line in ("gan step 4: judge FD", "progan: done"):
        assert ddp_gan["log"].count(line) == 1, line
    w0, w1 = (r["writes"] for r in ddp_gan["ranks"])
    assert w1.get("gan", []) == [] and w1.get("progan", []) == [], (w1.get("gan"), w1.get("progan"))
    for name in ("last.pt", "best.pt", "final.pt", "samples.png", "done.json"):  # temp names, then renamed
        assert any(p.startswith("gan/") and name in p for p in w0["gan"]), name
    assert any(p.startswith("gan/tb") for p in w0["gan"])
    assert any("all_samples.gif" in p for p in w0["progan"]) and any("stage_16px" in p for p in w0["progan"])


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_replicas_identical_and_saved(ddp_gan):
    rep = ddp_gan["report"]
    for step, saved_file in (
        ("gan", ddp_gan["gan"] / "gan" / "final.pt"),
        ("progan", ddp_gan["progan"] / "progan" / "final.pt"),
    ):
        r0, r1 = _load(rep / f"rank-0-{step}.pt"), _load(rep / f"rank-1-{step}.pt")
        saved = _load(saved_file)
        saved = {
            **{f"G.{k}": v for k, v in saved["generator"].items()},
            **{f"D.{k}": v for k, v in saved["discriminator"].items()},
        }
        assert r0.keys() == r1.keys() == saved.keys()
        for k in r0:
            assert torch.equal(r0[k], saved[k]), f"{step}: saved {k} differs from rank 0's"
            if "running_" in k or "num_batches" in k:
                continue  # BatchNorm statistics: each replica's own batches (rank 0's are saved)
            assert torch.equal(r0[k], r1[k]), f"{step}: replicas differ at {k}"
