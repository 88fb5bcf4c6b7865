"""``all_samples.gif``: the same fixed latents rendered at every snapshot of the whole training.

Each snapshot becomes one PNG frame in ``progan/snapshots/<step>.png``: a grid of the fixed-latent samples,
each upscaled (nearest neighbour, so the 16 px stage looks like 16 px) to one common size, and a caption
strip below with the stage, step, alpha and a bar showing how far through the training it is. Frames are
files, so a resumed run keeps the frames of its earlier life; snapshots newer than the checkpoint it
resumes from are pruned first, so the GIF has exactly one frame per snapshot. The caption makes every frame
distinct (Pillow would otherwise merge identical consecutive frames into one).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from pokedata.store import atomic_writer

CAPTION_HEIGHT = 18


def _to_uint8_hwc(x: Tensor) -> Tensor:
    """``[..., 3, H, W]`` in [-1, 1] -> ``[..., H, W, 3]`` uint8."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)


def snapshot_frame(images: Tensor, size: int, caption: str, progress: float, nrow: int = 0, pad: int = 2):
    """Images ``[N, 3, h, w]`` in [-1, 1] -> one RGB PIL image: a grid of ``size``-px tiles + a caption strip."""

    n = images.shape[0]
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    width = nrow * size + (nrow + 1) * pad
    height = rows * size + (rows + 1) * pad + CAPTION_HEIGHT
    frame = Image.new("RGB", (width, height), (24, 24, 24))
    for i, arr in enumerate(_to_uint8_hwc(images).numpy()):
        tile = Image.fromarray(arr)
        if tile.size != (size, size):
            tile = tile.resize((size, size), Image.NEAREST)
        r, c = divmod(i, nrow)
        frame.paste(tile, (pad + c * (size + pad), pad + r * (size + pad)))
    draw = ImageDraw.Draw(frame)
    top = height - CAPTION_HEIGHT
    done = int(round(max(0.0, min(1.0, progress)) * width))
    draw.rectangle([0, height - 3, done, height - 1], fill=(80, 170, 255))
    draw.text((pad + 2, top + 2), caption, fill=(235, 235, 235))
    return frame


def save_snapshot(frame, folder: Path, step: int) -> Path:
    """Write one frame as ``folder/<step:09d>.png`` atomically."""
    path = Path(folder) / f"{step:09d}.png"
    with atomic_writer(path) as fh:
        frame.save(fh, format="PNG")
    return path


def snapshot_paths(folder: Path) -> list[Path]:
    """Snapshot frames in step order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.png") if p.stem.isdigit())


def prune_snapshots(folder: Path, after_step: int) -> int:
    """Delete frames of steps after ``after_step`` (a resumed run redraws them); returns how many."""
    n = 0
    for p in snapshot_paths(folder):
        if int(p.stem) > after_step:
            p.unlink(missing_ok=True)
            n += 1
    return n


def write_gif(folder: Path, path: Path, duration_ms: int = 250, last_ms: int = 2000) -> int:
    """All frames of ``folder`` -> an animated, looping GIF at ``path`` (atomic); returns the frame count.

    Frames of different sizes (a grid drawn with another ``nrow``) are padded to the largest one; the last
    frame is held for ``last_ms``.
    """

    paths = snapshot_paths(folder)
    if not paths:
        return 0
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(im.convert("RGB"))
    w = max(f.width for f in frames)
    h = max(f.height for f in frames)
    canvas = []
    for f in frames:
        if f.size != (w, h):
            bg = Image.new("RGB", (w, h), (24, 24, 24))
            bg.paste(f, (0, 0))
            f = bg
        canvas.append(f)
    durations = [duration_ms] * (len(canvas) - 1) + [max(duration_ms, last_ms)]
    with atomic_writer(Path(path)) as fh:
        canvas[0].save(
            fh,
            format="GIF",
            save_all=True,
            append_images=canvas[1:],
            duration=durations,
            loop=0,
            optimize=False,
            disposal=1,
        )
    return len(canvas)
