"""Differentiable augmentation of everything the critic sees, real and fake alike (Zhao et al. 2020).

Augmenting only the real images teaches the generator the augmentation (it learns to draw crops). Applying
the *same* random, differentiable transforms to the real and the generated batch, inside the critic,
changes what the critic sees without changing what the generator must produce: the generator's gradient
flows back through the transform. ``DiffAugment(D, "color,translation,cutout")`` is such a critic::

    D_aug(x) = D(T(x))        x: [B, 3, S, S] in [-1, 1], or a list of them (a multi-scale pyramid)

Policies (DiffAugment's):

- ``color``: per image, brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5);
- ``translation``: per image, a shift of up to 1/8 of the side in x and y, zero (mid-grey) padding;
- ``cutout``: per image, a square of half the side at a random centre set to 0.

For a pyramid the parameters are drawn once per batch and applied to every scale as fractions of its
side, so the scales stay consistent. Random numbers come from torch's global generator (seeded by the
step's ``setup_torch``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pokegan.diffaugment_policy import POLICIES, parse_policy  # torch-free: configs validate with it


def draw_params(b: int, device: torch.device) -> dict[str, Tensor]:
    """Per-image random parameters ``[B]`` of every policy (drawn together, used as needed)."""
    r = lambda: torch.rand(b, device=device)  # noqa: E731
    return {
        "brightness": r() - 0.5,
        "saturation": r() * 2,
        "contrast": r() + 0.5,
        "tx": (r() * 2 - 1) / 8,  # fraction of the side
        "ty": (r() * 2 - 1) / 8,
        "cx": r(),  # cutout centre, fraction of the side
        "cy": r(),
    }


def apply(x: Tensor, p: dict[str, Tensor], policy: tuple[str, ...]) -> Tensor:
    """The policy's transforms of ``x [B, 3, S, S]`` with parameters ``p`` (differentiable in ``x``)."""
    b, _, h, w = x.shape
    if "color" in policy:
        x = x + p["brightness"].view(b, 1, 1, 1)
        mean_c = x.mean(dim=1, keepdim=True)
        x = (x - mean_c) * p["saturation"].view(b, 1, 1, 1) + mean_c
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * p["contrast"].view(b, 1, 1, 1) + mean
    if "translation" in policy:
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2], theta[:, 1, 2] = -2 * p["tx"], -2 * p["ty"]  # grid units: the side is 2
        grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if "cutout" in policy:
        ys = (torch.arange(h, device=x.device) + 0.5) / h  # [H] pixel centres as fractions
        xs = (torch.arange(w, device=x.device) + 0.5) / w
        in_y = (ys[None] - p["cy"][:, None]).abs() < 0.25  # [B, H]: a square of half the side
        in_x = (xs[None] - p["cx"][:, None]).abs() < 0.25
        keep = ~(in_y[:, :, None] & in_x[:, None, :])  # [B, H, W]
        x = x * keep[:, None].to(x.dtype)
    return x


class DiffAugment(nn.Module):
    """A critic that sees ``T(x)``: wrap the discriminator with it and score real and fake through it."""

    def __init__(self, D: nn.Module, policy: str | tuple[str, ...]):
        super().__init__()
        self.D = D
        self.policy = parse_policy(policy) if isinstance(policy, str) else tuple(policy)

    def forward(self, x: Tensor | list[Tensor]):
        first = x[0] if isinstance(x, (list, tuple)) else x
        p = draw_params(first.shape[0], first.device)
        if isinstance(x, (list, tuple)):
            return self.D([apply(t, p, self.policy) for t in x])
        return self.D(apply(x, p, self.policy))


def critic_view(D: nn.Module, policy: str) -> nn.Module:
    """``D`` itself without a policy, else ``DiffAugment(D, policy)`` (same parameters)."""
    return DiffAugment(D, policy) if parse_policy(policy) else D


__all__ = ["POLICIES", "DiffAugment", "apply", "critic_view", "draw_params", "parse_policy"]
