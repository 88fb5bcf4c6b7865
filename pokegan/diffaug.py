"""Differentiable augmentation of what the discriminator sees, real and fake alike (DiffAugment).

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training": with a few thousand
images the discriminator memorises the real set and its feedback to the generator stops being useful.
Augmenting *both* real and generated images with the same random, differentiable transforms before the
discriminator keeps it from memorising while the generator still learns the un-augmented distribution
(augmenting the reals alone would teach the generator the augmentation: issue 11 item 4).

``policy`` is a comma-separated subset of:

- ``color``: per-sample brightness ``+U(-0.5, 0.5)``, saturation ``x U(0, 2)`` and contrast
  ``x U(0.5, 1.5)`` (DiffAugment's ranges, on images in [-1, 1]);
- ``translation``: per-sample integer shift of up to 1/8 of the side, edges replicated (sprites sit on
  a flat background, so the new border is background rather than DiffAugment's black);
- ``cutout``: per-sample square of half the side set to 0 (mid-grey).

The random parameters are drawn once per call and applied to every tensor of a list with the same
relative geometry, so an image pyramid (the MSG critic's input, coarse -> fine) stays one consistent
picture at every scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; ``""`` -> ``()``; unknown names raise ValueError."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; use a subset of {', '.join(POLICIES)}")
    return names


def _color(x: Tensor, bright: Tensor, sat: Tensor, contrast: Tensor) -> Tensor:
    # x [B, 3, H, W]; parameters [B, 1, 1, 1]
    x = x + bright
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * sat + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def _translate(x: Tensor, frac_x: Tensor, frac_y: Tensor) -> Tensor:
    # shift by round(frac * side) pixels, edges replicated: [B, 3, H, W] -> same
    b, _, h, w = x.shape
    dx = (frac_x * w).round().long().view(b, 1, 1)  # [B, 1, 1]
    dy = (frac_y * h).round().long().view(b, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    src_y = (ys - dy).clamp(0, h - 1).expand(b, h, w)  # [B, H, W]
    src_x = (xs - dx).clamp(0, w - 1).expand(b, h, w)
    idx = (src_y * w + src_x).reshape(b, 1, h * w).expand(-1, x.shape[1], -1)  # [B, C, H*W]
    return x.reshape(b, x.shape[1], h * w).gather(2, idx).reshape_as(x)


def _cutout(x: Tensor, cx: Tensor, cy: Tensor) -> Tensor:
    # zero a square of half the side centred at (cx, cy) in [0, 1): [B, 3, H, W] -> same
    b, _, h, w = x.shape
    half_h, half_w = max(1, h // 4), max(1, w // 4)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    y0 = (cy * h).long().view(b, 1, 1)
    x0 = (cx * w).long().view(b, 1, 1)
    inside = ((ys - y0).abs() < half_h) & ((xs - x0).abs() < half_w)  # [B, H, W]
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DiffAugment:
    """``aug(x)`` for a tensor ``[B, 3, H, W]`` or a list of them (one pyramid): the same draw for each."""

    def __init__(self, policy: str | Sequence[str]):
        self.policy = parse_policy(policy) if isinstance(policy, str) else tuple(policy)

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, images: Tensor | Sequence[Tensor]) -> Tensor | list[Tensor]:
        if not self.policy:
            return images
        many = isinstance(images, (list, tuple))
        xs = list(images) if many else [images]
        b, dev = xs[0].shape[0], xs[0].device

        def u(lo: float, hi: float) -> Tensor:
            return torch.empty(b, 1, 1, 1, device=dev).uniform_(lo, hi)

        if "color" in self.policy:
            bright, sat, con = u(-0.5, 0.5), u(0.0, 2.0), u(0.5, 1.5)
            xs = [_color(x, bright.to(x.dtype), sat.to(x.dtype), con.to(x.dtype)) for x in xs]
        if "translation" in self.policy:
            fx, fy = u(-0.125, 0.125).view(b), u(-0.125, 0.125).view(b)
            xs = [_translate(x, fx, fy) for x in xs]
        if "cutout" in self.policy:
            cx, cy = u(0.0, 1.0).view(b), u(0.0, 1.0).view(b)
            xs = [_cutout(x, cx, cy) for x in xs]
        return xs if many else xs[0]

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.policy)!r})"


__all__ = ["POLICIES", "DiffAugment", "parse_policy"]
