"""What freezing buys: progressive-DCGAN training speed per stage, frozen old layers vs. all trainable.

For each stage size the real training step (``pokegan.progan.train.train_step``: one D step and one G
step of the dcgan loss on a batch) runs with

- ``trainable``: every layer trainable, the ProGAN way (the ANCHOR),
- ``frozen``: the layers learned at smaller sizes frozen (the default),
- ``frozen+fade``: frozen, with the fade-in skip path active (alpha 0.5),

on random "real" batches (the data loader is measured by bench/train_throughput.py), and prints images/s
side by side with the anchor as ratios, plus the trainable parameter counts. On CUDA the step runs under
bf16 autocast and peak memory is reported too.

    python bench/progan.py            # 16/32/64 px, default widths, batch 64
    python bench/progan.py --quick    # narrower layers, batch 32, fewer steps (about a minute on CPU)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokegan.losses import make_loss  # noqa: E402
from pokegan.progan.config import ProGANConfig  # noqa: E402
from pokegan.progan.gradflow import GradFlow  # noqa: E402
from pokegan.progan.grow import build_models  # noqa: E402
from pokegan.progan.models import count_params  # noqa: E402
from pokegan.progan.state import Position, ProGANState, make_optimizers, stage_args  # noqa: E402
from pokegan.progan.train import train_step  # noqa: E402

MODES = (("trainable", False, False), ("frozen", True, False), ("frozen+fade", True, True))


def _state(cfg: ProGANConfig, stage: int, device: torch.device, fade: bool) -> ProGANState:
    g, d = build_models(stage_args(cfg, stage), freeze=cfg.freeze)
    g, d = g.to(device), d.to(device)
    if fade:
        g.alpha = d.alpha = 0.5
    loss = make_loss(cfg.loss_config())
    opt_g, opt_d = make_optimizers(loss, cfg, g, d, stage)
    z = torch.randn(4, cfg.z_dim, device=device)
    return ProGANState(cfg, Path("."), device, g, d, loss, opt_g, opt_d, z, [], "", Position(stage=stage))


def measure(
    cfg: ProGANConfig, stage: int, device: torch.device, fade: bool, steps: int, warmup: int, repeats: int
) -> dict:
    """Images/s of the best of ``repeats`` timed runs of ``steps`` steps (the best is the least disturbed)."""
    st = _state(cfg, stage, device, fade)
    b, s = cfg.data.batch_size, cfg.sizes[stage]
    real = torch.rand(b, 3, s, s, device=device) * 2 - 1
    flows = (GradFlow("G"), GradFlow("D"))
    for _ in range(warmup):
        train_step(st, real, record_every=10**9, flows=flows)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(st, real, record_every=10**9, flows=flows)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return {
        "img_s": b * steps / best,
        "g_train": count_params(st.G, trainable_only=True),
        "d_train": count_params(st.D, trainable_only=True),
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="narrower layers, batch 32, fewer steps")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per case (0: 20, --quick 8)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per case; the fastest counts")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads on CPU (0: torch's default)"
    )
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    cfg = ProGANConfig(sizes=[16, 32, 64], cycle=[{"lr": 2e-4, "epochs": 1}])
    if args.quick:
        cfg.channel_base, cfg.max_channels, cfg.z_dim = 512, 128, 64
        cfg.data.batch_size = 32
    steps = args.steps or (5 if args.quick else 10)
    cfg.validate()
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"progan step throughput on {name}; torch {torch.__version__}; batch {cfg.data.batch_size}; "
        f"channel_base {cfg.channel_base}, max_channels {cfg.max_channels}; best of {args.repeats} x {steps} timed steps per case"
    )
    print(
        f"{'size':>5} {'mode':<12} {'img/s':>9} {'vs anchor':>10} {'trainable G':>12} {'trainable D':>12} {'peak MB':>8}"
    )
    for stage, size in enumerate(cfg.sizes):
        anchor = None
        for mode, freeze, fade in MODES:
            if stage == 0 and (freeze or fade):
                continue  # the first stage has nothing to freeze or fade
            cfg.freeze, cfg.fade_in = freeze, fade
            r = measure(cfg, stage, device, fade, steps, warmup=2, repeats=args.repeats)
            anchor = anchor or r["img_s"]
            print(
                f"{size:>5} {mode:<12} {r['img_s']:>9.1f} {r['img_s'] / anchor:>9.2f}x "
                f"{r['g_train']:>12,} {r['d_train']:>12,} {r['peak_mb']:>8.0f}"
            )


if __name__ == "__main__":
    main()
