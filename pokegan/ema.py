"""Exponential moving average of the generator's weights; samples and metrics come from the EMA copy.

``ema = EMA(G, decay=0.999)``; after every generator step ``ema.update(G)``. The decay ramps up from
zero (``min(decay, (1 + t) / (10 + t))``) so early averages are not dominated by the random start.
``ramp=False`` (a generator that starts from trained weights: step 3 from step 2's) uses the full decay
from the first update: the start is the best estimate there is, and with the ramp the average followed
the optimizer's first, largest steps (RMSprop's are ~10x its rate) almost one for one.
Buffers (none in the step-2 generator, but any BatchNorm statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.999, *, ramp: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay {decay} must be in [0, 1)")
        self.decay = decay
        self.ramp = ramp
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        t = self.num_updates
        return min(self.decay, (1 + t) / (10 + t)) if self.ramp else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        ema_p = [p for p in self.model.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        if len(ema_p) != len(src_p):
            raise ValueError("EMA and model have different parameter lists")
        torch._foreach_lerp_(ema_p, src_p, 1.0 - d)  # ema += (1 - d) * (p - ema)
        for eb, b in zip(self.model.buffers(), model.buffers(), strict=True):
            eb.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        self.model.load_state_dict(state["model"])
