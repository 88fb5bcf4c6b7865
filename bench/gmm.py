"""GMM fit time on synthetic step-1-like embeddings: ours (torch) vs scikit-learn, in one run.

    python bench/gmm.py            # 80k x 512, 10 components, full covariance (the issue's size)
    python bench/gmm.py --quick    # 20k x 128
    python bench/gmm.py --device cuda

Both fit the same data with the same components, tolerance, reg_covar, iteration cap and seed (both
initialise from k-means); the table shows fit
time, EM iterations, time per iteration, the mean log-likelihood of each, and ours/sklearn ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokegan.gmm import GMMFitConfig, fit_gmm  # noqa: E402


def synthetic_embeddings(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """A k-cluster mixture with random correlated covariances, standardised like BatchNorm output."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (k, d))
    labels = rng.integers(0, k, n)
    mix = rng.normal(0, 1 / np.sqrt(d), (k, d, d)) + np.eye(d)[None] * 0.7
    x = np.empty((n, d), np.float32)
    for j in range(k):
        idx = np.nonzero(labels == j)[0]
        x[idx] = centres[j] + rng.normal(0, 1, (len(idx), d)) @ mix[j].T
    return (x - x.mean(0)) / x.std(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k x 128 instead of 80k x 512")
    ap.add_argument("--n", type=int, default=None, help="rows (default 80000, quick 20000)")
    ap.add_argument("--dim", type=int, default=None, help="dimensions (default 512, quick 128)")
    ap.add_argument("--components", type=int, default=10, help="mixture components")
    ap.add_argument("--covariance", default="full", choices=["full", "diag"], help="covariance type")
    ap.add_argument("--max-iter", type=int, default=10, help="EM iteration cap for both")
    ap.add_argument("--float64", action="store_true", help="also time ours in float64")
    ap.add_argument("--device", default="auto", help="torch device for ours: auto | cpu | cuda")
    args = ap.parse_args()
    n = args.n or (20_000 if args.quick else 80_000)
    d = args.dim or (128 if args.quick else 512)
    x = synthetic_embeddings(n, d, args.components)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
        f", threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
    )
    print(
        f"data: {n} x {d}, {args.components} components, {args.covariance} covariance, max_iter {args.max_iter}"
    )

    from sklearn.mixture import GaussianMixture as SkGMM

    rows = []
    configs = [
        (
            "poke torch float32",
            GMMFitConfig(args.components, args.covariance, args.max_iter, device=args.device),
        )
    ]
    if args.float64:
        configs.append(
            (
                "poke torch float64",
                GMMFitConfig(
                    args.components, args.covariance, args.max_iter, device=args.device, dtype="float64"
                ),
            )
        )
    for label, cfg in configs:
        if cfg.device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        g = fit_gmm(x, cfg)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append((f"{label} ({g.meta['device']})", dt, g.meta["n_iter"], g.score(x)))

    t0 = time.perf_counter()
    sk = SkGMM(
        args.components,
        covariance_type=args.covariance,
        max_iter=args.max_iter,
        random_state=0,
    ).fit(x)
    dt = time.perf_counter() - t0
    rows.append(("sklearn GaussianMixture (anchor)", dt, int(sk.n_iter_), float(sk.score(x))))

    anchor = rows[-1]
    print(
        f"\n{'fit':38s} {'time s':>9s} {'iters':>6s} {'s/iter':>8s} {'mean LL':>12s} {'speed vs sklearn':>17s}"
    )
    for name, dt, it, ll in rows:
        ratio = anchor[1] / dt
        print(f"{name:38s} {dt:9.2f} {it:6d} {dt / max(it, 1):8.3f} {ll:12.4f} {ratio:16.2f}x")
    print(
        f"\nmean log-likelihood difference ours(float32) - sklearn: {rows[0][3] - anchor[3]:+.4f} nats/sample"
    )


if __name__ == "__main__":
    main()
