"""``poke train embed``: encode every manifest image to 512-d with the frozen step-1 classifier.

Writes ``RUN/embeddings/``::

    embeddings.npy    [N, 512] float32 (or float16), row i = manifest row i
    index.parquet     image_id, split, class_index, row: aligned with embeddings.npy and the manifest
    config.toml, done.json

How the batch-statistics BatchNorm is handled: the classifier's embedding BatchNorm normalises by batch
statistics, so a raw forward pass would make an image's vector depend on its batch-mates. Encoding instead
uses *dataset* statistics frozen once, at the end of step 1 (mean and variance of the pooled features
over up to ``[classify] stats_images`` train images, saved in ``classifier/final.pt``). They are the one
source: step 2 encodes with the same ones, so the vectors the GMM is fitted to (here) and the vectors the
generator learns to decode (step 2) are the same function of an image. The embedding is a pure function
of the image, identical in any batch, in any order, on any number of
GPUs, and distributed like the training-time embeddings (the batch statistics estimate exactly these).

Encoding is fast (one forward pass per image), so a killed ``embed`` simply starts over: the arrays are
written under temporary names and renamed into place before ``done.json``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_writer, fsync_dir
from pokegan import device as dev
from pokegan.config import EmbedConfig
from pokegan.data import load_manifest, make_loader
from pokegan.loop import open_session, progress
from pokegan.models.classifier import load_frozen_classifier
from pokegan.runs import RunDir


def data_section(run) -> dict:
    """Step 1's resolved ``[data]`` section (image size, cache, data root) for the steps that follow it."""
    return dict(run.step_config("classifier").get("data", {}))


def run_embed(cfg: EmbedConfig, run: RunDir | Path | str, *, resume: bool = False) -> dict:
    """Encode every manifest row; returns the summary written to ``done.json``."""
    cfg.validate()
    s = open_session("embed", cfg, run, resume=resume)
    if s.done:
        return s.done_summary()
    run, out, device = s.run, s.dir, s.device
    t0 = time.perf_counter()
    data = data_section(run)
    manifest = load_manifest(run.manifest_dir, run.data_root)
    size = int(data.get("image_size") or run.image_size)
    model = load_frozen_classifier(run, device)

    def loader(rows):
        return make_loader(
            manifest,
            "all",
            size,
            cfg.batch_size,
            augment=False,
            shuffle=False,
            drop_last=False,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
            distributed=dev.is_distributed(),
            use_cache=bool(data.get("use_cache", False)),
            cache_dir=data.get("cache_dir") or None,
            device=device,
            rows=rows,
        )

    n = len(manifest)
    dtype = np.float16 if cfg.dtype == "float16" else np.float32
    partial = out / "embeddings.partial.npy"
    if dev.is_main():
        np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=(n, 512)).flush()
    dev.barrier()
    arr = np.load(partial, mmap_mode="r+")
    src = loader(np.arange(n))
    with progress(dev.is_main()) as bar, torch.no_grad():
        task = bar.add_task(f"embed: {n} images at {size} px", total=len(src), info="")
        for x, _, rows in src:
            with dev.autocast(device, cfg.amp):
                z = model.embed(x.to(device, non_blocking=True))  # [B, 512] float32 (frozen statistics)
            arr[rows.numpy()] = z.float().cpu().numpy().astype(dtype)
            bar.update(task, advance=1)
    arr.flush()
    del arr
    dev.barrier()
    summary = {"images": n, "dim": 512, "dtype": cfg.dtype, "image_size": size, "seconds": 0.0}
    if dev.is_main():
        final = np.load(partial, mmap_mode="r")
        if not np.isfinite(final).all():
            raise RuntimeError("non-finite embeddings: the classifier checkpoint is broken")
        summary.update(
            mean_norm=float(np.linalg.norm(final.astype(np.float32), axis=1).mean()),
            feature_mean_abs=float(np.abs(final.astype(np.float32).mean(0)).mean()),
            feature_std_mean=float(final.astype(np.float32).std(0).mean()),
        )
        del final
        os.replace(partial, out / "embeddings.npy")
        fsync_dir(out)
        index = manifest.df[["image_id", "split", "class_index"]].copy()
        index["row"] = np.arange(n)
        with atomic_writer(out / "index.parquet") as fh:
            index.to_parquet(fh, index=False)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        run.mark_done("embed", summary)
        console.print(f"embed: {n} x 512 {cfg.dtype} embeddings in {out / 'embeddings.npy'}")
    dev.barrier()
    return summary


def load_embedding_index(run) -> tuple[np.ndarray, object]:
    """(embeddings ``[N, 512]`` memmap, index DataFrame) of a run's finished embed step."""
    out = Path(run.step_dir("embed"))
    if not run.is_done("embed"):
        raise UserError(f"no finished embeddings in {out}", hint="run `poke train embed --run RUN` first")
    return np.load(out / "embeddings.npy", mmap_mode="r"), pd.read_parquet(out / "index.parquet")


__all__ = ["data_section", "load_embedding_index", "run_embed"]
