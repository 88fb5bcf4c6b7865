"""Training steps: classify (1), embed, pretrain (2), gmm and gan (3); each writes one folder of a run.

Every step is ``run_<step>(cfg, run, *, resume=False) -> summary`` over the one skeleton of
:mod:`pokegan.loop` (session, resume, the epoch loop, ``done.json``); a step module holds only what is its
own: its models, one training iteration, its epoch-end or evaluation work, over a typed state.
"""

from __future__ import annotations

from typing import Any


def param_groups(model, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv / linear weights only (not on biases or norm scales)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


__all__ = ["param_groups"]
