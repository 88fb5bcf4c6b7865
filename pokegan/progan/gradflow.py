"""Gradient flow: the mean and max absolute gradient of every layer, as a bar chart with layer names.

A :class:`GradFlow` is fed the model right after ``backward()`` (every few steps, see the loop); it keeps
running sums on the model's device (no host sync per call) and, at the end of a stage, draws one PNG with
a panel per model: light bars for the max, dark bars for the mean, a log scale, and frozen layers marked.
Vanishing gradients show as a slope down towards the input layers; an exploding layer stands out.
A JSON file beside the PNG holds the same numbers.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend
from torch import nn

from pokedata.store import atomic_write_bytes, atomic_write_text

_WEIGHT_SUFFIXES = (".parametrizations.weight.original", ".weight")  # spectral norm's, a plain weight


def is_weight(param_name: str) -> bool:
    return param_name.endswith(_WEIGHT_SUFFIXES)


def layer_name(param_name: str) -> str:
    """``blocks.16.conv.weight`` (or, under spectral norm, ``...conv.parametrizations.weight.original``)
    -> ``blocks.16.conv``."""
    for suffix in _WEIGHT_SUFFIXES:
        if param_name.endswith(suffix):
            return param_name[: -len(suffix)]
    return param_name


@dataclass
class LayerFlow:
    name: str
    mean: float
    max: float
    frozen: bool


@dataclass
class GradFlow:
    """Running mean/max |grad| per weight tensor of one model (biases are left out, as is usual)."""

    title: str
    _sum_mean: dict[str, torch.Tensor] = field(default_factory=dict)
    _max: dict[str, torch.Tensor] = field(default_factory=dict)
    _frozen: dict[str, bool] = field(default_factory=dict)
    count: int = 0

    @torch.no_grad()
    def record(self, model: nn.Module) -> None:
        """Accumulate the current ``.grad`` of every weight (call after backward, before zero_grad)."""
        for name, p in model.named_parameters():
            if not is_weight(name):
                continue
            key = layer_name(name)
            if not p.requires_grad or p.grad is None:
                self._frozen.setdefault(key, not p.requires_grad)
                self._sum_mean.setdefault(key, torch.zeros((), device=p.device))
                self._max.setdefault(key, torch.zeros((), device=p.device))
                continue
            g = p.grad.detach().abs().float()
            self._frozen[key] = False
            self._sum_mean[key] = self._sum_mean.get(key, torch.zeros((), device=p.device)) + g.mean()
            self._max[key] = torch.maximum(self._max.get(key, torch.zeros((), device=p.device)), g.amax())
        self.count += 1

    def state_dict(self) -> dict:
        """Plain floats (for checkpoints: a resumed stage keeps averaging where it left off)."""
        return {
            "title": self.title,
            "count": self.count,
            "sum_mean": {k: float(v) for k, v in self._sum_mean.items()},
            "max": {k: float(v) for k, v in self._max.items()},
            "frozen": dict(self._frozen),
        }

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.title, self.count = state["title"], int(state["count"])
        self._sum_mean = {k: torch.tensor(v, device=device) for k, v in state["sum_mean"].items()}
        self._max = {k: torch.tensor(v, device=device) for k, v in state["max"].items()}
        self._frozen = dict(state["frozen"])

    def layers(self) -> list[LayerFlow]:
        n = max(1, self.count)
        return [
            LayerFlow(k, float(self._sum_mean[k]) / n, float(self._max[k]), self._frozen.get(k, False))
            for k in self._sum_mean
        ]


def plot_grad_flow(flows: list[GradFlow], path: Path, title: str = "") -> Path:
    """One bar-chart panel per :class:`GradFlow`; written atomically as PNG, with ``<path>.json`` beside it."""

    fig = Figure(figsize=(max(8.0, 0.45 * max(len(f.layers()) for f in flows)), 3.6 * len(flows)))
    axes = fig.subplots(len(flows), 1, squeeze=False)
    summary = {}
    for ax, flow in zip(axes[:, 0], flows, strict=True):
        layers = flow.layers()
        summary[flow.title] = {"records": flow.count, "layers": [vars(layer) for layer in layers]}
        xs = range(len(layers))
        floor = 1e-12
        ax.bar(xs, [max(la.max, floor) for la in layers], color="tab:cyan", alpha=0.45, label="max |grad|")
        ax.bar(xs, [max(la.mean, floor) for la in layers], color="tab:blue", label="mean |grad|")
        ax.set_yscale("log")
        positive = [v for la in layers for v in (la.mean, la.max) if v > 0]
        if positive:
            ax.set_ylim(min(positive) / 3, max(positive) * 3)
        ax.set_xticks(list(xs))
        labels = [la.name + (" (frozen)" if la.frozen else "") for la in layers]
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        for tick, la in zip(ax.get_xticklabels(), layers, strict=True):
            if la.frozen:
                tick.set_color("gray")
        ax.set_ylabel("|gradient|")
        ax.set_title(f"{flow.title}: mean over {flow.count} steps", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_text(path.with_suffix(".json"), json.dumps(summary, indent=2))
    return path
