"""``[progan]``: the progressive DCGAN's configuration, its stages and their cycles.

A stage trains at one size of ``sizes`` (powers of two, increasing: 16, 32, 64 by default). Each stage runs
a *cycle*: a list of ``{lr, epochs}`` entries in order (an entry may also set ``lr_d``, the
discriminator's learning rate, which otherwise equals ``lr``). ``cycle`` is the default for every stage;
``cycles`` overrides it per size. In TOML::

    [progan]
    sizes = [16, 32, 64]
    cycle = [{lr = 2e-4, epochs = 4}, {lr = 5e-5, epochs = 2}]   # every stage...
    [progan.cycles]
    64 = [{lr = 2e-4, epochs = 8}, {lr = 1e-4, epochs = 4}, {lr = 2e-5, epochs = 2}]   # ...but this one

On the command line ``--cycle 2e-4:4,5e-5:2`` (``LR:EPOCHS`` pairs) sets ``cycle``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from pokedata.errors import UserError
from pokegan.config import DEVICE, SEED, DataConfig, cli, config_to_toml
from pokegan.diffaugment_policy import parse_policy
from pokegan.loss_config import LOSS_NAMES, LossConfig

NORMS = ("batch", "instance", "pixel", "none")
# the critic may also use spectral normalisation of its convolution weights instead of a norm layer
D_NORMS = (*NORMS, "spectral")
# zeros: a convolution sees mid-grey (0 in [-1, 1]) beyond the image edge; replicate: the edge pixel
# continues, so a flat background reaching the border is the easy case instead of a frame to be unlearnt
PADDINGS = ("zeros", "replicate")
# transpose: DCGAN's ConvTranspose2d(4, stride 2), whose uneven kernel overlap draws a checkerboard until
# training smooths it out; nearest: nearest-neighbour x2 then a 3x3 conv (Odena et al. 2016), no
# checkerboard by construction, and flat colour regions (sprites) come for free.
# bilinear: bilinear x2 then a 3x3 conv: no 2-px blocks for the GAN to modulate into a texture.
UPSAMPLES = ("transpose", "nearest", "bilinear")
# the class anchor's real image for each fake: its batch row's, or the nearest of its class (progan/anchor.py)
ANCHOR_MATCHES = ("row", "nearest", "cover", "chamfer")

_ENTRY_KEYS = {"lr", "epochs", "lr_d"}


def _default_cycle() -> list[dict]:
    return [{"lr": 2e-4, "epochs": 4}, {"lr": 5e-5, "epochs": 2}]


@dataclass(frozen=True)
class CycleEntry:
    lr: float
    epochs: int
    lr_d: float

    @classmethod
    def parse(cls, raw: object, where: str) -> CycleEntry:
        if not isinstance(raw, dict):
            raise UserError(
                f"{where}: {raw!r} is not a table", hint="write entries as {lr = 2e-4, epochs = 4}"
            )
        unknown = set(raw) - _ENTRY_KEYS
        if unknown or "lr" not in raw or "epochs" not in raw:
            raise UserError(
                f"{where}: entry {raw!r} needs exactly lr and epochs (and optionally lr_d)",
                hint="e.g. {lr = 2e-4, epochs = 4}"
                + (f"; unknown key(s) {', '.join(sorted(unknown))}" if unknown else ""),
            )
        try:
            lr, epochs = float(raw["lr"]), raw["epochs"]
            lr_d = float(raw.get("lr_d", lr))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: entry {raw!r} has a non-numeric lr", hint="e.g. lr = 2e-4") from exc
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise UserError(f"{where}: epochs {epochs!r} must be a whole number >= 1", hint="e.g. epochs = 4")
        if not (lr > 0 and lr_d > 0):
            raise UserError(f"{where}: learning rates must be > 0 (got {raw!r})", hint="e.g. lr = 2e-4")
        return cls(lr=lr, epochs=epochs, lr_d=lr_d)


def parse_cycle_option(text: str, flag: str = "--cycle") -> list[dict]:
    """``"2e-4:4,5e-5:2"`` -> ``[{"lr": 2e-4, "epochs": 4}, {"lr": 5e-5, "epochs": 2}]``."""
    entries = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lr, sep, epochs = part.partition(":")
        try:
            entries.append({"lr": float(lr), "epochs": int(epochs)})
        except ValueError:
            sep = ""
        if not sep:
            raise UserError(f"--cycle entry {part!r} is not LR:EPOCHS", hint="e.g. --cycle 2e-4:4,5e-5:2")
    if not entries:
        raise UserError(f"--cycle {text!r} has no entries", hint="e.g. --cycle 2e-4:4,5e-5:2")
    return entries


def parse_sizes_option(text: str, flag: str = "--sizes") -> list[int]:
    """``"16,32,64"`` -> ``[16, 32, 64]`` (validated later by :meth:`ProGANConfig.validate`)."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise UserError(
            f"--sizes {text!r} is not a comma-separated list of sizes", hint="e.g. --sizes 16,32,64"
        ) from exc


@dataclass
class ProGANConfig:
    """``[progan]``: the progressive DCGAN (stages, cycles, architecture, loss, growth, pictures)."""

    sizes: list[int] = field(
        default_factory=lambda: [16, 32, 64],
        metadata=cli("Stage sizes, powers of two, increasing: e.g. 16,32,64.", parse=parse_sizes_option),
    )
    # every stage's {lr, epochs} entries
    cycle: list[dict] = field(
        default_factory=_default_cycle,
        metadata=cli("Every stage's cycle as LR:EPOCHS pairs, e.g. 2e-4:4,5e-5:2.", parse=parse_cycle_option),
    )
    cycles: dict[str, list[dict]] = field(default_factory=dict)  # per-size overrides: {"64": [...]}
    # dcgan | wgan-gp | wgan (single-scale losses of step 3)
    loss: str = field(
        default="dcgan", metadata=cli("dcgan (default), wgan-gp or wgan: step 3's loss objects.")
    )
    n_critic: int = 0  # 0 = the loss's default (wgan, wgan-gp: 5; dcgan: 1)
    gp_weight: float = 10.0
    clip: float = 0.01
    drift: float = 0.001
    r1_gamma: float = 0.0  # R1 penalty on real images (0 = off)
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])  # Adam (DCGAN's); wgan uses RMSprop
    z_dim: int = 128
    channel_base: int = 2048  # channels at resolution r: min(max_channels, channel_base // r)
    max_channels: int = 512
    norm: str = field(
        default="batch", metadata=cli("Generator norm: batch (default), instance, pixel or none.")
    )
    upsample: str = (
        "transpose"  # generator upsampling: transpose (DCGAN) | nearest | bilinear (x2, then a 3x3 conv)
    )
    d_norm: str = "auto"  # discriminator norm (or spectral); auto = norm, but instance for wgan-gp
    padding: str = "zeros"  # zeros | replicate: padding of G's 3x3 and D's 4x4 convolutions
    mbstd: bool = False  # minibatch-stddev feature map before the critic's head (ProGAN)
    ema_decay: float = 0.0  # EMA of G's weights (samples, grids and eval use it); 0 = off
    diffaugment: str = ""  # DiffAugment policy for real and fake alike, e.g. "color,translation,cutout"
    freeze: bool = field(default=True, metadata=cli("Freeze layers learned at smaller sizes (default on)."))
    fade_in: bool = field(
        default=False, metadata=cli("Fade new blocks in with alpha 0->1 (ProGAN) instead of switching hard.")
    )
    fade_fraction: float = 0.5  # share of a stage's steps over which alpha rises
    # StyleGAN2 skip outputs, the other way to grow: G's image is the sum of every stage's toRGB
    # (upsampled), a new toRGB starts at zero so growing leaves G's images as they were; D re-reads the
    # downsampled image after each block. No alpha: use instead of fade_in
    skip_rgb: bool = field(
        default=False,
        metadata=cli(
            "Grow with StyleGAN2 skip outputs: G sums every stage's toRGB, a new one starting at zero"
            " (instead of --fade-in).",
            "--skip-rgb/--no-skip-rgb",
        ),
    )
    # class-conditional: G(z, y) with a class embedding beside z, D with a projection head (cGAN); the
    # manifest's labels are the classes, samples draw labels from the train split's class frequencies
    conditional: bool = field(
        default=False,
        metadata=cli(
            "Class-conditional: G draws G(z, label), D scores images against their label (projection).",
            "--conditional/--no-conditional",
        ),
    )
    # the class anchor (conditional only): G's step also adds anchor_weight * L1 between its image for
    # label y and the real batch image it was drawn beside (same label), compared as anchor_size x
    # anchor_size area averages (0 = full size): each class's colours and layout, the critic the detail
    anchor_weight: float = 0.0  # 0 = off
    anchor_size: int = 8
    # which real image a fake is held to: "row" (the one it was drawn beside, a random frame of its label)
    # or "nearest" (the closest train image of its label, mirrors included when [data] augment flips):
    # the row anchor pulls a class to the blend of its frames, the nearest one to any one of them;
    # "cover": 4 fakes per real image of the batch, the real held to its nearest candidate (IMLE);
    # "chamfer": the mean of the two, every fake to its nearest frame and every real to its nearest fake
    anchor_match: str = "row"
    n_fixed: int = 64  # fixed latents of the sample grids and the GIF
    sample_every: int = 200  # steps between snapshots (GIF frame + TensorBoard image)
    checkpoint_every: int = 500  # steps between last.pt saves (also saved at every epoch's end)
    log_every: int = 20
    gradflow_every: int = 10  # steps between gradient-flow records (averaged per stage)
    gif_size: int = 0  # tile size in all_samples.gif; 0 = the largest stage size (at least 64)
    gif_frame_ms: int = 250
    seed: int = field(default=0, metadata=SEED)
    device: str = field(default="auto", metadata=DEVICE)
    amp: bool = True  # bf16 autocast on CUDA
    data: DataConfig = field(
        default_factory=DataConfig
    )  # [data]: batch, workers, augment, cache (not image_size)

    def validate(self) -> ProGANConfig:
        sizes = list(self.sizes)
        if not sizes or any(not isinstance(s, int) or s < 8 or s & (s - 1) for s in sizes):
            raise UserError(f"--sizes {sizes} must be powers of two >= 8", hint="e.g. --sizes 16,32,64")
        if sorted(set(sizes)) != sizes:
            raise UserError(f"--sizes {sizes} must be strictly increasing", hint="e.g. --sizes 16,32,64")
        self.sizes = sizes
        if self.loss not in LOSS_NAMES or self.loss == "wgan-gp-msg":
            raise UserError(
                f"--loss {self.loss!r} is not a single-scale loss",
                hint="use dcgan, wgan-gp or wgan (wgan-gp-msg needs a multi-scale generator: use `poke train gan`)",
            )
        self.loss_config().validate()
        if self.upsample not in UPSAMPLES:
            raise UserError(
                f"[progan] upsample {self.upsample!r} is unknown", hint=f"use one of {', '.join(UPSAMPLES)}"
            )

        parse_policy(self.diffaugment, "[progan] diffaugment")
        if self.norm not in NORMS or self.d_norm not in (*D_NORMS, "auto"):
            raise UserError(
                f"--norm {self.norm!r} / d_norm {self.d_norm!r} unknown",
                hint=f"use one of {', '.join(NORMS)} (d_norm also spectral or auto)",
            )
        if self.padding not in PADDINGS:
            raise UserError(
                f"[progan] padding {self.padding!r} is unknown", hint=f"use one of {', '.join(PADDINGS)}"
            )
        for name in (
            "z_dim",
            "n_fixed",
            "sample_every",
            "checkpoint_every",
            "log_every",
            "gradflow_every",
        ):
            if getattr(self, name) < 1:
                raise UserError(
                    f"[progan] {name} = {getattr(self, name)} must be >= 1",
                    hint=f"fix --{name.replace('_', '-')}",
                )
        self.data.validate()
        if self.channel_base // self.sizes[-1] < 1 or self.max_channels < 1:
            raise UserError(
                f"channel_base {self.channel_base} leaves no channels at {self.sizes[-1]} px",
                hint=f"use channel_base >= {self.sizes[-1]}",
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(
                f"[progan] ema_decay {self.ema_decay} must be in [0, 1)", hint="e.g. 0.995 (0 = off)"
            )
        if self.skip_rgb and self.fade_in:
            raise UserError(
                "skip_rgb and fade_in are two ways to grow; they cannot be combined",
                hint="use --skip-rgb --no-fade-in, or --fade-in --no-skip-rgb",
            )
        if not 0.0 < self.fade_fraction <= 1.0:
            raise UserError(f"fade_fraction {self.fade_fraction} must be in (0, 1]", hint="e.g. 0.5")
        if self.anchor_weight < 0 or self.anchor_size < 0 or self.anchor_size & (self.anchor_size - 1):
            raise UserError(
                f"[progan] anchor_weight {self.anchor_weight} must be >= 0 and anchor_size"
                f" {self.anchor_size} 0 or a power of two",
                hint="e.g. anchor_weight = 3.0, anchor_size = 8 (anchor_weight = 0: off)",
            )
        if self.anchor_match not in ANCHOR_MATCHES:
            raise UserError(
                f"[progan] anchor_match {self.anchor_match!r} must be one of {', '.join(ANCHOR_MATCHES)}",
                hint='e.g. anchor_match = "nearest"',
            )
        if self.anchor_weight > 0 and not self.conditional:
            raise UserError(
                "[progan] anchor_weight needs conditional = true: the anchor pairs each fake with a real"
                " image of its label (unconditional, it would pull every sample to the data's mean)",
                hint="add --conditional, or set anchor_weight = 0",
            )
        if self.gif_size < 0 or self.gif_frame_ms < 1:
            raise UserError("gif_size must be >= 0 and gif_frame_ms >= 1", hint="fix the [progan] section")
        if not isinstance(self.cycles, dict):
            raise UserError(
                f"[progan.cycles] must be a table of size = [entries], not {self.cycles!r}",
                hint="e.g. [progan.cycles] then 64 = [{lr = 2e-4, epochs = 8}]",
            )
        unknown = {str(k) for k in self.cycles} - {str(s) for s in self.sizes}
        if unknown:
            raise UserError(
                f"[progan.cycles] has sizes {sorted(unknown)} that are not in sizes {self.sizes}",
                hint="key the overrides by a size of --sizes, e.g. [progan.cycles] 64 = [...]",
            )
        self.cycles = {str(k): v for k, v in self.cycles.items()}
        for size in self.sizes:
            self.stage_cycle(size)
        return self

    def stage_cycle(self, size: int) -> list[CycleEntry]:
        """The cycle of the stage at ``size``: its override in ``cycles`` or the default ``cycle``."""
        raw = self.cycles.get(str(size), self.cycle)
        where = f"[progan.cycles] {size}" if str(size) in self.cycles else "[progan] cycle"
        if not isinstance(raw, list) or not raw:
            raise UserError(
                f"{where} must be a non-empty list of {{lr, epochs}} entries",
                hint="e.g. --cycle 2e-4:4,5e-5:2",
            )
        return [CycleEntry.parse(e, where) for e in raw]

    @property
    def resolved_d_norm(self) -> str:
        if self.d_norm != "auto":
            return self.d_norm
        return "instance" if self.loss == "wgan-gp" and self.norm == "batch" else self.norm

    def loss_config(self, lr: float = 2e-4, lr_d: float | None = None) -> LossConfig:
        return LossConfig(
            name=self.loss,
            n_critic=self.n_critic,
            gp_weight=self.gp_weight,
            clip=self.clip,
            lr_g=lr,
            lr_d=lr if lr_d is None else lr_d,
            betas=tuple(self.betas),
            drift=self.drift,
            r1_gamma=self.r1_gamma,
        )


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table: {lr = 0.0002, epochs = 4}
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} to TOML")


def progan_config_to_toml(cfg: ProGANConfig) -> str:
    """``[data]``, ``[progan]`` and ``[progan.cycles]`` as TOML; ``--config`` reads it back unchanged.

    (The shared ``config_to_toml`` writes flat sections; the cycles need inline tables.)
    """

    lines = ["[progan]"]
    for f in fields(cfg):
        if f.name not in ("data", "cycles"):
            lines.append(f"{f.name} = {_toml_value(getattr(cfg, f.name))}")
    text = config_to_toml(cfg.data, "data") + "\n" + "\n".join(lines) + "\n"
    if cfg.cycles:
        rows = [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in cfg.cycles.items()]
        text += "\n[progan.cycles]\n" + "\n".join(rows) + "\n"
    return text
