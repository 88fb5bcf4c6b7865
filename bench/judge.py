"""The judge's cost: training images/s of the judge (pokegan.judge) vs the step-1 classifier it sits beside.

    python bench/judge.py                 # 32 px, 256 images, CPU
    python bench/judge.py --device cuda

Anchor: one optimizer step of the step-1 classifier (ResNet-34 + embedding BatchNorm + head, AdamW) on
the same batch at the same size. Ours: one optimizer step of the judge (the narrow ResNet-18 of
``pokegan.models.judge_net`` at the default ``JudgeConfig``). Both timed over the same number of batches
after a warm-up, in one run; printed as images/s and as the ratio judge/anchor, plus the end-to-end
``train_judge`` wall time on a generated set (decoding, the BatchNorm recalibration and its val pass
included) and the seconds it implies for the 4,000-image x 6-epoch default.
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
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _steps_per_s(model, x, y, steps: int, device) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for i in range(steps + 2):
        if i == 2:  # two warm-up steps
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--images", type=int, default=256)
    args = ap.parse_args()
    from pokegan.data import load_manifest
    from pokegan.judge import JudgeConfig, train_judge
    from pokegan.models.classifier import EmbeddingClassifier
    from pokegan.models.judge_net import JudgeNet, JudgeNetArgs
    from tests.helpers.tiny_manifest import make_tiny_manifest

    device = torch.device(args.device)
    cfg = JudgeConfig()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    x = torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1
    y = torch.randint(0, 8, (args.batch,), device=device)
    anchor = _steps_per_s(EmbeddingClassifier(8).to(device), x, y, args.steps, device) * args.batch
    judge = _steps_per_s(JudgeNet(JudgeNetArgs(8, cfg.width)).to(device), x, y, args.steps, device)
    judge *= args.batch
    print(f"training images/s at {args.size} px, batch {args.batch}:")
    print(f"  anchor  step-1 classifier (ResNet-34)      {anchor:9.1f}")
    print(f"  ours    judge (ResNet-18, width {cfg.width})      {judge:9.1f}   x{judge / anchor:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        m = load_manifest(make_tiny_manifest(Path(tmp), n_classes=8, per_class=args.images // 8, size=64))
        t0 = time.perf_counter()
        state = train_judge(m, cfg, device)
        wall = time.perf_counter() - t0
    passes = state["info"]["train_images"] * cfg.epochs
    per_image = wall / passes
    print(
        f"train_judge end to end: {wall:.1f} s for {state['info']['train_images']} images x "
        f"{cfg.epochs} epochs ({per_image * 1e3:.1f} ms per image pass; val top-1 "
        f"{state['info']['val_top1']:.0%})"
    )
    print(
        f"  implied for the default cap ({cfg.max_train_images} images x {cfg.epochs} epochs): "
        f"{per_image * cfg.max_train_images * cfg.epochs / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
