"""Image files -> uint8 tensors: the one decoder of the training data and of the packed cache.

``decode_image`` pads a file to a square with its corner colour and resizes it; ``JpegDataset`` serves manifest
rows decoded in DataLoader workers. Both :mod:`pokegan.data` and :mod:`pokegan.cache` read through it (it
imports neither, so they need not import each other both ways).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pokedata.errors import UserError


def decode_image(path: Path | str, size: int) -> np.ndarray:
    """A file -> uint8 ``[3, size, size]``: RGB, padded to a square with its corner colour, resized."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
            im = im.convert("RGB")
    except FileNotFoundError:
        raise UserError(
            f"image {path} is missing", hint="pass --data-root with the dataset the manifest was built from"
        ) from None
    except OSError as exc:
        raise UserError(
            f"image {path} could not be decoded ({exc})", hint="re-run `poke clean` / rebuild the manifest"
        ) from None
    w, h = im.size
    if w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), im.getpixel((0, 0)))
        canvas.paste(im, ((side - w) // 2, (side - h) // 2))
        im = canvas
    if im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))


class JpegDataset(torch.utils.data.Dataset):
    """Manifest rows -> (uint8 ``[3, S, S]``, label, row), decoded in DataLoader workers."""

    def __init__(self, paths: list[Path], labels: np.ndarray, size: int):
        self.paths, self.labels, self.size = paths, labels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, row: int):
        return torch.from_numpy(decode_image(self.paths[row], self.size)), int(self.labels[row]), row


__all__ = ["JpegDataset", "decode_image"]
