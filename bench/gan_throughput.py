"""Step-3 training throughput per loss at 64 and 128 px: one loop iteration = n_critic critic steps + one
generator step + EMA update, exactly as ``pokegan.steps.gan._train_step`` runs it (synthetic real
images, so data loading is not measured: ``bench/train_throughput.py`` measures the loader).

    python bench/gan_throughput.py            # 64 and 128 px, every loss
    python bench/gan_throughput.py --quick    # 64 px, fewer steps
    python bench/gan_throughput.py --device cuda

Anchor: the ``dcgan`` loss (a plain single-scale critic, no penalty). Printed per loss: generator steps/s,
real images/s through the critic (batch x n_critic per generator step), and the ratio to the anchor's
images/s. On CUDA it also prints peak GPU memory. Models: the step-2 generator and the critic at the
default preset's widths on CUDA, the tiny preset's on CPU (``--widths`` chooses).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokegan.device import autocast  # noqa: E402
from pokegan.ema import EMA  # noqa: E402
from pokegan.losses import LOSS_NAMES, LossConfig, make_loss  # noqa: E402
from pokegan.models.discriminator import DiscriminatorArgs, build_discriminator, image_pyramid  # noqa: E402
from pokegan.models.generator import Generator, GeneratorArgs  # noqa: E402

WIDTHS = {
    "default": {"g_base": 16384, "g_max": 512, "d_base": 32, "d_max": 512},  # the default preset's models
    "tiny": {"g_base": 1024, "g_max": 64, "d_base": 16, "d_max": 64},  # the tiny preset's (CPU-sized)
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(loss_name: str, size: int, batch: int, steps: int, device: torch.device, widths: dict) -> dict:
    """Seconds per generator step (after one warm-up step) of the real step-3 iteration."""
    torch.manual_seed(0)
    loss = make_loss(LossConfig(name=loss_name))
    g = Generator(
        GeneratorArgs(image_size=size, channel_base=widths["g_base"], max_channels=widths["g_max"])
    ).to(device)
    d = build_discriminator(
        DiscriminatorArgs(
            image_size=size,
            kind="msg" if loss.multiscale else "dcgan",
            base_channels=widths["d_base"],
            max_channels=widths["d_max"],
        )
    ).to(device)
    ema = EMA(g, 0.999)
    opt_g, opt_d = loss.make_optimizers(g.parameters(), d.parameters())
    sizes = [4 << i for i in range((size // 4).bit_length())]
    real_img = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    real = image_pyramid(real_img, sizes) if loss.multiscale else real_img
    amp = device.type == "cuda"

    def fake(z):
        return g.forward_multiscale(z) if loss.multiscale else g(z)

    def one_step():
        g.requires_grad_(False)
        for _ in range(loss.n_critic):
            z = torch.randn(batch, 512, device=device)
            with autocast(device, amp), torch.no_grad():
                f = fake(z)
            with autocast(device, amp):
                ld, _ = loss.d_loss(d, real, f)
            opt_d.zero_grad(set_to_none=True)
            ld.backward()
            opt_d.step()
            loss.after_d_step(d)
        g.requires_grad_(True)
        d.requires_grad_(False)
        with autocast(device, amp):
            lg, _ = loss.g_loss(d, fake(torch.randn(batch, 512, device=device)))
        opt_g.zero_grad(set_to_none=True)
        lg.backward()
        opt_g.step()
        ema.update(g)
        d.requires_grad_(True)

    one_step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        one_step()
    _sync(device)
    dt = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "s_per_step": dt,
        "images_per_s": batch * loss.n_critic / dt,
        "n_critic": loss.n_critic,
        "peak_gib": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64 px only, 2 timed steps")
    ap.add_argument("--sizes", default=None, help="comma-separated sizes (default 64,128; quick 64)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 8 on CPU, 64 on CUDA)")
    ap.add_argument("--steps", type=int, default=None, help="timed generator steps (default 3; quick 2)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument(
        "--widths",
        choices=sorted(WIDTHS),
        default=None,
        help="model widths (default: 'default' on CUDA, 'tiny' on CPU)",
    )
    args = ap.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    sizes = [int(s) for s in (args.sizes or ("64" if args.quick else "64,128")).split(",")]
    batch = args.batch or (64 if device.type == "cuda" else 8)
    steps = args.steps or (2 if args.quick else 3)
    preset = args.widths or ("default" if device.type == "cuda" else "tiny")
    widths = WIDTHS[preset]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    print(
        f"batch {batch}, {steps} timed generator steps after 1 warm-up; synthetic real images; {preset} widths\n"
    )
    print(
        f"{'size':>5s} {'loss':12s} {'n_critic':>8s} {'G steps/s':>10s} {'images/s':>9s} {'vs dcgan':>9s}"
        + (f" {'peak GiB':>9s}" if device.type == "cuda" else "")
    )
    order = ["dcgan", *[n for n in LOSS_NAMES if n != "dcgan"]]
    for size in sizes:
        anchor = None
        for name in order:
            r = measure(name, size, batch, steps, device, widths)
            anchor = anchor or r["images_per_s"]
            line = (
                f"{size:5d} {name:12s} {r['n_critic']:8d} {1 / r['s_per_step']:10.3f} "
                f"{r['images_per_s']:9.2f} {r['images_per_s'] / anchor:8.2f}x"
            )
            if r["peak_gib"] is not None:
                line += f" {r['peak_gib']:9.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
