"""The generator of steps 2 and 3: a 512-d vector -> an image, through upsampling conv blocks.

    z [B, 512]
      -> linear stem -> [B, C(4), 4, 4] -> conv 3x3                block 0 (4 x 4)   -> toRGB
      -> for r = 8, 16, ..., image_size:
            nearest upsample x2 -> conv 3x3 -> conv 3x3   (dilated when r >= dilate_from)  -> toRGB

Channels at resolution r: ``clamp(channel_base // r, min_channels, max_channels)``. Every conv is followed
by PixelNorm and LeakyReLU(0.2): no batch statistics, so a sample never depends on its batch (and the EMA
copy of step 3 has no buffers to track). The later blocks use dilated 3x3 convolutions (dilation 2 = a 5x5
receptive field at the cost of a 3x3): large flat colour regions need a large receptive field.

A toRGB (1x1 conv, then tanh or nothing: ``output``) reads every block: ``forward(z)`` returns the finest
image ``[B, 3, S, S]``, in [-1, 1] under tanh; a linear output (StyleGAN's) is clamped by whoever turns it
into pixels, and never saturates: on sprites, whose white background is tanh's asymptote, the tanh
generator of step 2 could stall on an all-white picture with no gradient left (docs/training.md).
``forward_multiscale(z)`` returns every scale, coarse -> fine ``[[B,3,4,4], [B,3,8,8], ...]``, which
step 3's multi-scale-gradient (MSG) discriminator reads. ``GeneratorArgs`` is stored in checkpoints so the
model rebuilds from a checkpoint alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class GeneratorArgs:
    image_size: int = 64
    z_dim: int = 512
    channel_base: int = 16384
    max_channels: int = 512
    min_channels: int = 32
    dilate_from: int = 32  # blocks at this resolution and above use dilated convolutions
    dilation: int = 2
    upsample: str = "nearest"  # nearest | bilinear (the x2 upsampling before each block's convs)
    output: str = "tanh"  # tanh | linear: the toRGB activation (linear: unbounded, clamped when drawn)

    def validate(self) -> GeneratorArgs:
        s = self.image_size
        if s < 8 or s & (s - 1):
            raise ValueError(f"image_size {s} must be a power of two >= 8")
        if (
            self.min_channels < 1
            or self.max_channels < self.min_channels
            or self.dilation < 1
            or self.z_dim < 1
        ):
            raise ValueError(f"invalid generator args {self}")
        if self.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample {self.upsample!r} must be 'nearest' or 'bilinear'")
        if self.output not in ("tanh", "linear"):
            raise ValueError(f"output {self.output!r} must be 'tanh' or 'linear'")
        return self

    def resolutions(self) -> list[int]:
        """Block resolutions coarse -> fine: [4, 8, ..., image_size]."""
        return [4 << i for i in range(int(math.log2(self.image_size // 4)) + 1)]

    def channels(self, res: int) -> int:
        return max(self.min_channels, min(self.max_channels, self.channel_base // res))


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit RMS (parameter-free, batch-independent)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def _conv(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    # 3x3, "same" padding for any dilation: [B, cin, r, r] -> [B, cout, r, r]
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation),
        PixelNorm(),
        nn.LeakyReLU(0.2, inplace=True),
    )


class UpBlock(nn.Module):
    """[B, cin, r/2, r/2] -> x2 (nearest or bilinear) -> two 3x3 convs -> [B, cout, r, r]."""

    def __init__(self, cin: int, cout: int, dilation: int, upsample: str = "nearest"):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode=upsample)
        self.conv1 = _conv(cin, cout, 1)
        self.conv2 = _conv(cout, cout, dilation)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(self.up(x)))


class ToRGB(nn.Module):
    """[B, c, r, r] -> [B, 3, r, r]: in [-1, 1] (tanh), or unbounded (linear)."""

    def __init__(self, cin: int, output: str = "tanh"):
        super().__init__()
        self.conv = nn.Conv2d(cin, 3, 1)
        self.tanh = output == "tanh"

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return torch.tanh(x) if self.tanh else x


class Generator(nn.Module):
    def __init__(self, args: GeneratorArgs):
        super().__init__()
        self.args = args.validate()
        res = args.resolutions()
        c0 = args.channels(4)
        self.stem = nn.Sequential(nn.Linear(args.z_dim, c0 * 16), nn.LeakyReLU(0.2, inplace=True))
        self.stem_conv = _conv(c0, c0, 1)
        self.blocks = nn.ModuleList(
            UpBlock(
                args.channels(r // 2),
                args.channels(r),
                args.dilation if r >= args.dilate_from else 1,
                args.upsample,
            )
            for r in res[1:]
        )
        self.to_rgb = nn.ModuleList(ToRGB(args.channels(r), args.output) for r in res)

    def _trunk(self, z: Tensor, every_scale: bool) -> list[Tensor]:
        b = z.shape[0]
        c0 = self.args.channels(4)
        x = self.stem(z).view(b, c0, 4, 4)  # [B, C(4), 4, 4]
        x = self.stem_conv(x)  # [B, C(4), 4, 4]
        outs = [self.to_rgb[0](x)] if every_scale else []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)  # [B, C(r), r, r], r = 4 * 2**i
            if every_scale:
                outs.append(self.to_rgb[i](x))
        if not every_scale:
            outs.append(self.to_rgb[-1](x))
        return outs

    def forward(self, z: Tensor) -> Tensor:
        """``z [B, z_dim]`` -> images ``[B, 3, S, S]`` (in [-1, 1] under tanh)."""
        return self._trunk(z, every_scale=False)[-1]

    def forward_multiscale(self, z: Tensor) -> list[Tensor]:
        """``z [B, z_dim]`` -> ``[[B,3,4,4], [B,3,8,8], ..., [B,3,S,S]]`` (coarse -> fine)."""
        return self._trunk(z, every_scale=True)


__all__ = ["Generator", "GeneratorArgs", "PixelNorm"]
