"""Edge energy of generated sprites against the real val frames (docs/training.md, "Outlines").

Sprites are outlines and flat colour fields: neighbouring pixels either match or jump. A generator that
averages edges into shading has less of both. Two figures per image set, each also as a ratio to the real
val frames (the anchor, printed first):

- ``edge``: the mean absolute difference between horizontally and vertically neighbouring pixels, per
  channel, in [-1, 1] units;
- ``strong``: the share of neighbour pairs whose difference exceeds 0.5 (a quarter of the range): hard
  edges such as an outline against its fill or the background.

It measures sharpness, not realism: noise or a hatched texture would score high too, so read it beside the
sample grids and the judge. Generated sets are 500 samples of the run's mixture (seed 1), through the
generator named after the colon: ``step2`` (``pretrain/final.pt``) or a GAN checkpoint of
``poke sample --checkpoint`` (``best``, ``final``, ``last``)::

    OMP_NUM_THREADS=1 python bench/sharpness.py --manifest manifests/gen1 \\
        runs/e2e7:step2 runs/e2e7:best runs/e2e7:final
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokegan.data import load_manifest, make_loader  # noqa: E402
from pokegan.gmm import GaussianMixture  # noqa: E402
from pokegan.models.generator import Generator, GeneratorArgs  # noqa: E402
from pokegan.sampling import generate, load_run_sampler  # noqa: E402


def edge_figures(x: torch.Tensor) -> tuple[float, float]:
    """(edge, strong) of images ``[N, 3, S, S]`` in [-1, 1]."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs()  # [N, 3, S, S-1]
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs()  # [N, 3, S-1, S]
    edge = (dx.mean() + dy.mean()) / 2
    strong = ((dx.mean(1) > 0.5).float().mean() + (dy.mean(1) > 0.5).float().mean()) / 2
    return float(edge), float(strong)


def val_images(manifest_dir: Path, size: int) -> torch.Tensor:
    m = load_manifest(manifest_dir)
    rows = m.rows("val")
    kw = {"augment": False, "seed": 0, "num_workers": 0, "distributed": False, "rows": rows}
    return next(iter(make_loader(m, "val", size, len(rows), **kw)))[0]


def step2_generator(run: Path) -> Generator:
    state = torch.load(run / "pretrain" / "final.pt", weights_only=False)
    g = Generator(GeneratorArgs(**state["model_args"]["generator"]))
    g.load_state_dict(state["generator"])
    return g.eval().requires_grad_(False)


def samples(spec: str, n: int) -> tuple[str, torch.Tensor]:
    run_s, _, which = spec.partition(":")
    run, which = Path(run_s), which or "best"
    g = step2_generator(run) if which == "step2" else load_run_sampler(run, which)[0]
    z, _ = GaussianMixture.load(run / "gmm" / "gmm.pt").sample(n, torch.Generator().manual_seed(1))
    return f"{run}:{which}", generate(g, z)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--n", type=int, default=500, help="samples per generator")
    ap.add_argument("--size", type=int, default=32, help="image size of the real frames")
    ap.add_argument("runs", nargs="+", help="RUN:step2 | RUN:best | RUN:final | RUN:last")
    args = ap.parse_args()
    real = val_images(args.manifest, args.size)
    e0, s0 = edge_figures(real)
    print(f"{'real val frames (' + str(len(real)) + ')':40s} edge {e0:.4f} (1.00)  strong {s0:.4f} (1.00)")
    for spec in args.runs:
        name, x = samples(spec, args.n)
        e, s = edge_figures(x)
        print(f"{name:40s} edge {e:.4f} ({e / e0:.2f})  strong {s:.4f} ({s / s0:.2f})")


if __name__ == "__main__":
    main()
