"""The packed image cache: every manifest image decoded once per resolution into a uint8 memmap.

::

    CACHE_DIR/<content sha256[:16]>-<S>px/images.npy    uint8 [N, 3, S, S], rows in manifest order
    CACHE_DIR/<content sha256[:16]>-<S>px/meta.json    {"content_sha256", "manifest_sha256", "manifest_dir",
                                                          "image_size", "n", "filled", "complete"}

``CACHE_DIR`` defaults to ``DATA_ROOT/cache/packed``. The folder name carries the digest of the manifest's
rows as read (:func:`pokegan.data.content_sha256`), not the hash recorded in ``stats.json``: a rebuilt,
edited or reordered manifest gets a new cache (older caches of the same manifest folder are removed). Building is
resumable: rows are decoded in chunks with DataLoader workers, the memmap is flushed, then ``filled`` is
advanced in ``meta.json`` (atomically); a kill loses at most one chunk. Under torchrun rank 0 builds while
the others wait at a barrier.

Epochs then slice batches straight out of the memmap (the OS page cache keeps it in RAM); on a GPU, when it
fits in a quarter of the free memory, the whole array is copied there and batches never leave the device.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pokedata.log import console
from pokedata.store import atomic_write_text
from pokegan import device as dev
from pokegan.decode import JpegDataset

CHUNK = 1024


@dataclass
class PackedCache:
    dir: Path
    images: np.ndarray  # uint8 memmap [N, 3, S, S]
    image_size: int

    @property
    def nbytes(self) -> int:
        return int(self.images.nbytes)


def _key(manifest) -> str:
    return manifest.content_sha256 or manifest.sha256


def cache_root(manifest, cache_dir: Path | str | None) -> Path:
    return Path(cache_dir) if cache_dir else manifest.data_root / "cache" / "packed"


def _read_meta(d: Path) -> dict:
    try:
        return json.loads((d / "meta.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _remove_stale(root: Path, manifest, keep: Path) -> None:
    """Delete caches of the same manifest folder built from an older manifest (a different hash)."""
    if not root.is_dir():
        return
    for d in root.iterdir():
        if d == keep or not d.is_dir():
            continue
        meta = _read_meta(d)
        if meta.get("manifest_dir") == str(manifest.dir) and meta.get("content_sha256") != _key(manifest):
            shutil.rmtree(d, ignore_errors=True)
            console.print(f"[dim]cache: removed {d} (built from an older manifest)[/]")


def build_cache(
    manifest, image_size: int, *, cache_dir: Path | str | None = None, num_workers: int = 2
) -> PackedCache:
    """Decode every manifest image at ``image_size`` into the packed cache (resumes a partial build)."""
    root = cache_root(manifest, cache_dir)
    d = root / f"{_key(manifest)[:16]}-{image_size}px"
    d.mkdir(parents=True, exist_ok=True)
    _remove_stale(root, manifest, d)
    n, shape = len(manifest), (len(manifest), 3, image_size, image_size)
    meta = _read_meta(d)
    path = d / "images.npy"
    fresh = not (meta and meta.get("content_sha256") == _key(manifest) and path.is_file())
    if fresh:
        meta = {
            "content_sha256": _key(manifest),
            "manifest_sha256": manifest.sha256,
            "manifest_dir": str(manifest.dir),
            "image_size": image_size,
            "n": n,
            "filled": 0,
            "complete": False,
        }
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        atomic_write_text(d / "meta.json", json.dumps(meta, indent=2))
    else:
        arr = np.load(path, mmap_mode="r+")
    if not meta["complete"]:
        start = int(meta["filled"])
        dataset = JpegDataset(manifest.abs_paths(), manifest.labels(), image_size)
        rows = list(range(start, n))
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(dataset, rows), batch_size=64, num_workers=num_workers, shuffle=False
        )
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*cols, console=console, transient=True) as progress:
            task = progress.add_task(
                f"cache: decoding {n} images at {image_size} px", total=n, completed=start
            )
            filled = start
            for x, _, r in loader:
                arr[r[0].item() : r[-1].item() + 1] = x.numpy()
                filled = r[-1].item() + 1
                progress.update(task, completed=filled)
                if filled - meta["filled"] >= CHUNK or filled == n:
                    arr.flush()
                    meta["filled"] = filled
                    meta["complete"] = filled == n
                    atomic_write_text(d / "meta.json", json.dumps(meta, indent=2))
        console.print(f"cache: {n} images at {image_size} px in {d}")
    del arr
    return PackedCache(d, np.load(path, mmap_mode="r"), image_size)


def open_cache(
    manifest, image_size: int, *, cache_dir: Path | str | None = None, num_workers: int = 2
) -> PackedCache:
    """The packed cache of a manifest at a resolution, built on first use (on rank 0 only under torchrun)."""
    if dev.is_main():
        cache = build_cache(manifest, image_size, cache_dir=cache_dir, num_workers=num_workers)
    dev.barrier()
    if not dev.is_main():
        d = cache_root(manifest, cache_dir) / f"{_key(manifest)[:16]}-{image_size}px"
        cache = PackedCache(d, np.load(d / "images.npy", mmap_mode="r"), image_size)
    return cache


class CachedSource:
    """Batches ``(uint8 [B,3,S,S], labels [B], rows [B])`` sliced from the cache in the sampler's order."""

    def __init__(
        self, cache: PackedCache, labels: np.ndarray, sampler, batch_size: int, drop_last: bool, device=None
    ):
        self.cache, self.sampler, self.batch_size, self.drop_last = cache, sampler, batch_size, drop_last
        self.labels = torch.from_numpy(np.array(labels, dtype=np.int64))
        self.images: torch.Tensor | None = None
        if device is not None and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if cache.nbytes < free // 4:
                self.images = torch.from_numpy(np.ascontiguousarray(cache.images)).to(device)
                console.print(f"[dim]cache: {cache.nbytes / 2**30:.2f} GiB held in GPU memory[/]")

    def __iter__(self):
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for i in range(0, stop, self.batch_size):
            rows = order[i : i + self.batch_size]
            r = torch.from_numpy(rows)
            if self.images is not None:
                x = self.images.index_select(0, r.to(self.images.device))
            else:
                x = torch.from_numpy(self.cache.images[np.sort(rows)][np.argsort(np.argsort(rows))])
            yield x, self.labels[r], r


__all__ = ["CachedSource", "PackedCache", "build_cache", "cache_root", "open_cache"]
