"""The GAN losses' settings (:class:`LossConfig`), importable without torch: ``poke --help`` builds the
``train gan`` options from these fields, and ``[gan]`` holds one inline (its keys are ``[gan]`` keys).
The loss objects themselves are in :mod:`pokegan.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pokedata.errors import UserError
from pokegan.config import cli

LOSS_NAMES = ("wgan-gp-msg", "wgan-gp", "wgan", "dcgan")

DEFAULT_N_CRITIC = {"wgan-gp-msg": 1, "wgan-gp": 5, "wgan": 5, "dcgan": 1}


@dataclass
class LossConfig:
    """Everything a loss needs. ``n_critic = 0`` means the loss's own default (wgan/wgan-gp 5, else 1)."""

    # wgan-gp-msg | wgan-gp | wgan | dcgan; the key `loss` of a config section
    name: str = field(
        default="wgan-gp-msg",
        metadata={**cli("wgan-gp-msg (default), wgan-gp, wgan or dcgan."), "key": "loss"},
    )
    n_critic: int = field(
        default=0, metadata=cli("Critic steps per generator step (0 = the loss's default).")
    )
    gp_weight: float = field(default=10.0, metadata=cli("Gradient-penalty weight (WGAN-GP)."))
    clip: float = 0.01  # wgan weight clipping
    lr_g: float = field(default=1e-4, metadata=cli("Generator learning rate."))
    lr_d: float = field(default=1e-4, metadata=cli("Discriminator learning rate."))
    betas: tuple[float, float] = field(default=(0.0, 0.99))  # Adam's (RMSprop for wgan)
    drift: float = 0.001  # WGAN-GP's drift term: drift * E[D(real)^2]
    # R1 penalty weight on real images (0 = off; with wgan-gp, gp_weight = 0 uses R1 instead)
    r1_gamma: float = 0.0

    def validate(self) -> LossConfig:
        if self.name not in LOSS_NAMES:
            raise UserError(
                f"--loss {self.name!r} is not a known loss", hint=f"use one of {', '.join(LOSS_NAMES)}"
            )
        if self.n_critic < 0:
            raise UserError(f"n_critic {self.n_critic} is negative", hint="use 0 (the loss default) or more")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise UserError(
                f"learning rates must be > 0 (lr_g={self.lr_g}, lr_d={self.lr_d})", hint="fix [gan] lr_g/lr_d"
            )
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise UserError(
                f"betas {self.betas!r} must be two numbers in [0, 1)", hint="e.g. betas = [0.0, 0.99]"
            )
        self.betas = (float(betas[0]), float(betas[1]))
        if self.gp_weight < 0 or self.drift < 0 or self.clip <= 0 or self.r1_gamma < 0:
            raise UserError(
                "gp_weight, drift and r1_gamma must be >= 0 and clip > 0", hint="fix the [gan] section"
            )
        return self

    @property
    def effective_n_critic(self) -> int:
        return self.n_critic or DEFAULT_N_CRITIC.get(self.name, 1)


__all__ = ["DEFAULT_N_CRITIC", "LOSS_NAMES", "LossConfig"]
