"""The nearest-frame anchor's cost per generator step (``pokegan/progan/anchor.py``): ``ClassBank.nearest_l1``
at the chunk size the code uses against the anchor of one big piece per step, on a preset-sized step
(batch 64 at 32 px, 151 classes of 128 bank images) and at 16 px.

    OMP_NUM_THREADS=2 python bench/anchor_bank.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pokegan.progan.anchor as anchor  # noqa: E402


def per_step_ms(bank: anchor.ClassBank, fake: torch.Tensor, y: torch.Tensor, repeats: int = 10) -> float:
    bank.nearest_l1(fake, y)  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        bank.nearest_l1(fake, y)
    return (time.perf_counter() - t) / repeats * 1000


def main() -> None:
    torch.manual_seed(0)
    ours = dict(anchor._CHUNK_ELEMS)
    print("| size | bank images | chunk: ours (4 MiB) ms/step | one 128 MiB piece (anchor) ms/step | ratio |")
    print("|---|---|---|---|---|")
    for size in (16, 32):
        bank = anchor.ClassBank(
            torch.rand(151 * 128, 3, size, size) * 2 - 1, torch.arange(151).repeat_interleave(128)
        )
        fake, y = torch.rand(64, 3, size, size) * 2 - 1, torch.randint(151, (64,))
        anchor._CHUNK_ELEMS = ours
        a = per_step_ms(bank, fake, y)
        anchor._CHUNK_ELEMS = {"cpu": 1 << 25}
        b = per_step_ms(bank, fake, y)
        anchor._CHUNK_ELEMS = ours
        print(f"| {size} | {len(bank):,} | {a:.1f} | {b:.1f} | **{b / a:.2f}x** |")


if __name__ == "__main__":
    main()
