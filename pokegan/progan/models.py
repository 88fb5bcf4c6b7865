"""The growable DCGAN: a generator and a mirrored discriminator, one block per resolution.

Read top to bottom: :class:`ProGANArgs` says what to build (the current resolution, where it grew from,
widths, norms); :class:`Generator` maps a latent ``z [B, z_dim]`` through a 4x4 stem and one upsampling
block per doubling to a toRGB at the current resolution; :class:`Discriminator` mirrors it: a fromRGB at
the current resolution, one downsampling block per halving, and a 4x4 head giving one raw logit per image.

Layers are keyed by resolution (``blocks.8``, ``to_rgb.32``...) and a block's width depends only on its
resolution (``channels(r) = min(max_channels, channel_base // r)``), so a model one block larger has the
same names and shapes for every layer the smaller one had: growing is a state-dict copy (see ``grow.py``).

Fade-in (ProGAN, Karras et al. 2018): while ``alpha < 1`` the generator's output is
``alpha * toRGB_new(new blocks(x)) + (1 - alpha) * upsample(toRGB_old(x))`` and the discriminator mixes
``fromRGB_new`` through the new blocks with ``fromRGB_old(downsample(image))`` the same way. Both models
carry ``alpha`` as a plain attribute; the training loop sets it and the checkpoint stores it.

Skip outputs (``skip_rgb``, StyleGAN2's "skip" generator and discriminator, Karras et al. 2020), the other
way to grow: G keeps a toRGB at every resolution from the first stage's up and sums them,
``rgb_r = upsample(rgb_{r/2}) + toRGB_r(block_r(x))``, image ``tanh(rgb_R)``; a grown stage's toRGB starts
at **zero**, so right after growing G draws exactly the previous stage's images, upsampled (nearest), and
the new block learns a residual on top: no alpha schedule, and no mid-grey new toRGB blended in. D mirrors
it: after each block the downsampled image enters again, ``x = block_r(x) + fromRGB_{r/2}(avgpool(image))``,
so the trained coarser critic keeps its own view of the image.

Class-conditional (``n_classes > 0``, cGAN): G draws ``G(z, y)`` from the latent concatenated with a learned
class embedding, ``[z, embed(y)]``; D adds the projection term of Miyato & Koyama (2018) to its head's
logit, ``<embed_D(y), sum_xy h>`` where ``h [B, C4, 4, 4]`` is what enters the head. The critic then judges
each image against its label's real images (a yellow blob labelled Charmander is easy to call fake), and
the generator must cover every class the data has: what stops a small dataset's palette from collapsing.

Layers that existed before the last growth can be frozen (``requires_grad=False``); frozen modules also
stay in eval mode, so a frozen BatchNorm keeps its running statistics instead of drifting.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pokegan.models.discriminator import MinibatchStd  # the step-3 critic's (one implementation)
from pokegan.models.generator import PixelNorm  # the step-3 generator's
from pokegan.progan.config import D_NORMS, NORMS, PADDINGS, UPSAMPLES  # torch-free: the config checks them


@dataclass
class ProGANArgs:
    """Everything needed to rebuild G and D (stored in every checkpoint)."""

    resolution: int = 16  # current output size (a power of two >= 4)
    grown_from: int = 0  # resolution of the previous stage (0: first stage)
    fade: bool = False  # keep the previous stage's toRGB/fromRGB for a fade-in
    z_dim: int = 128
    channel_base: int = 2048  # channels(r) = min(max_channels, channel_base // r): 4->512 .. 64->32
    max_channels: int = 512
    g_norm: str = "batch"  # batch | instance | none
    d_norm: str = "batch"  # batch | instance | none (use instance/none with a gradient penalty)
    # transpose (DCGAN's 4x4 stride-2) | nearest | bilinear (upsample + 3x3 conv)
    g_upsample: str = "transpose"
    padding: str = "zeros"  # zeros | replicate: the padding of G's 3x3 and D's 4x4 convolutions
    mbstd: bool = False  # D: append the minibatch standard deviation as a feature map before the head
    skip_rgb: bool = False  # StyleGAN2 skip outputs: G sums every stage's toRGB, D re-reads the image
    rgb_from: int = 0  # with skip_rgb: the first stage's resolution (its toRGB/fromRGB is the coarsest)
    n_classes: int = 0  # > 0: class-conditional G(z, y) and a projection D(x, y); 0: unconditional

    def validate(self) -> ProGANArgs:
        r = self.resolution
        if r < 4 or r & (r - 1):
            raise ValueError(f"resolution {r} must be a power of two >= 4")
        if self.grown_from and (self.grown_from >= r or self.grown_from & (self.grown_from - 1)):
            raise ValueError(f"grown_from {self.grown_from} must be a smaller power of two than {r}")
        if self.fade and not self.grown_from:
            raise ValueError("fade needs grown_from (the first stage has nothing to fade from)")
        if self.fade and self.skip_rgb:
            raise ValueError("fade and skip_rgb are two ways to grow: use one")
        first = self.rgb_from or r
        if self.skip_rgb and (first > (self.grown_from or r) or first < 4 or first & (first - 1)):
            raise ValueError(f"rgb_from {first} must be a power of two >= 4 and <= {self.grown_from or r}")
        if self.g_norm not in NORMS:
            raise ValueError(f"g_norm {self.g_norm!r} must be one of {', '.join(NORMS)}")
        if self.d_norm not in D_NORMS:
            raise ValueError(f"d_norm {self.d_norm!r} must be one of {', '.join(D_NORMS)}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding {self.padding!r} must be one of {', '.join(PADDINGS)}")
        if self.g_upsample not in UPSAMPLES:
            raise ValueError(f"g_upsample {self.g_upsample!r} must be one of {', '.join(UPSAMPLES)}")
        if self.n_classes < 0:
            raise ValueError(f"n_classes {self.n_classes} must be >= 0 (0: unconditional)")
        if self.z_dim < 1 or self.channels(r) < 1:
            raise ValueError(
                f"z_dim and channel_base // resolution must be >= 1 ({self.z_dim}, {self.channel_base})"
            )
        return self

    def channels(self, r: int) -> int:
        return min(self.max_channels, self.channel_base // r)

    def resolutions(self) -> list[int]:
        """Block resolutions coarse -> fine, e.g. [4, 8, 16]."""
        return [4 << i for i in range(int(math.log2(self.resolution // 4)) + 1)]

    def old_resolutions(self) -> list[int]:
        """Resolutions whose blocks existed before the last growth (empty at the first stage)."""
        return [r for r in self.resolutions() if r <= self.grown_from]

    def rgb_resolutions(self) -> list[int]:
        """Resolutions with a toRGB (G) and fromRGB (D) of their own: the current one, or with
        ``skip_rgb`` every one from the first stage's up (a fade-in's old one is added separately)."""
        if not self.skip_rgb:
            return [self.resolution]
        return [r for r in self.resolutions() if r >= (self.rgb_from or self.resolution)]

    def old_rgb_resolutions(self) -> list[int]:
        """The toRGB/fromRGB resolutions that existed before the last growth (kept, frozen with the rest)."""
        if self.fade:
            return [self.grown_from]
        return [r for r in self.rgb_resolutions() if r <= self.grown_from]


def _class_input(y: Tensor | None, n_classes: int, who: str) -> Tensor | None:
    """Check that labels come exactly when the model is conditional."""
    if n_classes and y is None:
        raise ValueError(f"this {who} is class-conditional ({n_classes} classes): pass the labels y")
    if not n_classes and y is not None:
        raise ValueError(f"this {who} is unconditional: it takes no labels")
    return y


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "instance":
        return nn.InstanceNorm2d(c, affine=True)
    if kind == "pixel":
        return PixelNorm()
    return nn.Identity()  # none, spectral (the weights are normalised instead)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv (and class-embedding) weights ~ N(0, 0.02); norm scales ~ N(1, 0.02),
    shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Growable(nn.Module):
    """Shared by G and D: ``alpha``, the frozen-layer bookkeeping and a ``train()`` that keeps them in eval."""

    def __init__(self, args: ProGANArgs):
        super().__init__()
        self.args = args.validate()
        self.alpha = 1.0
        self.frozen: tuple[str, ...] = ()

    def old_layer_names(self) -> list[str]:
        """Submodule names of the layers that existed before the last growth."""
        raise NotImplementedError

    def set_frozen(self, names: list[str] | tuple[str, ...]) -> None:
        """Freeze exactly these submodules (``requires_grad=False``, eval mode); unfreeze the rest."""
        for p in self.parameters():
            p.requires_grad_(True)
        for name in names:
            self.get_submodule(name).requires_grad_(False)
        self.frozen = tuple(names)
        self.train(self.training)

    def train(self, mode: bool = True) -> Growable:
        super().train(mode)
        for name in getattr(self, "frozen", ()):
            self.get_submodule(name).eval()
        return self

    @property
    def fading(self) -> bool:
        return self.args.fade and self.alpha < 1.0


def _upsample(mode: str) -> nn.Upsample:
    """x2: nearest copies every pixel four times; bilinear interpolates (no 2-px blocks for the convs)."""
    return nn.Upsample(scale_factor=2, mode=mode, align_corners=False if mode == "bilinear" else None)


class Generator(Growable):
    """``z [B, z_dim]`` -> images ``[B, 3, R, R]`` in [-1, 1] (tanh), R = ``args.resolution``."""

    def __init__(self, args: ProGANArgs):
        super().__init__(args)
        a = self.args
        self.blocks = nn.ModuleDict()
        for r in a.resolutions():
            if r == 4:  # stem: [B, z (+ z: the class embedding), 1, 1] -> [B, C4, 4, 4]
                z_in = a.z_dim * (2 if a.n_classes else 1)
                conv = nn.ConvTranspose2d(z_in, a.channels(4), 4, 1, 0, bias=a.g_norm in ("none", "pixel"))
            elif a.g_upsample in ("nearest", "bilinear"):  # [B, C(r/2), r/2, r/2] -> x2, 3x3 conv -> [B, C(r), r, r]
                conv = nn.Sequential(
                    _upsample(a.g_upsample),
                    nn.Conv2d(
                        a.channels(r // 2),
                        a.channels(r),
                        3,
                        1,
                        1,
                        bias=a.g_norm in ("none", "pixel"),
                        padding_mode=a.padding,
                    ),
                )
            else:  # [B, C(r/2), r/2, r/2] -> [B, C(r), r, r]
                conv = nn.ConvTranspose2d(
                    a.channels(r // 2), a.channels(r), 4, 2, 1, bias=a.g_norm in ("none", "pixel")
                )
            self.blocks[str(r)] = nn.Sequential(
                OrderedDict(conv=conv, norm=_norm(a.g_norm, a.channels(r)), act=nn.ReLU(inplace=True))
            )
        self.to_rgb = nn.ModuleDict({str(r): nn.Conv2d(a.channels(r), 3, 1) for r in a.rgb_resolutions()})
        # skip_rgb's RGB path
        self.skip_up = _upsample("bilinear" if a.g_upsample == "bilinear" else "nearest")
        if a.fade:
            self.to_rgb[str(a.grown_from)] = nn.Conv2d(a.channels(a.grown_from), 3, 1)
        init_weights(self)
        if a.n_classes:  # the class code, on the latent's scale: N(0, 1) like z
            self.embed = nn.Embedding(a.n_classes, a.z_dim)
        if a.skip_rgb and a.grown_from:  # grown: the new toRGBs add nothing yet (growing copies the old ones)
            for r in a.rgb_resolutions():
                if r > a.grown_from:
                    nn.init.zeros_(self.to_rgb[str(r)].weight)
                    nn.init.zeros_(self.to_rgb[str(r)].bias)

    def old_layer_names(self) -> list[str]:
        a = self.args
        embed = ["embed"] if a.n_classes and a.grown_from else []  # the stem's input: frozen with the stem
        return (
            [f"blocks.{r}" for r in a.old_resolutions()]
            + [f"to_rgb.{r}" for r in a.old_rgb_resolutions()]
            + embed
        )

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        a = self.args
        if _class_input(y, a.n_classes, "generator") is not None:
            z = torch.cat([z, self.embed(y)], dim=1)  # [B, 2z]
        x = z.reshape(z.shape[0], -1, 1, 1)  # [B, z (or 2z), 1, 1]
        if a.skip_rgb:
            return self._forward_skip(x)
        skip = None
        for key, block in self.blocks.items():
            x = block(x)  # [B, C(r), r, r]
            if self.fading and int(key) == a.grown_from:
                skip = x
        out = self.to_rgb[str(a.resolution)](x).tanh()  # [B, 3, R, R]
        if skip is not None:
            old = self.to_rgb[str(a.grown_from)](skip).tanh()  # [B, 3, R0, R0]
            old = F.interpolate(
                old, scale_factor=a.resolution // a.grown_from, mode="nearest"
            )  # [B, 3, R, R]
            out = self.alpha * out + (1.0 - self.alpha) * old
        return out

    def _forward_skip(self, x: Tensor) -> Tensor:
        """``rgb_r = upsample(rgb_{r/2}) + toRGB_r(block_r(x))`` from the first toRGB up; ``tanh(rgb_R)``."""
        rgb = None
        for key, block in self.blocks.items():
            x = block(x)  # [B, C(r), r, r]
            if key in self.to_rgb:
                y = self.to_rgb[key](x)  # [B, 3, r, r], before tanh
                rgb = y if rgb is None else self.skip_up(rgb) + y
        return rgb.tanh()  # [B, 3, R, R]


class Discriminator(Growable):
    """Images ``[B, 3, R, R]`` -> raw logits ``[B]`` (the loss object applies sigmoid/BCE or Wasserstein)."""

    def __init__(self, args: ProGANArgs):
        super().__init__(args)
        a = self.args

        def from_rgb(r: int) -> nn.Module:  # [B, 3, r, r] -> [B, C(r), r, r]; no norm (DCGAN's first layer)
            return nn.Sequential(OrderedDict(conv=nn.Conv2d(3, a.channels(r), 1), act=nn.LeakyReLU(0.2)))

        self.from_rgb = nn.ModuleDict({str(r): from_rgb(r) for r in reversed(a.rgb_resolutions())})
        if a.fade:
            self.from_rgb[str(a.grown_from)] = from_rgb(a.grown_from)
        self.blocks = nn.ModuleDict()
        for r in reversed(a.resolutions()):
            if r == 4:  # head: [B, C4, 4, 4] (+ the minibatch-stddev map) -> [B, 1, 1, 1]
                head = OrderedDict(mbstd=MinibatchStd()) if a.mbstd else OrderedDict()
                head["conv"] = nn.Conv2d(a.channels(4) + int(a.mbstd), 1, 4, 1, 0)
                self.blocks["4"] = nn.Sequential(head)
            else:  # [B, C(r), r, r] -> [B, C(r/2), r/2, r/2]
                conv = nn.Conv2d(
                    a.channels(r),
                    a.channels(r // 2),
                    4,
                    2,
                    1,
                    bias=a.d_norm in ("none", "spectral"),
                    padding_mode=a.padding,
                )
                self.blocks[str(r)] = nn.Sequential(
                    OrderedDict(conv=conv, norm=_norm(a.d_norm, a.channels(r // 2)), act=nn.LeakyReLU(0.2))
                )
        if a.n_classes:  # the projection: one C4-vector per class, dotted with the head's pooled input
            self.embed = nn.Embedding(a.n_classes, a.channels(4))
        init_weights(self)  # (the projection starts at N(0, 0.02), like the convolutions)
        if a.d_norm == "spectral":  # every convolution's weight divided by its largest singular value
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Embedding)):  # the projection too (Miyato & Koyama)
                    nn.utils.parametrizations.spectral_norm(m)

    def old_layer_names(self) -> list[str]:
        a = self.args
        embed = ["embed"] if a.n_classes and a.grown_from else []  # the head's projection: frozen with it
        return (
            [f"blocks.{r}" for r in a.old_resolutions()]
            + [f"from_rgb.{r}" for r in a.old_rgb_resolutions()]
            + embed
        )

    def forward(self, img: Tensor, y: Tensor | None = None) -> Tensor:
        a = self.args
        _class_input(y, a.n_classes, "discriminator")
        x = self.from_rgb[str(a.resolution)](img)  # [B, C(R), R, R]
        projection = None
        for key, block in self.blocks.items():
            if key == "4" and y is not None:  # x: [B, C4, 4, 4], what enters the head
                projection = (self.embed(y) * x.sum(dim=(2, 3))).sum(dim=1)  # [B]
            x = block(x)  # [B, C(r/2), r/2, r/2] (head: [B, 1, 1, 1])
            if self.fading and int(key) == 2 * a.grown_from:
                small = F.avg_pool2d(img, a.resolution // a.grown_from)  # [B, 3, R0, R0]
                old = self.from_rgb[str(a.grown_from)](small)  # [B, C(R0), R0, R0]
                x = self.alpha * x + (1.0 - self.alpha) * old
            elif a.skip_rgb and str(int(key) // 2) in self.from_rgb:  # the image again, at r/2
                r = int(key) // 2
                x = x + self.from_rgb[str(r)](F.avg_pool2d(img, a.resolution // r))  # [B, C(r), r, r]
        x = x.reshape(x.shape[0])  # [B]
        return x if projection is None else x + projection


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
