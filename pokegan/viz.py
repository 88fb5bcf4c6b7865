"""Pictures: image grids, reconstruction grids, loss curves (shared by every training step).

All writes are atomic (a temp file renamed into place); images are tensors in [-1, 1].
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from pokedata.store import atomic_write_bytes


def _to_png_bytes(grid: Tensor) -> bytes:

    arr = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()  # [H, W, 3]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_image_grid(images: Tensor, nrow: int, padding: int = 2) -> Tensor:
    """``[N, 3, H, W]`` in [-1, 1] -> one ``[3, H', W']`` grid in [0, 1]."""

    x = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    return make_grid(x, nrow=max(1, nrow), padding=padding, pad_value=1.0)


def save_image_grid(images: Tensor, path: Path | str, nrow: int | None = None) -> Path:
    """Save ``[N, 3, H, W]`` (in [-1, 1]) as a PNG grid with ``nrow`` images per row (default: square)."""
    path = Path(path)
    if nrow is None:
        nrow = max(1, int(math.ceil(math.sqrt(len(images)))))
    atomic_write_bytes(path, _to_png_bytes(make_image_grid(images, nrow)))
    return path


def recon_grid(inputs: Tensor, recons: Tensor) -> Tensor:
    """Inputs in the top row, their reconstructions in the row below: ``[3, H', W']`` in [0, 1]."""
    n = min(len(inputs), len(recons))
    size = inputs.shape[-1]
    if recons.shape[-1] != size:
        recons = torch.nn.functional.interpolate(recons.float(), size=(size, size), mode="nearest")
    return make_image_grid(torch.cat([inputs[:n].float().cpu(), recons[:n].float().cpu()]), nrow=n)


def save_recon_grid(inputs: Tensor, recons: Tensor, path: Path | str) -> Path:
    """Save a reconstruction grid (inputs above, reconstructions below) as a PNG."""
    path = Path(path)
    atomic_write_bytes(path, _to_png_bytes(recon_grid(inputs, recons)))
    return path


def plot_curves(
    curves: dict[str, list[tuple[int, float]]], path: Path | str, title: str = "", logy: bool = False
) -> Path:
    """One line per name over steps: ``{"loss/train": [(step, value), ...], ...}`` -> PNG."""

    path = Path(path)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for name, points in curves.items():
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=name, linewidth=1.2)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


__all__ = ["make_image_grid", "plot_curves", "recon_grid", "save_image_grid", "save_recon_grid"]
