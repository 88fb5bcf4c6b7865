"""Growing: rebuild G and D larger, copy the learned weights, freeze the old layers, fade the new ones in.

Every layer is keyed by its resolution and its width depends only on that resolution (see ``models.py``),
so "the matching layers" are exactly the state-dict entries with the same name and shape: the stem and
every earlier block, their norms' running statistics, and (with fade-in) the previous stage's toRGB and
fromRGB, which the fade-in's skip path keeps using, or with ``skip_rgb`` every earlier toRGB and fromRGB.
Everything else (the new blocks, the new toRGB and fromRGB) starts from the DCGAN initialisation, except
a ``skip_rgb`` generator's new toRGB, which starts at zero (G's output is unchanged by the growth).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from pokegan.progan.models import Discriminator, Generator, ProGANArgs


@dataclass
class GrowReport:
    """What a growth did, for logs and tests: copied and fresh state-dict keys, frozen submodules."""

    copied: dict[str, list[str]] = field(default_factory=dict)  # "G"/"D" -> copied keys
    fresh: dict[str, list[str]] = field(default_factory=dict)  # "G"/"D" -> freshly initialised keys
    frozen: dict[str, list[str]] = field(default_factory=dict)  # "G"/"D" -> frozen submodule names


def transfer_weights(src: nn.Module, dst: nn.Module) -> tuple[list[str], list[str]]:
    """Copy every state-dict entry of ``src`` whose name and shape exist in ``dst``; returns (copied, fresh)."""
    src_state = src.state_dict()
    dst_state = dst.state_dict()
    copied, fresh = [], []
    with torch.no_grad():
        for key, value in dst_state.items():
            old = src_state.get(key)
            if old is not None and old.shape == value.shape:
                value.copy_(old)
                copied.append(key)
            else:
                fresh.append(key)
    return copied, fresh


def freeze_old_layers(model: nn.Module, freeze: bool = True) -> list[str]:
    """Freeze (or, with ``freeze=False``, leave trainable) the layers that existed before the last growth."""
    names = model.old_layer_names() if freeze else []
    model.set_frozen(names)
    return names


def build_models(args: ProGANArgs, *, freeze: bool = True) -> tuple[Generator, Discriminator]:
    """Fresh G and D for ``args`` (used at the first stage and to rebuild from a checkpoint)."""
    g, d = Generator(args), Discriminator(args)
    freeze_old_layers(g, freeze)
    freeze_old_layers(d, freeze)
    return g, d


def grow(
    g: Generator,
    d: Discriminator,
    resolution: int,
    *,
    fade: bool,
    freeze: bool,
    skip_rgb: bool | None = None,
) -> tuple[Generator, Discriminator, GrowReport]:
    """G and D rebuilt for ``resolution`` with every matching layer copied from ``g`` and ``d``.

    The new models are on the old ones' device, in training mode, with ``alpha = 0`` when fading in
    (the loop raises it with :func:`fade_alpha`) and 1 otherwise. ``skip_rgb`` (default: as ``g`` was
    built) grows with StyleGAN2's skip outputs; a first-stage model may take them up at its first growth
    (it is the same network either way: one toRGB, one fromRGB).
    """
    old = g.args
    if resolution <= old.resolution:
        raise ValueError(f"cannot grow from {old.resolution} to {resolution}: sizes must increase")
    skip_rgb = old.skip_rgb if skip_rgb is None else skip_rgb
    if skip_rgb != old.skip_rgb and old.grown_from:
        raise ValueError("skip_rgb can change only at the first growth (the grown models are built for one)")
    rgb_from = (old.rgb_from or old.resolution) if skip_rgb else 0
    args = replace(
        old, resolution=resolution, grown_from=old.resolution, fade=fade, skip_rgb=skip_rgb, rgb_from=rgb_from
    )
    device = next(g.parameters()).device
    new_g, new_d = Generator(args).to(device), Discriminator(args).to(device)
    report = GrowReport()
    for tag, src, dst in (("G", g, new_g), ("D", d, new_d)):
        report.copied[tag], report.fresh[tag] = transfer_weights(src, dst)
        report.frozen[tag] = freeze_old_layers(dst, freeze)
        dst.alpha = 0.0 if fade else 1.0
        dst.train()
    return new_g, new_d, report


def fade_alpha(step_in_stage: int, fade_steps: int) -> float:
    """ProGAN's linear fade-in: 0 at the stage's first step, 1 from step ``fade_steps`` on."""
    if fade_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, step_in_stage / fade_steps))
