"""Learning-rate schedule: linear warm-up, then cosine decay, as a pure function of the optimizer step.

Being a pure function of the step, the schedule needs no state of its own to resume: a checkpoint records
its parameters (and the step), and ``lr_at(step)`` gives the same value after a restart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class WarmupCosine:
    base_lr: float
    total_steps: int
    warmup_steps: int = 0
    min_ratio: float = 0.0  # final lr = min_ratio * base_lr

    def lr_at(self, step: int) -> float:
        return lr_at(step, self.base_lr, self.total_steps, self.warmup_steps, self.min_ratio)

    def apply(self, optimizer, step: int) -> float:
        """Set every param group's lr for ``step``; returns it."""
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def state_dict(self) -> dict:
        return asdict(self)


def lr_at(
    step: int, base_lr: float, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0
) -> float:
    """``base_lr * (step+1)/warmup`` during warm-up, then cosine from ``base_lr`` to ``min_ratio * base_lr``.

    Steps past ``total_steps`` stay at the minimum. ``warmup_steps`` is capped at ``total_steps``.
    """
    total = max(1, int(total_steps))
    warm = min(max(0, int(warmup_steps)), total)
    if step < warm:
        return base_lr * (step + 1) / warm
    span = max(1, total - warm)
    t = min(1.0, (step - warm) / span)
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t)))


__all__ = ["WarmupCosine", "lr_at"]
