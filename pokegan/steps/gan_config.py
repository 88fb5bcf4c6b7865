"""``[gan]``, step 3b's config (:class:`GANConfig`), importable without torch: ``poke train gan`` builds its
options from these fields. The step is :mod:`pokegan.steps.gan` (the loop) and
:mod:`pokegan.steps.gan_setup` (its objects and checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pokedata.errors import UserError
from pokegan.config import DEVICE, SEED, DataConfig, cli, inline
from pokegan.diffaugment_policy import parse_policy
from pokegan.judge_config import JudgeConfig
from pokegan.loss_config import LossConfig


@dataclass
class GANConfig:
    """``[gan]``: step 3, GAN fine-tuning of the step-2 generator.

    ``loss`` holds the loss's settings; its keys (``loss`` for the name, ``n_critic``, ``gp_weight``,
    ``clip``, ``lr_g``, ``lr_d``, ``betas``, ``drift``, ``r1_gamma``) are ``[gan]`` keys.
    """

    loss: LossConfig = inline(LossConfig)
    recon_weight: float = 0.0  # pixel L1 of G(embedding of a real batch) vs that batch, added to the
    # generator loss: step 2's task as an anchor while the adversarial term sharpens (0 = off)
    recon_size: int = 0  # compare the anchor's images area-averaged to this size (0 = full size): the
    # anchor then holds colour and layout and leaves the finer detail to the adversarial term
    # the real images flipped and cropped as [data] augment gives them; off: as they are, like the
    # embeddings the mixture was fitted to and the images step 2 learned to redraw
    augment: bool = True
    # generator steps (batch size, workers, cache: the [data] section)
    steps: int = field(default=20_000, metadata=cli("Generator steps to train."))
    d_channels: int = 32  # critic channels at the finest resolution
    d_max_channels: int = 512
    d_downsample: str = "stride"  # dcgan critic: "stride" (4x4 stride-2 convs) | "pool" (3x3 conv + 2x2 mean)
    ema_decay: float = field(default=0.999, metadata=cli("EMA decay of the generator weights."))
    n_fixed: int = 64  # fixed latents of the sample grids
    sample_every: int = field(default=500, metadata=cli("Steps between sample grids."))
    checkpoint_every: int = field(default=500, metadata=cli("Steps between last.pt saves."))
    metrics_every: int = field(
        default=2000, metadata=cli("Steps between evaluations (judge FD/KID/precision/recall, FCD).")
    )
    metrics_samples: int = 2000  # val images and generated images per evaluation (judge and FCD)
    # DiffAugment policy for real and fake alike, e.g. "color,translation,cutout"
    diffaugment: str = field(
        default="",
        metadata=cli(
            "DiffAugment policy applied to real and fake alike, e.g. color,translation,cutout"
            " (default: none; real images are only flipped)."
        ),
    )
    judge_width: int = 16  # the judge network (pokegan.judge): ResNet-18 width, epochs, train-image cap
    judge_epochs: int = 6
    judge_max_images: int = 4000
    log_every: int = 50
    max_nan_retries: int = 3
    nan_lr_factor: float = 0.5
    # allow training without the step-2 generator ([data] image_size then)
    from_scratch: bool = field(
        default=False,
        metadata=cli("Allow a random generator when step 2 has not run.", "--from-scratch/--from-pretrain"),
    )
    seed: int = field(default=0, metadata=SEED)
    device: str = field(default="auto", metadata=DEVICE)
    amp: bool = True  # bf16 autocast on CUDA
    data: DataConfig = field(default_factory=DataConfig)

    def judge_config(self) -> JudgeConfig:
        return JudgeConfig(
            width=self.judge_width,
            epochs=self.judge_epochs,
            max_train_images=self.judge_max_images,
            device=self.device,
        ).validate()

    def validate(self) -> GANConfig:
        self.loss.validate()
        for name in ("steps", "n_fixed", "sample_every", "checkpoint_every", "metrics_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(
                    f"[gan] {name} = {getattr(self, name)} must be >= 1",
                    hint=f"fix --{name.replace('_', '-')}",
                )
        if self.recon_weight < 0:
            raise UserError(f"[gan] recon_weight {self.recon_weight} must be >= 0", hint="0 turns it off")
        if self.recon_size < 0 or self.recon_size & (self.recon_size - 1):
            raise UserError(
                f"[gan] recon_size {self.recon_size} must be 0 or a power of two",
                hint="e.g. 8 (compare 8x8 averages), or 0 for full size",
            )
        if self.d_downsample not in ("stride", "pool"):
            raise UserError(f"[gan] d_downsample {self.d_downsample!r} is unknown", hint="use stride or pool")
        if self.metrics_samples < 8:
            raise UserError("[gan] metrics_samples must be >= 8", hint="e.g. --metrics-samples 2000")
        self.judge_config()
        parse_policy(self.diffaugment, "[gan] diffaugment")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"[gan] ema_decay {self.ema_decay} must be in [0, 1)", hint="e.g. 0.999")
        if not 0.0 < self.nan_lr_factor < 1.0 or self.max_nan_retries < 0:
            raise UserError(
                "[gan] nan_lr_factor must be in (0, 1) and max_nan_retries >= 0", hint="e.g. 0.5 and 3"
            )
        return self


__all__ = ["GANConfig"]
