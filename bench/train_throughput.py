"""Trainer throughput: data loading alone (JPEG vs packed cache), steps 1, 2 and 3 at 64 and 128 px.

    python bench/train_throughput.py            # 64 and 128 px
    python bench/train_throughput.py --quick    # 64 px, fewer images and steps
    python bench/train_throughput.py --device cuda

1. Loading alone, anchor = the JPEG loader (Pillow decode in DataLoader workers, then the batched
   augmentation): images/s over one epoch of the train split, vs the packed uint8 cache (memmap; on CUDA
   the GPU-resident copy with augmentation there). Printed as ratios to the anchor. The cache's one-time
   build is timed separately.
2. Step 1 (classify) and step 2 (pretrain): images/s of the real training iteration (the models and
   losses of ``pokegan.steps.classify`` / ``pokegan.steps.pretrain`` at the ``default`` preset's widths,
   AdamW, bf16 autocast + channels_last on CUDA) fed by the packed-cache loader, so the loader's share
   shows. On CUDA also the peak GPU memory (``torch.cuda.max_memory_allocated``) and the share of wall
   time the GPU is busy: CUDA events around each iteration's compute, summed, over the wall time of the
   whole loop (loader included). The goal on a GPU is >= 90% busy (the loader is never the bottleneck).
   Printed beside each: how many times faster the cache loader alone is than the step (>1: headroom).
3. Step 3 (GAN): ``bench/gan_throughput.py``'s ``measure`` (the real step-3 iteration, synthetic real
   images) for the default loss and its ``dcgan`` anchor; on CPU at the first size only, unless ``--sizes``
   is given (a 128 px GAN step at the default widths takes about a minute on 2 cores).

The images are synthetic shapes (``tests/helpers/tiny_manifest.py``) saved as 256 px JPEGs (quality 95), so
decoding includes a downscale as with real sprites.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_data(tmp: Path, n_images: int):
    from pokegan.data import load_manifest
    from tests.helpers.tiny_manifest import make_tiny_manifest

    classes = 8
    return load_manifest(make_tiny_manifest(tmp, n_classes=classes, per_class=n_images // classes, size=256))


def _loader(manifest, size: int, batch: int, *, use_cache: bool, workers: int, device, cache_dir: Path):
    from pokegan.data import make_loader

    return make_loader(
        manifest,
        "train",
        size,
        batch,
        augment=True,
        seed=0,
        num_workers=workers,
        distributed=False,
        use_cache=use_cache,
        device=device,
        cache_dir=cache_dir,
    )


def time_loader(loader, device, epochs: int = 1) -> float:
    """Images/s over ``epochs`` full epochs (batches arrive on ``device``, augmented)."""
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _, _ in loader:
            n += len(x)
    _sync(device)
    return n / (time.perf_counter() - t0)


class Timer:
    """Wall time of a loop and, on CUDA, the GPU time of its compute sections (CUDA events)."""

    def __init__(self, device: torch.device):
        self.device, self.pairs, self.images = device, [], 0

    def compute(self):
        timer = self

        class _Section:
            def __enter__(self):
                if timer.device.type == "cuda":
                    self.start = torch.cuda.Event(enable_timing=True)
                    self.end = torch.cuda.Event(enable_timing=True)
                    self.start.record()

            def __exit__(self, *exc):
                if timer.device.type == "cuda":
                    self.end.record()
                    timer.pairs.append((self.start, self.end))

        return _Section()

    def busy_share(self, wall: float) -> float | None:
        if self.device.type != "cuda":
            return None
        torch.cuda.synchronize(self.device)
        return sum(a.elapsed_time(b) for a, b in self.pairs) / 1000.0 / wall


def run_loop(step_fn, loader, device, steps: int, warmup: int = 1) -> dict:
    """Run ``step_fn(x, y)`` over loader batches: ``warmup`` untimed, then ``steps`` timed."""
    it = iter(_forever(loader))
    for _ in range(warmup):
        x, y, _ = next(it)
        step_fn(x.to(device), y.to(device))
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timer = Timer(device)
    n, t0 = 0, time.perf_counter()
    for _ in range(steps):
        x, y, _ = next(it)
        with timer.compute():
            step_fn(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        n += len(x)
    _sync(device)
    wall = time.perf_counter() - t0
    return {
        "images_per_s": n / wall,
        "busy": timer.busy_share(wall),
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def _forever(loader):
    while True:
        yield from loader


def classify_step_fn(n_classes: int, device):
    """The step-1 iteration of ``run_classify``: autocast forward, cross-entropy, backward, AdamW step."""
    import torch.nn.functional as F

    from pokegan import device as dev
    from pokegan.config import ClassifyConfig, load_step_config
    from pokegan.steps.classify import build_model, make_optimizer

    cfg = load_step_config(ClassifyConfig, "classify", preset="default")
    model = build_model(cfg, n_classes).to(device)
    channels_last = cfg.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(cfg, model)
    scaler = dev.make_grad_scaler(device, cfg.amp)
    model.train()

    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with dev.autocast(device, cfg.amp):
            logits = model(x).float()  # [B, classes]
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return step


def pretrain_step_fn(size: int, n_classes: int, device):
    """The step-2 iteration of ``run_pretrain``: frozen-classifier encode, G(z), perceptual loss, AdamW."""
    from pokegan import device as dev
    from pokegan.config import PretrainConfig, load_step_config
    from pokegan.models.classifier import EmbeddingClassifier
    from pokegan.models.generator import Generator
    from pokegan.perceptual import PerceptualLoss
    from pokegan.steps import param_groups
    from pokegan.steps.pretrain import generator_args

    cfg = load_step_config(PretrainConfig, "pretrain", preset="default", overrides={"data.image_size": size})
    clf = EmbeddingClassifier(n_classes).to(device).eval().requires_grad_(False)
    g = Generator(generator_args(cfg)).to(device)
    for to_rgb in g.to_rgb[:-1]:
        to_rgb.requires_grad_(False)
    channels_last = cfg.channels_last and device.type == "cuda"
    if channels_last:
        clf, g = clf.to(memory_format=torch.channels_last), g.to(memory_format=torch.channels_last)
    # frozen encoding statistics, as load_frozen_classifier sets them (values do not change the cost)
    clf.set_frozen_stats(torch.zeros(512), torch.ones(512))
    loss_fn = PerceptualLoss(clf, cfg.layer_weights, cfg.pixel_l1)
    opt = torch.optim.AdamW(param_groups(g, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    scaler = dev.make_grad_scaler(device, cfg.amp)

    def step(x, _y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with dev.autocast(device, cfg.amp):
            z, targets = loss_fn.encode(x)  # [B, 512], feature maps layer1..4
            recon = g(z)  # [B, 3, S, S]
            loss, _ = loss_fn(recon, x, targets)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return step


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64 px only, 256 images, 2 timed steps")
    ap.add_argument("--sizes", default=None, help="comma-separated sizes (default 64,128; quick 64)")
    ap.add_argument("--images", type=int, default=None, help="synthetic images (default 1024; quick 256)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 8 on CPU, 128 on CUDA)")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (default 3; quick 2)")
    ap.add_argument("--workers", type=int, default=None, help="JPEG loader workers (default: CPU count)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--no-gan", action="store_true", help="skip step 3 (bench/gan_throughput.py)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device(
        "cuda" if args.device == "auto" and cuda else "cpu" if args.device == "auto" else args.device
    )
    sizes = [int(s) for s in (args.sizes or ("64" if args.quick else "64,128")).split(",")]
    n_images = args.images or (256 if args.quick else 1024)
    batch = args.batch or (128 if device.type == "cuda" else 8)
    steps = args.steps or (2 if args.quick else 3)
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    if device.type != "cuda":
        print(
            "no CUDA device: CPU figures only (GPU memory and GPU-busy share are measured only on CUDA)"
            if not cuda
            else "CUDA available but --device cpu: CPU figures only"
        )
    with tempfile.TemporaryDirectory(prefix="poke-train-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        manifest = make_data(tmp, n_images)
        n_train = len(manifest.rows("train"))
        print(
            f"data: {len(manifest)} synthetic 256 px JPEGs ({n_train} train, {manifest.num_classes} classes) "
            f"written in {time.perf_counter() - t0:.1f} s; batch {batch}, {workers} JPEG workers, "
            f"{steps} timed training steps after 1 warm-up\n"
        )
        print("1. data loading alone (one epoch of the train split, augmented, batches on the device)")
        print(f"{'size':>5s} {'loader':28s} {'images/s':>9s} {'vs JPEG':>8s}")
        cache_speed = {}
        for size in sizes:
            cache_dir = tmp / "cache"
            jpeg = time_loader(
                _loader(
                    manifest,
                    size,
                    batch,
                    use_cache=False,
                    workers=workers,
                    device=device,
                    cache_dir=cache_dir,
                ),
                device,
            )
            print(f"{size:5d} {'JPEG (anchor)':28s} {jpeg:9.1f} {1.0:7.2f}x")
            t0 = time.perf_counter()
            cached = _loader(
                manifest, size, batch, use_cache=True, workers=workers, device=device, cache_dir=cache_dir
            )
            build = time.perf_counter() - t0
            speed = time_loader(cached, device, epochs=2)
            cache_speed[size] = speed
            where = "GPU-resident" if device.type == "cuda" else "memmap"
            print(f"{size:5d} {'packed cache (' + where + ')':28s} {speed:9.1f} {speed / jpeg:7.2f}x")
            print(f"{size:5d} {'  one-time cache build':28s} {len(manifest) / build:9.1f}   ({build:.1f} s)")
        print("\n2. training steps 1 and 2, fed by the packed-cache loader")
        print(
            f"{'size':>5s} {'step':18s} {'images/s':>9s} {'loader/step':>11s} {'GPU busy':>9s} {'peak GiB':>9s}"
        )
        for size in sizes:
            loader = _loader(
                manifest, size, batch, use_cache=True, workers=workers, device=device, cache_dir=tmp / "cache"
            )
            for name, fn in (
                ("1 classify", classify_step_fn(manifest.num_classes, device)),
                ("2 pretrain", pretrain_step_fn(size, manifest.num_classes, device)),
            ):
                r = run_loop(fn, loader, device, steps)
                print(
                    f"{size:5d} {name:18s} {r['images_per_s']:9.2f} {cache_speed[size] / r['images_per_s']:10.1f}x "
                    f"{_fmt(r['busy'], '8.0%')} {_fmt(r['peak_gib'], '9.2f')}",
                    flush=True,
                )
                del fn
    if args.no_gan:
        return
    from gan_throughput import measure

    from pokegan.losses import LossConfig

    default_loss = LossConfig().name
    widths = {"g_base": 16384, "g_max": 512, "d_base": 32, "d_max": 512}  # the default preset's
    gan_batch = args.batch or (64 if device.type == "cuda" else 8)
    gan_sizes = sizes if device.type == "cuda" or args.sizes else sizes[:1]
    print(f"\n3. step 3 (bench/gan_throughput.py, synthetic real images, batch {gan_batch})")
    if gan_sizes != sizes:
        print(
            f"   CPU: {gan_sizes[0]} px only (minutes per step above it; --sizes 128 or gan_throughput.py runs them)"
        )
    print(
        f"{'size':>5s} {'loss':14s} {'n_critic':>8s} {'G steps/s':>10s} {'images/s':>9s} {'vs dcgan':>9s} {'peak GiB':>9s}"
    )
    for size in gan_sizes:
        anchor = None
        for name in ("dcgan", default_loss):
            r = measure(name, size, gan_batch, steps, device, widths)
            anchor = anchor or r["images_per_s"]
            print(
                f"{size:5d} {name:14s} {r['n_critic']:8d} {1 / r['s_per_step']:10.3f} {r['images_per_s']:9.2f} "
                f"{r['images_per_s'] / anchor:8.2f}x {_fmt(r['peak_gib'], '9.2f')}",
                flush=True,
            )


if __name__ == "__main__":
    main()
