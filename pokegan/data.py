"""Reading manifests and feeding images: ``load_manifest`` and ``make_loader``.

The manifest contract (``poke build-manifest`` writes it)::

    manifests/NAME/manifest.parquet (and .csv)   image_id, path (relative to the dataset root), class_index,
                                                 class_name, split (train|val|test), source, source_id,
                                                 width, height, phash, sha256, frame
    manifests/NAME/classes.json                  {"catalog": str, "classes": [name0, name1, ...]}
    manifests/NAME/stats.json                    {"data_root": "/abs/dataset/dir", "manifest_sha256": "...", ...}

Images are decoded with Pillow (JPEG draft mode for fast downscaling), padded to a square with their corner
colour (sprites sit on a flat background; cropping would cut limbs off) and resized to the image size, as
uint8 ``[3, S, S]``. Batches are then augmented *as a batch* on the target device (random horizontal flip
and a conservative random resized crop, one affine ``grid_sample``) and scaled to [-1, 1]: the same code
serves JPEG batches from DataLoader workers and batches sliced out of the packed cache (:mod:`pokegan.cache`),
on the CPU or on the GPU.

Every loader yields ``(images [B,3,S,S] float in [-1, 1], labels [B] int64, rows [B] int64)`` where ``rows``
are positions in the manifest. Shuffling, class balancing and DDP sharding come from one seeded sampler
(:class:`EpochSampler`) whose order is a pure function of (seed, epoch): resuming mid-epoch replays it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from pokedata.errors import UserError
from pokedata.manifest_schema import REQUIRED_COLUMNS
from pokegan import device as dev
from pokegan.cache import CachedSource, open_cache
from pokegan.decode import JpegDataset, decode_image

SPLITS = ("train", "val", "test")


# ---- the manifest --------------------------------------------------------------------------------------
@dataclass
class Manifest:
    dir: Path
    df: object  # pandas.DataFrame, one row per image in manifest order (RangeIndex)
    classes: list[str]
    data_root: Path
    sha256: str  # recorded by build-manifest (stats.json): checkpoints compare it
    catalog: str = ""
    content_sha256: str = ""  # of the rows as read (image_id, path, class_index, split, in order)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.df)

    def rows(self, split: str | Sequence[str]) -> np.ndarray:
        """Row positions of a split (``train``, ``val``, ``test``, ``all`` or a list of splits)."""
        if isinstance(split, str):
            if split == "all":
                return np.arange(len(self.df))
            split = [split]
        bad = [s for s in split if s not in SPLITS]
        if bad:
            raise UserError(f"unknown split {bad[0]!r}", hint=f"use one of {', '.join(SPLITS)} or all")
        return np.flatnonzero(self.df["split"].isin(list(split)).to_numpy())

    def labels(self) -> np.ndarray:
        return self.df["class_index"].to_numpy(dtype=np.int64)

    def abs_paths(self) -> list[Path]:
        root = self.data_root
        return [root / p for p in self.df["path"].tolist()]


def _manifest_files(d: Path) -> tuple[Path, Path]:
    if d.is_file():
        d = d.parent
    parquet, csv = d / "manifest.parquet", d / "manifest.csv"
    if parquet.is_file():
        return d, parquet
    if csv.is_file():
        return d, csv
    raise UserError(
        f"--manifest {d} holds no manifest.parquet or manifest.csv",
        hint="build one with `poke build-manifest --name NAME` and pass manifests/NAME",
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def content_sha256(df) -> str:
    """A digest of the rows as they are: anything keyed by row position (the packed cache) must use it.

    ``stats.json``'s recorded hash does not change when someone edits or reorders manifest.parquet: a
    cache keyed by it served the old order's images under the new rows' labels (issue 11).
    """
    cols = df[["image_id", "path", "class_index", "split"]].astype(str)
    return hashlib.sha256(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes()).hexdigest()


def canonical_order(manifest: Manifest, rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted by (class_index, image_id): what samplers shuffle, so a seeded order and a seeded
    subset depend on the images, not on the manifest's row order."""
    rows = np.asarray(rows, dtype=np.int64)
    ids = manifest.df["image_id"].astype(str).to_numpy()[rows]
    return rows[np.lexsort((ids, manifest.labels()[rows]))]


def load_manifest(manifest_dir: Path | str, data_root: Path | str | None = None) -> Manifest:
    """Read and validate ``manifests/NAME/``; ``data_root`` overrides ``stats.json``'s dataset directory."""
    d, table = _manifest_files(Path(manifest_dir))
    try:
        df = pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)
    except Exception as exc:  # noqa: BLE001 - any reader failure: the file is unusable
        raise UserError(
            f"{table} could not be read ({exc})", hint="rebuild it with `poke build-manifest`"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(
            f"{table} lacks columns {', '.join(missing)}", hint="rebuild it with `poke build-manifest`"
        )
    classes_path = d / "classes.json"
    if not classes_path.is_file():
        raise UserError(f"{classes_path} is missing", hint="rebuild the manifest with `poke build-manifest`")
    meta = json.loads(classes_path.read_text(encoding="utf-8"))
    classes = [str(c) for c in meta.get("classes", [])]
    stats_path = d / "stats.json"
    if not stats_path.is_file() and data_root is None:
        raise UserError(
            f"{d} has no stats.json: its `poke build-manifest` did not finish (stats.json is written last)",
            hint="rerun `poke build-manifest`, or pass --data-root DATASET_DIR to train on it as it is",
        )
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.is_file() else {}
    if len(df) == 0:
        raise UserError(f"{table} has no images", hint="fetch and clean images, then rebuild the manifest")
    if df["class_index"].isna().any():
        raise UserError(
            f"{table} has images without a class_index", hint="rebuild the manifest with labelled images"
        )
    df = df.reset_index(drop=True)
    df["class_index"] = df["class_index"].astype("int64")
    if len(classes) < 1 or df["class_index"].min() < 0 or df["class_index"].max() >= len(classes):
        raise UserError(
            f"{table}: class_index outside 0..{len(classes) - 1} of {classes_path}",
            hint="the manifest and classes.json disagree: rebuild the manifest",
        )
    if "class_name" in df.columns:  # every row's name must be its index's class in classes.json
        names = df["class_name"].astype(str).to_numpy()
        wrong = np.flatnonzero(names != np.asarray(classes, dtype=object)[df["class_index"].to_numpy()])
        if len(wrong):
            i = int(wrong[0])
            raise UserError(
                f"{table}: row {i} has class_name {names[i]!r} but class_index {int(df['class_index'][i])} is "
                f"{classes[int(df['class_index'][i])]!r} in {classes_path} ({len(wrong)} rows disagree)",
                hint="the manifest was edited or mixed with another one: rebuild it with `poke build-manifest`",
            )
    bad = sorted(set(df["split"].astype(str)) - set(SPLITS))
    if bad:
        raise UserError(f"{table}: unknown split values {bad}", hint="splits must be train, val or test")
    root = data_root or stats.get("data_root")
    if not root:
        raise UserError(f"{stats_path} records no data_root", hint="pass --data-root DATASET_DIR")
    root = Path(root)
    if not root.is_dir():
        raise UserError(
            f"the dataset directory {root} does not exist",
            hint="pass --data-root pointing at the dataset the manifest was built from",
        )
    sha = str(stats.get("manifest_sha256") or file_sha256(table))
    return Manifest(
        content_sha256=content_sha256(df),
        dir=d.resolve(),
        df=df,
        classes=classes,
        data_root=root.resolve(),
        sha256=sha,
        catalog=str(meta.get("catalog", "")),
    )


def stratified_subset(rows: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` of ``rows``, the same fraction of every class (at least one each), seeded; in the
    order of ``rows`` (pass them in :func:`canonical_order` for a choice independent of the row order)."""
    if n <= 0 or n >= len(rows):
        return rows
    rng = np.random.default_rng(seed)
    frac = n / len(rows)
    keep = []
    for c in np.unique(labels[rows]):
        rc = np.flatnonzero(labels[rows] == c)  # positions in rows
        k = max(1, int(round(len(rc) * frac)))
        keep.append(rng.choice(rc, min(k, len(rc)), replace=False))
    pos = np.sort(np.concatenate(keep))
    if len(pos) > n:
        pos = np.sort(rng.choice(pos, n, replace=False))
    return rows[pos]


def reference_rows(manifest: Manifest, n: int, seed: int, split: str | None = None) -> np.ndarray:
    """The reference sample of every metric: ``min(n, len(split))`` rows, class-stratified and seeded.

    ``split`` defaults to ``val`` (``train`` when val has fewer than 2 rows). Each class gets its share of
    ``n`` (largest remainders; ties broken by the seed); rows are chosen within a class by the seed among
    the class's rows sorted by ``image_id``. So the sample depends on (the set of images, ``n``, ``seed``),
    never on the manifest's row order, and it comes back sorted by (class, image_id).
    """
    if split is None:
        split = "val" if len(manifest.rows("val")) >= 2 else "train"
    rows = manifest.rows(split)
    if len(rows) == 0:
        raise UserError(f"the {split} split of {manifest.dir} is empty", hint="rebuild the manifest")
    labels = manifest.labels()[rows]
    ids = manifest.df["image_id"].astype(str).to_numpy()[rows]
    order = np.lexsort((ids, labels))  # by class, then image_id: independent of the row order
    rows, labels = rows[order], labels[order]
    if n >= len(rows):
        return rows
    rng = np.random.default_rng(seed)
    classes, starts, counts = np.unique(labels, return_index=True, return_counts=True)
    quota = counts * (n / len(rows))
    take = np.floor(quota).astype(np.int64)
    remainder = quota - take
    tie = rng.permutation(len(classes))
    extra = np.lexsort((tie, -remainder))[: n - int(take.sum())]
    take[extra] += 1
    keep = [
        rows[s : s + c][np.sort(rng.choice(c, k, replace=False))]
        for s, c, k in zip(starts, counts, take, strict=True)
        if k
    ]
    return np.concatenate(keep)


# ---- decoding: pokegan/decode.py (the packed cache decodes with it too) ------------------------------
# ---- sampling ------------------------------------------------------------------------------------------
class EpochSampler(torch.utils.data.Sampler):
    """Seeded order over ``rows`` per epoch: shuffled or not, class-balanced or not, sharded for DDP.

    The order is a pure function of (seed, epoch); ``set_epoch(epoch, start=k)`` skips the first ``k``
    samples of this rank's share (mid-epoch resume). Without ``set_epoch`` calls the epoch advances on every
    new iteration. Under DDP every rank gets ``ceil(n / world)`` samples (the order is padded by wrapping).
    """

    def __init__(
        self,
        rows: np.ndarray,
        *,
        shuffle: bool,
        seed: int,
        weights: np.ndarray | None = None,
        rank: int = 0,
        world: int = 1,
    ):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.shuffle, self.seed, self.weights, self.rank, self.world = shuffle, seed, weights, rank, world
        self.epoch, self.start, self._pending, self._auto = 0, 0, False, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start, self._pending = int(epoch), int(start), True

    def resolve(self) -> int:
        """Fix the epoch of the next iteration (the next automatic one unless set_epoch was called)."""
        if not self._pending:
            self.epoch, self.start, self._pending = self._auto, 0, True
        self._auto = self.epoch + 1
        return self.epoch

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.rows)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.weights is not None:
            idx = torch.multinomial(
                torch.as_tensor(self.weights, dtype=torch.float64), n, True, generator=g
            ).numpy()
        elif self.shuffle:
            idx = torch.randperm(n, generator=g).numpy()
        else:
            idx = np.arange(n)
        per = math.ceil(n / self.world)
        if per * self.world > n:
            idx = np.resize(idx, per * self.world)  # wrap around so every rank gets the same count
        return self.rows[idx[self.rank :: self.world]]

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.world) - self.start

    def __iter__(self) -> Iterator[int]:
        self.resolve()
        self._pending = False
        yield from self.order(self.epoch)[self.start :].tolist()


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights making every present class equally likely."""
    counts = np.bincount(labels)
    return 1.0 / counts[labels]


# ---- augmentation (batched, any device) ----------------------------------------------------------------
def to_unit(x: Tensor) -> Tensor:
    """uint8 ``[B,3,S,S]`` -> float in [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


def augment_batch(x: Tensor, generator: torch.Generator, crop_scale: float = 0.85) -> Tensor:
    """uint8 ``[B,3,S,S]`` -> float [-1, 1]: random horizontal flip + random resized crop, per image.

    The crop keeps ``U(crop_scale, 1)`` of the area with an aspect ratio in [0.9, 1.1], resampled bilinearly
    back to ``S x S``; it never leaves the image. ``crop_scale >= 1``: flips only, exact pixels (no crop,
    no aspect jitter; what the GAN steps use). Random numbers come from ``generator`` (CPU) so the
    augmentation is seeded and identical on CPU and GPU.
    """
    b, _, h, w = x.shape
    if crop_scale >= 1.0:
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return to_unit(x)
    area = torch.empty(b).uniform_(crop_scale, 1.0, generator=generator)
    log_r = torch.empty(b).uniform_(math.log(0.9), math.log(1.1), generator=generator)
    r = log_r.exp()
    sx = (area * r).sqrt().clamp(max=1.0)
    sy = (area / r).sqrt().clamp(max=1.0)
    tx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - sx)
    ty = (torch.rand(b, generator=generator) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    theta = theta.to(x.device)
    grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)  # [B, S, S, 2]
    return F.grid_sample(to_unit(x), grid, mode="bilinear", padding_mode="border", align_corners=False)


# ---- loaders -------------------------------------------------------------------------------------------
class BatchLoader:
    """Uint8 batches from a source (JPEG DataLoader or packed cache) -> device -> augmented float batches."""

    def __init__(
        self, source, sampler: EpochSampler, *, augment: bool, crop_scale: float, seed: int, device, n_batches
    ):
        self.source, self.sampler = source, sampler
        self.augment, self.crop_scale, self.seed = augment, crop_scale, seed
        self.device = torch.device(device) if device is not None else None
        self._n_batches = n_batches

    def __len__(self) -> int:
        return self._n_batches()

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.sampler.set_epoch(epoch, start_batch * self.batch_size)

    @property
    def batch_size(self) -> int:
        return self.source.batch_size

    def __iter__(self):
        epoch = self.sampler.resolve()
        first = self.sampler.start // self.batch_size
        g = torch.Generator()
        for i, (x, y, rows) in enumerate(self.source, start=first):
            # augmentation randomness is a pure function of (seed, epoch, rank, batch): resume replays it
            g.manual_seed((self.seed * 7_919 + epoch * 104_729 + self.sampler.rank * 15_485_863 + i) % 2**63)
            if self.device is not None:
                x = x.to(self.device, non_blocking=True)
            x = augment_batch(x, g, self.crop_scale) if self.augment else to_unit(x)
            yield x, y, rows


def make_loader(
    manifest: Manifest,
    split: str | Sequence[str],
    image_size: int,
    batch_size: int,
    *,
    augment: bool,
    seed: int,
    num_workers: int,
    distributed: bool,
    use_cache: bool = False,
    device: torch.device | str | None = None,
    shuffle: bool | None = None,
    drop_last: bool | None = None,
    balanced: bool = False,
    max_images: int = 0,
    crop_scale: float = 0.85,
    cache_dir: Path | str | None = None,
    cache_on_gpu: bool = True,
    rows: np.ndarray | None = None,
) -> BatchLoader:
    """Batches ``(images [B,3,S,S] in [-1,1], labels [B], manifest rows [B])`` of a split.

    ``shuffle`` and ``drop_last`` default to ``augment`` (training). ``distributed`` shards the rows over
    the torchrun ranks. ``use_cache`` reads the packed uint8 cache (built on first use, on rank 0); with a
    CUDA ``device`` it is copied to GPU memory when it fits and augmentation runs there. ``device`` given:
    batches arrive on it (``None``: CPU). ``max_images`` keeps a seeded class-stratified subset.
    """
    shuffle = augment if shuffle is None else shuffle
    drop_last = augment if drop_last is None else drop_last
    labels = manifest.labels()
    if rows is None:
        rows = canonical_order(manifest, manifest.rows(split))
        rows = stratified_subset(rows, labels, max_images, seed)
    if len(rows) == 0:
        raise UserError(
            f"the {split} split of {manifest.dir} is empty", hint="rebuild the manifest with that split"
        )
    rank, world = (dev.rank(), dev.world_size()) if distributed else (0, 1)
    if drop_last and len(rows) < 2 * world:  # training: BatchNorm needs 2 images per batch
        raise UserError(
            f"the {split} split of {manifest.dir} has {len(rows)} image(s); training needs at least "
            f"{2 * world}" + (f" ({world} processes x 2)" if world > 1 else ""),
            hint=f"add images to the {split} split (or rebuild the manifest so it gets more)",
        )
    if drop_last and math.ceil(len(rows) / world) < batch_size:
        batch_size = max(2, math.ceil(len(rows) / world))  # tiny sets: one full batch rather than none
    weights = balanced_weights(labels)[rows] if balanced else None
    sampler = EpochSampler(rows, shuffle=shuffle, seed=seed, weights=weights, rank=rank, world=world)
    device = torch.device(device) if device is not None else None
    if use_cache:
        cache = open_cache(manifest, image_size, cache_dir=cache_dir, num_workers=num_workers)
        on_gpu = device is not None and device.type == "cuda" and cache_on_gpu
        source = CachedSource(
            cache, labels, sampler, batch_size, drop_last, device=device if on_gpu else None
        )
    else:
        source = torch.utils.data.DataLoader(
            JpegDataset(manifest.abs_paths(), labels, image_size),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            drop_last=drop_last,
            pin_memory=device is not None and device.type == "cuda",
            persistent_workers=num_workers > 0,
            prefetch_factor=4 if num_workers > 0 else None,
        )

    def n_batches() -> int:
        n = len(sampler)
        return n // batch_size if drop_last else math.ceil(n / batch_size)

    return BatchLoader(
        source, sampler, augment=augment, crop_scale=crop_scale, seed=seed, device=device, n_batches=n_batches
    )


def loader_from_config(
    manifest: Manifest,
    split: str,
    data,
    *,
    train: bool,
    device=None,
    distributed=None,
    rows=None,
    augment: bool | None = None,
):
    """``make_loader`` from a :class:`pokegan.config.DataConfig` (training: shuffled, subset, and augmented
    when ``augment``, which defaults to ``data.augment``; a step with its own switch passes it)."""
    return make_loader(
        manifest,
        split,
        data.image_size,
        data.batch_size,
        augment=train and (data.augment if augment is None else augment),
        shuffle=train,
        drop_last=train,
        seed=data.seed,
        num_workers=data.num_workers,
        distributed=dev.is_distributed() if distributed is None else distributed,
        use_cache=data.use_cache,
        device=device,
        balanced=train and data.balanced,
        max_images=data.max_images if split == "train" else 0,
        crop_scale=data.crop_scale,
        cache_dir=data.cache_dir or None,
        cache_on_gpu=data.cache_on_gpu,
        rows=rows,
    )


__all__ = [
    "BatchLoader",
    "EpochSampler",
    "JpegDataset",
    "Manifest",
    "augment_batch",
    "balanced_weights",
    "canonical_order",
    "content_sha256",
    "decode_image",
    "load_manifest",
    "loader_from_config",
    "make_loader",
    "reference_rows",
    "stratified_subset",
    "to_unit",
]
