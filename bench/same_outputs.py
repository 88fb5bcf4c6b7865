"""Do two versions of the trainer make the same thing? Train the same tiny runs with this tree and with
another git revision, then compare every checkpoint tensor, the GAN's metrics rows and the pictures.

    python bench/same_outputs.py --base 8255f1a      # e.g. the commit before the training skeleton

Both trees run, one after the other, in subprocesses (``PYTHONPATH`` set to each tree) on CPU with one
thread: step 1 and step 2 (2 epochs each, 3 classes x 8 images at 16 px), step 3 (6 generator steps of
wgan-gp-msg with 2 critic steps, DiffAugment, evaluations and checkpoints every 3 steps) on a synthetic
step-3 run, and ProGAN (8 -> 16 px, fade-in, wgan-gp). Prints one row per output: the largest absolute
difference between the two versions (0.0 = bit-identical) or whether the file bytes are equal.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

RUNNER = r"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, sys.argv[2] + "/tests")
torch.set_num_threads(1)
from helpers.step3_run import make_step3_run
from helpers.tiny_manifest import make_tiny_manifest

from pokegan.config import ClassifyConfig, PretrainConfig, load_step_config
from pokegan.progan import train as P
from pokegan.steps import classify as C
from pokegan.steps.gan import GANConfig, run_gan
from pokegan.steps.gmm import GMMConfig, run_gmm
from pokegan.steps.pretrain import run_pretrain

out = Path(sys.argv[1])
m = make_tiny_manifest(out / "m12", n_classes=3, per_class=8, size=16)
over = {"epochs": 2, "lr": 3e-3, "warmup_steps": 2, "stats_images": 16, "data.image_size": 16,
        "data.batch_size": 8, "data.num_workers": 0}
cfg = load_step_config(ClassifyConfig, "classify", preset="tiny", overrides=over)
if hasattr(C, "new_run"):  # after the skeleton: the run is made first
    C.run_classify(cfg, C.new_run(cfg, m, out / "run12"))
else:
    C.run_classify(cfg, m, out / "run12")
pre = load_step_config(PretrainConfig, "pretrain", preset="tiny", overrides={"epochs": 2, "data.num_workers": 0},
                       base={"data": {"image_size": 16, "batch_size": 8}})
run_pretrain(pre, out / "run12")

run = make_step3_run(out / "s3", image_size=16)
run_gmm(load_step_config(GMMConfig, "gmm", preset="tiny", overrides={"components": 2}), run.root)
over = {"steps": 6, "metrics_every": 3, "sample_every": 3, "checkpoint_every": 3, "loss": "wgan-gp-msg",
        "n_critic": 2, "diffaugment": "color,translation", "data.batch_size": 6, "data.num_workers": 0}
run_gan(load_step_config(GANConfig, "gan", preset="tiny", overrides=over), run.root)

pm = make_tiny_manifest(out / "pg", n_classes=3, per_class=12, size=16)
(out / "pg.toml").write_text(
    "[data]\nbatch_size = 8\nnum_workers = 0\nuse_cache = false\n\n[progan]\nsizes = [8, 16]\n"
    "cycle = [{lr = 1e-3, epochs = 1}]\nz_dim = 8\nchannel_base = 64\nmax_channels = 16\nn_fixed = 4\n"
    "sample_every = 2\ncheckpoint_every = 1\nlog_every = 1\ngradflow_every = 1\ndevice = \"cpu\"\n"
    "fade_in = true\nloss = \"wgan-gp\"\n"
)
P.train_progan(P.ProGANJob(out=out / "pgrun", manifest=pm, config_file=out / "pg.toml"))
"""

TENSORS = [
    ("run12/classifier/final.pt", "model"),
    ("run12/pretrain/final.pt", "generator"),
    ("s3/runs/r/gan/final.pt", "generator"),
    ("s3/runs/r/gan/final.pt", "discriminator"),
    ("s3/runs/r/gan/best.pt", "generator"),
    ("pgrun/progan/final.pt", "generator"),
    ("pgrun/progan/final.pt", "discriminator"),
]
FILES = [
    "run12/pretrain/recon/epoch-002.png",
    "s3/runs/r/gan/samples.png",
    "pgrun/progan/samples_16px.png",
    "pgrun/progan/all_samples.gif",
]


def train(tree: Path, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    script = out.parent / f"{out.name}-runner.py"
    script.write_text(RUNNER)
    proc = subprocess.run(
        [sys.executable, str(script), str(out), str(tree)], cwd=tree, env=env, capture_output=True, text=True
    )
    if proc.returncode:
        sys.exit(f"training with {tree} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision to compare this tree with")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "base-tree"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.base], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        train(base, tmp / "base")
        train(REPO, tmp / "this")
        print(f"{'output':45s} {args.base[:10]} vs this tree")
        for path, key in TENSORS:
            a = torch.load(tmp / "base" / path, weights_only=False)[key]
            b = torch.load(tmp / "this" / path, weights_only=False)[key]
            diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
            print(f"{path + ' ' + key:45s} max |difference| {diff:g}")
        rows = [
            [json.loads(x) for x in (tmp / t / "s3/runs/r/gan/metrics.jsonl").read_text().splitlines()]
            for t in ("base", "this")
        ]
        print(f"{'s3/runs/r/gan/metrics.jsonl':45s} rows equal: {rows[0] == rows[1]}")
        for path in FILES:
            same = filecmp.cmp(tmp / "base" / path, tmp / "this" / path, shallow=False)
            print(f"{path:45s} bytes equal: {same}")


if __name__ == "__main__":
    main()
