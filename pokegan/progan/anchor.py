"""The class anchor's matches: which real image of its own class each fake is held to, and the L1.

The row anchor (``anchor_match = "row"``) pairs fake ``i`` with the real image of batch row ``i``, a random
frame of the same label. Over many steps its L1 pulls every sample of a class towards the per-pixel median
of that class's frames, whatever the latent: where frames differ (a sprite's animation, a pose) the median
flips between them pixel by pixel, a mottled interior, and ``z`` learns to change nothing.

``anchor_match = "nearest"`` compares each fake with *every* train image of its label (and their
mirror images when ``[data] augment`` flips the reals) and takes the smallest L1: a sample only has to be
close to one real frame, so its optimum is a crisp frame rather than a blend, and different latents may
settle on different frames (the "best of many" reconstruction loss; Bhattacharyya et al. 2018, and the
nearest-neighbour matching of IMLE, Li & Malik 2019).

``anchor_match = "cover"`` turns that match around (IMLE's own direction, Li & Malik 2019): the generator
step draws ``COVER_K`` fakes for each of the first ``B / COVER_K`` real images' labels, and each real image
is held to the *nearest of its candidates* (:func:`cover_l1`). Every real frame then has a sample pulled to
it, so different latents must draw different frames; "nearest" lets every latent of a class settle on the
same frame.

``anchor_match = "chamfer"`` averages the two directions (the symmetric nearest-neighbour, or Chamfer,
distance between the step's fakes and the class's frames): every fake near some frame, every real frame
near some fake.

:class:`ClassBank` holds the train split at the stage's size, pooled to ``anchor_size``, grouped by class
(at most ``MAX_PER_CLASS`` images of a class, a seeded choice), on the training device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pokegan.losses import anchor_l1

MAX_PER_CLASS = 128  # bank images per class (a seeded subset beyond it): bounds one step's [B, K, ...] work
# the [B, k', 3, s, s] difference is built k' bank images at a time: 4 MiB of fp32 on a CPU (a preset-sized
# step 1.1-1.3x faster at 16 px and ~11x at 32 px than with 128 MiB pieces: bench/anchor_bank.py), 256 MiB on
# a GPU (fewer kernel launches)
_CHUNK_ELEMS = {"cpu": 1 << 20, "cuda": 1 << 26}


COVER_K = 4  # "cover": candidate fakes per real image (the batch keeps its size: B / 4 real images' labels)
NEEDS_BANK = ("nearest", "chamfer")  # matches that compare with the stage's class bank
GROUPED = ("cover", "chamfer")  # matches whose generator step draws its labels in groups of COVER_K


def _pool(x: Tensor, size: int) -> Tensor:
    return F.adaptive_avg_pool2d(x, size) if 0 < size < x.shape[-1] else x


def cover_labels(y: Tensor, k: int = COVER_K) -> tuple[Tensor, int]:
    """The generator step's labels for "cover": the first ``m = B // k`` labels, each ``k`` times in a row
    (``[m * k]``), and ``k`` (less than ``COVER_K`` only for a batch smaller than it)."""
    k = max(1, min(k, len(y)))
    return y[: len(y) // k].repeat_interleave(k), k


def cover_l1(fake: Tensor, real: Tensor, k: int, size: int = 0) -> Tensor:
    """IMLE's reconstruction: ``fake [m * k, 3, S, S]`` holds ``k`` candidates for each of ``real[:m]``
    (candidates of row ``i`` at ``i * k ... i * k + k - 1``, drawn for its label); the mean over those real
    images of the L1 to their nearest candidate, compared at ``size`` (0: full size)."""
    m = len(fake) // k
    f = _pool(fake[: m * k].float(), size)
    f = f.reshape(m, k, *f.shape[1:])  # [m, k, 3, s, s]
    r = _pool(real[:m].float(), size)  # [m, 3, s, s]
    return (f - r[:, None]).abs().mean(dim=(2, 3, 4)).min(dim=1).values.mean()


class ClassBank:
    """Real images grouped by class; :meth:`nearest_l1` is the anchor's loss for a batch of fakes."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        size: int = 0,
        mirror: bool = False,
        seed: int = 0,
        max_per_class: int = MAX_PER_CLASS,
    ):
        """``images [N, 3, S, S]`` in [-1, 1] and their ``labels [N]``; ``size`` as ``anchor_size`` (0: full
        size); ``mirror`` adds each image's left-right mirror (the loader flips the reals); beyond
        ``max_per_class`` images a class keeps a seeded subset."""
        if images.ndim != 4 or labels.shape != images.shape[:1] or len(labels) == 0:
            raise ValueError(
                f"images [N, 3, S, S] and labels [N] expected, got {images.shape}, {labels.shape}"
            )
        images, labels = _pool(images.float(), size), labels.long()
        g = torch.Generator().manual_seed(seed)
        keep = []
        for c in labels.unique().tolist():
            idx = (labels == c).nonzero().squeeze(1)
            if len(idx) > max_per_class:
                idx = idx[torch.randperm(len(idx), generator=g)[:max_per_class].to(idx.device)].sort().values
            keep.append(idx)
        order = torch.cat(keep)  # grouped by class, classes ascending
        images, labels = images[order], labels[order]
        if mirror:  # each class's mirrors right after its images: the group stays contiguous
            groups = [torch.cat([images[labels == c], images[labels == c].flip(3)]) for c in labels.unique()]
            images = torch.cat(groups)
            labels = labels.unique().repeat_interleave(2 * torch.bincount(labels)[labels.unique()])
        n_classes = int(labels.max()) + 1
        self.images = images  # [N', 3, s, s]
        self.size = size
        self.counts = torch.bincount(labels, minlength=n_classes).to(images.device)  # [C]
        self.starts = (torch.cumsum(self.counts, 0) - self.counts).to(images.device)  # [C]

    def __len__(self) -> int:
        return len(self.images)

    def nearest_l1(self, fake: Tensor, labels: Tensor) -> Tensor:
        """Mean over the batch of :meth:`distances`: the anchor's loss, differentiable in ``fake``."""
        return self.distances(fake, labels).mean()

    def distances(self, fake: Tensor, labels: Tensor) -> Tensor:
        """``[B]``: ``min_k mean|fake_i - bank_k|`` over the bank images ``k`` of ``labels[i]`` (compared at
        ``size``). A label with no bank image raises."""
        y = labels.long().to(self.counts.device)
        if int(y.max()) >= len(self.counts) or bool((self.counts[y] == 0).any()):
            raise ValueError("a fake's label has no image in the class bank")
        f = _pool(fake.float(), self.size)  # [B, 3, s, s]
        k = int(self.counts[y].max())
        offs = torch.arange(k, device=y.device)  # [K]
        valid = offs[None] < self.counts[y][:, None]  # [B, K]
        idx = torch.where(valid, self.starts[y][:, None] + offs[None], self.starts[y][:, None])  # [B, K]
        chunk = _CHUNK_ELEMS.get(f.device.type, _CHUNK_ELEMS["cpu"])
        step = max(1, chunk // max(1, f[0].numel() * len(f)))  # bank images per chunk of the batch
        dist = torch.cat(
            [
                (f[:, None] - self.images[idx[:, j : j + step]]).abs().mean(dim=(2, 3, 4))  # [B, k']
                for j in range(0, k, step)
            ],
            dim=1,
        ).masked_fill(~valid, float("inf"))  # [B, K]
        return dist.min(dim=1).values


def anchor_loss(
    match: str, fake: Tensor, real: Tensor, y: Tensor, k: int, size: int, bank: ClassBank | None
) -> Tensor:
    """The class anchor's L1 for ``fake [B, 3, S, S]`` drawn for labels ``y [B]`` (for a grouped match,
    ``k`` candidates per real image: :func:`cover_labels`) beside the real batch ``real``, compared at
    ``size`` (0: full size). ``bank`` is the stage's :class:`ClassBank`; the matches in ``NEEDS_BANK``
    refuse to run without it (a caller that forgot it would otherwise train another anchor)."""
    if match in NEEDS_BANK and bank is None:
        raise ValueError(f"anchor_match {match!r} needs the stage's class bank (progan.train._class_bank)")
    if match == "nearest":
        return bank.nearest_l1(fake, y)
    if match == "cover":
        return cover_l1(fake, real, k, size)
    if match == "chamfer":  # both directions: every fake near a frame, every real frame near a fake
        return (bank.nearest_l1(fake, y) + cover_l1(fake, real, k, size)) / 2
    return anchor_l1(fake.float(), real, size)  # "row": fake i beside real i, same label
