"""Step 3a, ``poke train gmm``: fit a Gaussian mixture to the step-1 embeddings.

Reads ``RUN/embeddings/embeddings.npy`` (train and val: "all embeddings"), fits one mixture, or one per
candidate component count and keeps the lowest BIC, and writes ``RUN/gmm/``::

    gmm.pt                 the chosen mixture (pokegan.gmm.GaussianMixture.save)
    candidates/k010.pt     every fitted candidate (a resumed BIC search skips the ones already fitted)
    bic.json               candidates: components, BIC, mean log-likelihood, iterations, seconds, and how
                           far the mixture's samples lie from the nearest embedding (``sample_nn``) against
                           how far embeddings lie from each other (``real_nn``)
    pca.png                embeddings vs mixture samples on the embeddings' first two principal axes
    config.toml, done.json

The GAN step then samples its latents from ``gmm.pt``.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_bytes, atomic_write_text
from pokegan.config import config_to_toml
from pokegan.gmm import GaussianMixture, fit_gmm
from pokegan.runs import RunDir, open_run
from pokegan.steps.gmm_config import GMMConfig  # torch-free: the CLI reads its fields


def load_embeddings(run) -> np.ndarray:
    """The step-1 embeddings ``[N, 512]`` as float32; a clear error when the embed step has not run."""
    path = Path(run.step_dir("embeddings")) / "embeddings.npy"
    if not path.is_file():
        raise UserError(f"no embeddings at {path}", hint="run `poke train embed --run RUN` first")
    return np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32)


NN_QUERIES = 1000  # samples (and embeddings) measured by the nearest-neighbour yardstick
NN_REFERENCE = 20_000  # at most this many embeddings to search


def nearest_distance(queries: torch.Tensor, ref: torch.Tensor, *, exclude_self: bool = False) -> float:
    """Mean Euclidean distance from each query ``[Q, D]`` to its nearest row of ``ref [N, D]``.

    ``exclude_self``: the queries are the first ``Q`` rows of ``ref``, each skips itself.
    """
    out = []
    for i in range(0, len(queries), 256):
        d = torch.cdist(queries[i : i + 256].double(), ref.double())  # [q, N]
        if exclude_self:
            d[torch.arange(len(d)), torch.arange(i, i + len(d))] = float("inf")
        out.append(d.min(1).values)
    return float(torch.cat(out).mean())


def nn_reference(x: np.ndarray, seed: int) -> tuple[torch.Tensor, float]:
    """The embeddings the yardstick searches (a seeded subset of at most ``NN_REFERENCE``) and ``real_nn``:
    the mean distance from an embedding to its nearest other one (NaN with a single embedding)."""
    ref = torch.from_numpy(x[np.sort(np.random.default_rng(seed).permutation(len(x))[:NN_REFERENCE])])
    q = min(NN_QUERIES, len(ref) - 1)
    return ref, nearest_distance(ref[:q], ref, exclude_self=True) if q > 0 else float("nan")


def sample_nn(g: GaussianMixture, ref: torch.Tensor, seed: int) -> float:
    """Do the mixture's samples look like embeddings? The mean distance from a sample to the nearest
    embedding of ``ref``. A mixture whose samples sit far beyond ``real_nn`` draws blends between the
    images, which the generator then has to draw (docs/training.md: 4 full-covariance components on the
    gen-1 sprites, 19.9 against 2.9)."""
    samples, _ = g.sample(NN_QUERIES, torch.Generator().manual_seed(seed))
    return nearest_distance(samples.float(), ref)


def plot_pca(x: np.ndarray, samples: np.ndarray, path: Path, title: str) -> Path:
    """Scatter of embeddings and mixture samples on the embeddings' first two principal axes."""

    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = vt[:2].T  # [D, 2]
    px, ps = (x - mean) @ axes, (samples - mean) @ axes
    fig = Figure(figsize=(10, 4.6))
    ax = fig.subplots(1, 2, sharex=True, sharey=True)
    ax[0].scatter(px[:, 0], px[:, 1], s=3, alpha=0.4, c="tab:blue")
    ax[0].set_title(f"embeddings (n={len(x)})")
    ax[1].scatter(ps[:, 0], ps[:, 1], s=3, alpha=0.4, c="tab:orange")
    ax[1].set_title(f"GMM samples (n={len(samples)})")
    for a in ax:
        a.set_xlabel("PC 1")
    ax[0].set_ylabel("PC 2")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def run_gmm(cfg: GMMConfig, run_dir, *, resume: bool = False) -> dict:
    """Fit (or, with ``bic``, select) the mixture; resumable per candidate; ``done.json`` written last.

    A started (not finished) gmm folder is refused unless ``resume``.
    """

    cfg.validate()
    run = run_dir if isinstance(run_dir, RunDir) else open_run(run_dir, resume=True, create=False)
    if run.is_done("gmm"):
        console.print("[dim]gmm: done.json exists, skipping[/]")
        return run.done_summary("gmm")
    out, _ = run.begin_step("gmm", resume=resume)
    atomic_write_text(out / "config.toml", config_to_toml(cfg))
    x_all = load_embeddings(run)
    x = x_all
    if cfg.max_rows and len(x_all) > cfg.max_rows:
        idx = np.random.default_rng(cfg.fit.seed).choice(len(x_all), cfg.max_rows, replace=False)
        x = x_all[np.sort(idx)]
    rows, fitted = [], {}
    ref, real_nn = nn_reference(x, cfg.fit.seed)  # one reference for every candidate
    t_start = time.perf_counter()
    for k in cfg.candidates():
        path = out / "candidates" / f"k{k:03d}.pt"
        if path.is_file():
            g = GaussianMixture.load(path)
            console.print(f"gmm: k={k} already fitted (resumed)")
        else:
            t0 = time.perf_counter()
            with console.status(f"gmm: fitting k={k} ({cfg.fit.covariance}) on {len(x)} x {x.shape[1]}"):
                g = fit_gmm(x, cfg.fit_config(k))
            g.meta["seconds"] = time.perf_counter() - t0
            g.save(path)
        bic = g.bic(x)
        fitted[k] = g
        rows.append(
            {
                "components": k,
                "bic": bic,
                "mean_log_likelihood": g.score(x),
                "n_iter": g.meta.get("n_iter"),
                "converged": g.meta.get("converged"),
                "seconds": g.meta.get("seconds"),
                "sample_nn": sample_nn(g, ref, cfg.fit.seed),
                "real_nn": real_nn,
            }
        )
        r = rows[-1]
        console.print(
            f"gmm: k={k} BIC {bic:.1f} mean LL {r['mean_log_likelihood']:.3f}; samples lie "
            f"{r['sample_nn']:.2f} from the nearest embedding (embeddings from each other: "
            f"{r['real_nn']:.2f})"
        )
    best = min(rows, key=lambda r: r["bic"])
    chosen = fitted[best["components"]]
    chosen.meta.update({"bic": best["bic"], "n_rows": len(x), "dim": int(x.shape[1])})
    chosen.save(out / "gmm.pt")
    atomic_write_text(
        out / "bic.json", json.dumps({"chosen": best["components"], "candidates": rows}, indent=2)
    )
    n_plot = min(cfg.plot_points, len(x_all))
    pick = np.random.default_rng(cfg.fit.seed).choice(len(x_all), n_plot, replace=False)
    samples, _ = chosen.sample(n_plot, torch.Generator().manual_seed(cfg.fit.seed))
    plot_pca(
        x_all[pick],
        samples.numpy(),
        out / "pca.png",
        f"GMM k={best['components']} ({cfg.fit.covariance}), 2-D PCA",
    )
    summary = {
        "components": best["components"],
        "covariance": cfg.fit.covariance,
        "bic": best["bic"],
        "mean_log_likelihood": best["mean_log_likelihood"],
        "sample_nn": best["sample_nn"],
        "real_nn": best["real_nn"],
        "n_rows": len(x),
        "seconds": time.perf_counter() - t_start,
        "gmm": str(out / "gmm.pt"),
        "pca_plot": str(out / "pca.png"),
    }
    run.mark_done("gmm", summary)
    return summary
