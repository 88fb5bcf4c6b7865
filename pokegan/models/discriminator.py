"""Step-3 discriminators: a DCGAN-style conv critic and an MSG-GAN critic that reads every scale.

Both map images in [-1, 1] to one raw score per sample ``[B]`` (no sigmoid: the loss object decides).
Neither uses BatchNorm: the gradient penalty is defined per sample, and batch statistics would couple
samples. Both end with ProGAN's minibatch standard deviation channel, which lets the critic see
diversity and discourages mode collapse.

``MSGDiscriminator`` (Karnewar & Wang, MSG-GAN) takes a list of images coarse -> fine, one per
resolution from 4x4 up to ``image_size`` (exactly what ``Generator.forward_multiscale`` returns). Its
trunk starts at the finest scale; each time it halves the resolution it concatenates the image at that
scale to its features, so the generator's every toRGB output receives gradients directly. Real
images are turned into the same pyramid by :func:`image_pyramid` (area downsampling).

Both are rebuilt from their :class:`DiscriminatorArgs` alone (stored in the GAN checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class DiscriminatorArgs:
    image_size: int = 64
    kind: str = "msg"  # "msg" | "dcgan"
    base_channels: int = 32  # channels at the finest resolution
    max_channels: int = 512
    min_size: int = 4  # coarsest resolution of the trunk (and of the MSG pyramid)
    mbstd_group: int = 4  # minibatch-stddev group size (clipped to the batch)
    downsample: str = "stride"  # dcgan trunk: "stride" (4x4 stride-2 convs) | "pool" (3x3 conv, 2x2 average)

    def validate(self) -> DiscriminatorArgs:
        s = self.image_size
        if s < 8 or s & (s - 1):
            raise ValueError(f"image_size {s} must be a power of two >= 8")
        if self.kind not in ("msg", "dcgan"):
            raise ValueError(f"discriminator kind {self.kind!r} must be 'msg' or 'dcgan'")
        if self.downsample not in ("stride", "pool"):
            raise ValueError(f"discriminator downsample {self.downsample!r} must be 'stride' or 'pool'")
        return self

    def resolutions(self) -> list[int]:
        """Trunk resolutions fine -> coarse, e.g. [64, 32, 16, 8, 4]."""
        n = int(math.log2(self.image_size // self.min_size))
        return [self.image_size >> i for i in range(n + 1)]

    def channels(self, res: int) -> int:
        return min(self.max_channels, self.base_channels * (self.image_size // res))


def image_pyramid(images: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """``[B, 3, H, W]`` -> list of ``[B, 3, s, s]`` for each s in ``sizes`` (area downsampling)."""
    out = []
    for s in sizes:
        if images.shape[-1] == s and images.shape[-2] == s:
            out.append(images)
        else:
            out.append(F.interpolate(images, size=(s, s), mode="area"))
    return out


class MinibatchStd(nn.Module):
    """ProGAN's minibatch standard deviation: one extra feature map holding the mean over features and
    pixels of the per-feature standard deviation across the batch (groups of ``group`` images), so the
    critic can see a batch with too little variety (mode collapse). Shared by step 3's critics and
    progan's."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: Tensor) -> Tensor:  # [B, C, H, W] -> [B, C + 1, H, W]
        b, c, h, w = x.shape
        g = min(self.group, b)
        while b % g:  # a group size that divides the batch (a last, smaller batch)
            g -= 1
        y = x.reshape(g, b // g, c, h, w).float()  # the variance in float32 under autocast too
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [B/g, C, H, W]
        std = std.mean(dim=(1, 2, 3)).to(x.dtype)  # [B/g]
        std = std.reshape(1, b // g, 1, 1, 1).expand(g, b // g, 1, h, w).reshape(b, 1, h, w)
        return torch.cat([x, std], dim=1)


class _Head(nn.Module):
    """4x4 features -> score: minibatch std, conv3x3, conv4x4 (valid), linear."""

    def __init__(self, ch: int, size: int, group: int):
        super().__init__()
        self.mbstd = MinibatchStd(group)
        self.conv = nn.Conv2d(ch + 1, ch, 3, padding=1)
        self.conv_out = nn.Conv2d(ch, ch, size)
        self.fc = nn.Linear(ch, 1)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, s, s] -> [B]
        x = self.mbstd(x)  # [B, C+1, s, s]
        x = F.leaky_relu(self.conv(x), 0.2)  # [B, C, s, s]
        x = F.leaky_relu(self.conv_out(x), 0.2).flatten(1)  # [B, C]
        return self.fc(x).squeeze(1)  # [B]


class _PoolDown(nn.Module):
    """conv3x3 then a 2x2 average: [B, Cin, r, r] -> [B, Cout, r/2, r/2] (the activation follows, as for
    the strided conv). Every input pixel reaches the output with the same weights, so the critic's
    gradient to the image has no stride-2 phase (a strided conv's has: Odena et al. 2016's checkerboard)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.conv(x), 2)


class DCGANDiscriminator(nn.Module):
    """fromRGB, then blocks halving the resolution down to ``min_size`` (``downsample``: stride-2 4x4
    convs, or 3x3 convs each followed by a 2x2 average), then the minibatch-std head."""

    multiscale = False

    def __init__(self, args: DiscriminatorArgs):
        super().__init__()
        self.args = args.validate()
        res = args.resolutions()
        self.from_rgb = nn.Conv2d(3, args.channels(res[0]), 1)
        self.blocks = nn.ModuleList(
            _PoolDown(args.channels(r), args.channels(r // 2))
            if args.downsample == "pool"
            else nn.Conv2d(args.channels(r), args.channels(r // 2), 4, stride=2, padding=1)
            for r in res[:-1]
        )
        self.head = _Head(args.channels(res[-1]), res[-1], args.mbstd_group)

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:  # [B, 3, S, S] -> [B]
        if isinstance(x, (list, tuple)):
            x = x[-1]  # a pyramid: the finest scale
        h = F.leaky_relu(self.from_rgb(x), 0.2)  # [B, C0, S, S]
        for block in self.blocks:
            h = F.leaky_relu(block(h), 0.2)  # [B, C(r/2), r/2, r/2]
        return self.head(h)


class _MSGBlock(nn.Module):
    """conv3x3 -> conv3x3 -> avgpool 2: [B, Cin, r, r] -> [B, Cout, r/2, r/2]."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_in, 3, padding=1)
        self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.conv1(x), 0.2)
        x = F.leaky_relu(self.conv2(x), 0.2)
        return F.avg_pool2d(x, 2)


class MSGDiscriminator(nn.Module):
    """MSG-GAN critic: reads a pyramid coarse -> fine (4x4 ... SxS), concatenating each scale on the way down."""

    multiscale = True

    def __init__(self, args: DiscriminatorArgs):
        super().__init__()
        self.args = args.validate()
        res = args.resolutions()  # fine -> coarse
        self.sizes = list(reversed(res))  # coarse -> fine: the pyramid order
        self.from_rgb = nn.Conv2d(3, args.channels(res[0]), 1)
        blocks = []
        for i, r in enumerate(res[:-1]):
            extra = 3 if i > 0 else 0  # the image at this scale, concatenated (the finest went via from_rgb)
            blocks.append(_MSGBlock(args.channels(r) + extra, args.channels(r // 2)))
        self.blocks = nn.ModuleList(blocks)
        self.head = _Head(args.channels(res[-1]) + 3, res[-1], args.mbstd_group)

    def forward(self, images: Sequence[Tensor] | Tensor) -> Tensor:  # list of [B, 3, s, s] -> [B]
        if isinstance(images, Tensor):
            images = image_pyramid(images, self.sizes)
        if len(images) != len(self.sizes):
            raise ValueError(
                f"MSG discriminator expects {len(self.sizes)} scales {self.sizes}, got {len(images)}"
            )
        fine_to_coarse = list(reversed(images))
        for img, s in zip(fine_to_coarse, reversed(self.sizes), strict=True):
            if img.shape[-1] != s:
                raise ValueError(f"scale {s} got an image of size {tuple(img.shape[-2:])}")
        h = F.leaky_relu(self.from_rgb(fine_to_coarse[0]), 0.2)  # [B, C0, S, S]
        for i, block in enumerate(self.blocks):
            if i > 0:
                h = torch.cat([h, fine_to_coarse[i]], dim=1)  # [B, C + 3, r, r]
            h = block(h)  # [B, C', r/2, r/2]
        h = torch.cat([h, fine_to_coarse[-1]], dim=1)  # [B, C + 3, 4, 4]
        return self.head(h)


def build_discriminator(args: DiscriminatorArgs) -> nn.Module:
    """The discriminator named by ``args.kind``; rebuilt from ``asdict(args)`` in checkpoints."""
    return (MSGDiscriminator if args.kind == "msg" else DCGANDiscriminator)(args)


def discriminator_args_dict(args: DiscriminatorArgs) -> dict:
    return asdict(args)
