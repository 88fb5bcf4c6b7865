"""The step-2 figures of docs/training.md ("A step 2 that draws the species"), each from one command.

    python bench/step2.py invariance --run runs/e2e3 --manifest manifests/gen1
        cosine / distance between a val frame's embedding and its mirror image, a 3-px shift, another frame
        of its species, another species
    python bench/step2.py recon --manifest manifests/gen1 runs/e2e2 runs/e2e3
        reconstruction L1 (train / val, images as they are) of each run's pretrain/final.pt
    python bench/step2.py harness --run runs/e2e3 --manifest manifests/gen1 --name lin_lr1e3 \\
        --steps 800 --lr 1e-3 --output linear
        the step-2 loss on fixed, un-augmented embeddings for N steps (batch 32, seed 0, warm-up + cosine),
        then L1 train / val; ``--pixel-l1``, ``--max-channels``/``--channel-base``, ``--betas`` for the
        other rows; prints the loss every 200 steps (a stalled run stays at ~3.2)

One thread is what the figures used (``OMP_NUM_THREADS=1``). The mixture table comes from the gmm step
itself: ``poke train gmm --run RUN --covariance diag --bic 16,64,128,256`` writes ``sample_nn`` per
candidate into ``RUN/gmm/bic.json`` (``--covariance full --bic 4`` for the first row).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokegan.data import load_manifest, make_loader  # noqa: E402
from pokegan.models.classifier import load_frozen_classifier  # noqa: E402
from pokegan.models.generator import Generator, GeneratorArgs  # noqa: E402
from pokegan.perceptual import PerceptualLoss  # noqa: E402
from pokegan.runs import RunDir  # noqa: E402


def split_images(manifest, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of ``split`` as it is (32 px, [-1, 1]) and its labels."""
    rows = manifest.rows(split)
    kw = {"augment": False, "seed": 0, "num_workers": 0, "distributed": False, "rows": rows}
    x, y, _ = next(iter(make_loader(manifest, split, 32, len(rows), **kw)))
    return x, y


def invariance(args) -> None:
    c = load_frozen_classifier(RunDir(args.run), "cpu")
    x, y = split_images(load_manifest(args.manifest), "val")
    with torch.no_grad():
        z, zf, zs = c.embed(x), c.embed(x.flip(3)), c.embed(torch.roll(x, 3, dims=3))
    n = F.normalize
    eye = torch.eye(len(y), dtype=torch.bool)
    same = (y[:, None] == y[None]) & ~eye
    cos, dist = n(z) @ n(z).T, torch.cdist(z, z)
    rows = {
        "mirror image": ((n(z) * n(zf)).sum(1).mean(), (z - zf).norm(dim=1).mean()),
        "3-px shift": ((n(z) * n(zs)).sum(1).mean(), (z - zs).norm(dim=1).mean()),
        "another frame, same species": (cos[same].mean(), dist[same].mean()),
        "another species": (cos[~same & ~eye].mean(), dist[~same & ~eye].mean()),
    }
    for name, (cv, dv) in rows.items():
        print(f"{name:30s} cosine {float(cv):.3f}  distance {float(dv):.1f}")


def load_generator(run: Path) -> Generator:
    state = torch.load(run / "pretrain" / "final.pt", weights_only=False)
    g = Generator(GeneratorArgs(**state["model_args"]["generator"]))
    g.load_state_dict(state["generator"])
    return g.eval()


@torch.no_grad()
def l1(g, c, x: torch.Tensor) -> float:
    return F.l1_loss(torch.cat([g(c.embed(x[i : i + 256])) for i in range(0, len(x), 256)]), x).item()


def recon(args) -> None:
    m = load_manifest(args.manifest)
    (xt, _), (xv, _) = split_images(m, "train"), split_images(m, "val")
    for run in args.runs:
        g, c = load_generator(run), load_frozen_classifier(RunDir(run), "cpu")
        print(
            json.dumps(
                {"run": str(run), "l1_train": round(l1(g, c, xt), 4), "l1_val": round(l1(g, c, xv), 4)}
            )
        )


def harness(args) -> None:
    torch.manual_seed(0)
    m = load_manifest(args.manifest)
    (xt, _), (xv, _) = split_images(m, "train"), split_images(m, "val")
    c = load_frozen_classifier(RunDir(args.run), "cpu")
    loss_fn = PerceptualLoss(c, (1, 1, 1, 1), args.pixel_l1)
    g_args = GeneratorArgs(
        image_size=32,
        channel_base=args.channel_base,
        max_channels=args.max_channels,
        dilate_from=64,
        upsample="bilinear",
        output=args.output,
    )
    G = Generator(g_args)
    opt = torch.optim.AdamW(G.parameters(), lr=args.lr, betas=tuple(args.betas), weight_decay=0)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for step in range(args.steps):
        lr = (
            args.lr
            * min(1, (step + 1) / 50)
            * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        )
        for group in opt.param_groups:
            group["lr"] = lr
        x = xt[torch.randint(0, len(xt), (32,), generator=gen)]
        with torch.no_grad():
            z, targets = loss_fn.encode(x)
        loss, _ = loss_fn(G(z), x, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0:
            print(f"step {step}: loss {loss.item():.4f}", flush=True)
    G.eval()
    out = {
        "name": args.name,
        "s_per_step": (time.perf_counter() - t0) / args.steps,
        "l1_train": round(l1(G, c, xt), 4),
        "l1_val": round(l1(G, c, xv), 4),
    }
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("invariance")
    a.add_argument("--run", type=Path, required=True)
    a.add_argument("--manifest", type=Path, required=True)
    r = sub.add_parser("recon")
    r.add_argument("--manifest", type=Path, required=True)
    r.add_argument("runs", type=Path, nargs="+")
    h = sub.add_parser("harness")
    h.add_argument("--run", type=Path, required=True, help="a run whose step 1 is done (its classifier)")
    h.add_argument("--manifest", type=Path, required=True)
    h.add_argument("--name", default="arm")
    h.add_argument("--steps", type=int, default=800)
    h.add_argument("--lr", type=float, default=2e-3)
    h.add_argument("--pixel-l1", type=float, default=1.0)
    h.add_argument("--output", default="tanh", choices=("tanh", "linear"))
    h.add_argument("--channel-base", type=int, default=1024)
    h.add_argument("--max-channels", type=int, default=128)
    h.add_argument("--betas", type=float, nargs=2, default=(0.5, 0.99))
    args = ap.parse_args()
    {"invariance": invariance, "recon": recon, "harness": harness}[args.cmd](args)


if __name__ == "__main__":
    main()
