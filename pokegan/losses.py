"""GAN losses as objects, apart from the training loop (the stylegan2-ada split: the loop runs phases,
optimizer steps, EMA, logging and snapshots; a loss object only says how to score).

Contract (step 3 and the progressive DCGAN both use it)::

    class GANLoss:
        name: str            # "wgan-gp-msg" | "wgan-gp" | "wgan" | "dcgan"
        multiscale: bool     # True for wgan-gp-msg: D and G exchange lists of images (coarse -> fine)
        n_critic: int        # discriminator steps per generator step
        def d_loss(self, D, real, fake) -> tuple[Tensor, dict[str, float]]   # real/fake: Tensor or list
        def g_loss(self, D, fake) -> tuple[Tensor, dict[str, float]]
        def make_optimizers(self, g_params, d_params, cfg=None) -> tuple[Optimizer, Optimizer]
        def after_d_step(self, D) -> None   # wgan: weight clipping; others: nothing

    make_loss(cfg: LossConfig) -> GANLoss
    gradient_penalty(D, real, fake) -> Tensor      # tensors, or lists of tensors (MSG)

``D`` is any module mapping an image batch ``[B, 3, H, W]`` (or, for multi-scale losses, a list of
batches coarse -> fine) to raw scores ``[B]`` or ``[B, 1]``. ``d_loss`` detaches ``fake`` itself, so the
caller may pass the generator's output as is. The critic runs in float32, its scores and the gradient
penalty included, even inside the caller's autocast region (``_scores`` switches autocast off around
``D``): the penalty differentiates a gradient norm, which bf16/fp16 round away. The generator may run
under autocast; with fp16 its backward pass needs a grad scaler, which the loops keep (``scaler_g``).

The losses:

- ``wgan-gp-msg`` (default): WGAN-GP where real and fake are image pyramids (MSG-GAN, Karnewar & Wang
  2020): gradients reach every generator scale directly. The penalty interpolates every scale with the
  same per-sample alpha and takes the norm of the gradient over all scales together.
- ``wgan-gp``: Wasserstein critic with gradient penalty (Gulrajani et al. 2017), one scale.
- ``wgan``: the original WGAN (Arjovsky et al. 2017): weight clipping after every critic step, RMSprop.
- ``dcgan``: non-saturating BCE (Goodfellow et al. 2014; Radford et al. 2016).

The WGAN-GP variants add ProGAN's drift term ``drift * E[D(real)^2]``, which keeps critic scores near 0.

Two options for every loss (both off by default):

- ``r1_gamma > 0`` adds the R1 penalty ``gamma / 2 * E[||grad_x D(x_real)||^2]`` (Mescheder et al. 2018;
  StyleGAN2's regulariser) to the critic loss. With ``wgan-gp`` set ``gp_weight = 0`` to use R1 *instead
  of* the interpolate penalty.

DiffAugment (real and fake alike) is not a loss option: the loop passes the augmented critic
(:func:`pokegan.diffaugment.critic_view`) as ``D``, so the penalties are taken through it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# the settings live torch-free (the CLI reads their fields); imported from here as before
from pokegan.loss_config import LOSS_NAMES as LOSS_NAMES
from pokegan.loss_config import LossConfig

Images = Tensor | Sequence[Tensor]


def _as_list(x: Images) -> list[Tensor]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _detach(x: Images) -> Images:
    if isinstance(x, (list, tuple)):
        return [t.detach() for t in x]
    return x.detach()


def _float(x: Images) -> Images:
    if isinstance(x, (list, tuple)):
        return [t.float() for t in x]
    return x.float()


def _scores(D: nn.Module, x: Images) -> Tensor:
    """D's raw scores as a float32 vector ``[B]``; D itself runs in float32 (autocast off around it)."""
    device_type = _as_list(x)[0].device.type
    with torch.autocast(device_type=device_type, enabled=False):
        out = D(_float(x))
    return out.float().reshape(out.shape[0], -1).mean(dim=1)


def anchor_l1(fake: Tensor, real: Tensor, size: int = 0) -> Tensor:
    """The reconstruction anchor: mean |fake - real| over images ``[B, 3, S, S]`` paired row by row,
    compared as ``size`` x ``size`` area averages (0 or >= S: full size). Coarse, it holds colour and layout
    and leaves the finer detail to the adversarial term (step 3's ``recon_size``, the progan anchor)."""
    if 0 < size < real.shape[-1]:
        fake, real = F.adaptive_avg_pool2d(fake, size), F.adaptive_avg_pool2d(real, size)
    return F.l1_loss(fake, real)


def r1_penalty(D: nn.Module, real: Images) -> Tensor:
    """R1: ``E[||grad_x D(x)||^2]`` at the real images (all scales together for lists); differentiable in D."""
    reals = [t.detach().float().requires_grad_(True) for t in _as_list(real)]
    inp = reals if isinstance(real, (list, tuple)) else reals[0]
    scores = _scores(D, inp)
    grads = torch.autograd.grad(scores.sum(), reals, create_graph=True)
    return sum(g.reshape(g.shape[0], -1).pow(2).sum(dim=1) for g in grads).mean()


def gradient_penalty(D: nn.Module, real: Images, fake: Images) -> Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x_hat)||_2 - 1)^2]`` on random interpolates of real and fake.

    For lists of tensors (MSG) every scale is interpolated with the same per-sample alpha, and the norm is
    taken over the gradients of all scales together (the critic is one function of the whole pyramid).
    Returns a scalar; differentiable with respect to D's parameters (``create_graph=True``).
    """
    reals, fakes = _as_list(real), [t.detach() for t in _as_list(fake)]
    if len(reals) != len(fakes):
        raise ValueError(f"real has {len(reals)} scales but fake has {len(fakes)}")
    b = reals[0].shape[0]
    alpha = torch.rand(b, device=reals[0].device, dtype=torch.float32)
    mixed = []
    for r, f in zip(reals, fakes, strict=True):
        a = alpha.view(b, *([1] * (r.dim() - 1)))
        mixed.append((a * r.float() + (1 - a) * f.float()).requires_grad_(True))
    inp = mixed if isinstance(real, (list, tuple)) else mixed[0]
    scores = _scores(D, inp)
    grads = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    sq = sum(g.reshape(b, -1).pow(2).sum(dim=1) for g in grads)  # [B]
    norm = (sq + 1e-12).sqrt()
    return (norm - 1.0).pow(2).mean()


class GANLoss:
    """Base class: optimizers (Adam) and a no-op after the critic step. Subclasses score."""

    name = "base"
    multiscale = False

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg
        self.n_critic = cfg.effective_n_critic

    def regularise(self, D: nn.Module, real: Images, loss: Tensor, stats: dict) -> Tensor:
        """Add the R1 penalty (when ``r1_gamma > 0``) to a critic loss; records ``r1`` in ``stats``."""
        if self.cfg.r1_gamma <= 0:
            return loss
        r1 = r1_penalty(D, real)
        stats["r1"] = r1.item()
        return loss + 0.5 * self.cfg.r1_gamma * r1

    def d_loss(self, D: nn.Module, real: Images, fake: Images) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def g_loss(self, D: nn.Module, fake: Images) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def make_optimizers(
        self, g_params: Iterable[Tensor], d_params: Iterable[Tensor], cfg: LossConfig | None = None
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        cfg = cfg or self.cfg
        opt_g = torch.optim.Adam(list(g_params), lr=cfg.lr_g, betas=tuple(cfg.betas))
        opt_d = torch.optim.Adam(list(d_params), lr=cfg.lr_d, betas=tuple(cfg.betas))
        return opt_g, opt_d

    def after_d_step(self, D: nn.Module) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n_critic={self.n_critic})"


class WGANGPLoss(GANLoss):
    """Wasserstein critic + gradient penalty + drift; one scale."""

    name = "wgan-gp"

    def d_loss(self, D, real, fake):
        fake = _detach(fake)
        s_real, s_fake = _scores(D, real), _scores(D, fake)
        wdist = s_real.mean() - s_fake.mean()
        drift = s_real.pow(2).mean()
        loss = -wdist + self.cfg.drift * drift
        stats = {"wdist": wdist.item(), "d_real": s_real.mean().item(), "d_fake": s_fake.mean().item()}
        if self.cfg.gp_weight > 0:
            gp = gradient_penalty(D, real, fake)
            loss = loss + self.cfg.gp_weight * gp
            stats["gp"] = gp.item()
        loss = self.regularise(D, real, loss, stats)
        return loss, {"d_loss": loss.item(), **stats}

    def g_loss(self, D, fake):
        s_fake = _scores(D, fake)
        loss = -s_fake.mean()
        return loss, {"g_loss": loss.item()}


class MSGWGANGPLoss(WGANGPLoss):
    """WGAN-GP over image pyramids (coarse -> fine): the MSG-GAN recipe."""

    name = "wgan-gp-msg"
    multiscale = True

    def d_loss(self, D, real, fake):
        if not isinstance(real, (list, tuple)) or not isinstance(fake, (list, tuple)):
            raise TypeError("wgan-gp-msg needs lists of images (coarse -> fine) for real and fake")
        return super().d_loss(D, real, fake)


class WGANClipLoss(GANLoss):
    """The original WGAN: critic weights clipped to [-clip, clip] after every step; RMSprop."""

    name = "wgan"

    def d_loss(self, D, real, fake):
        s_real, s_fake = _scores(D, real), _scores(D, _detach(fake))
        wdist = s_real.mean() - s_fake.mean()
        stats = {"wdist": wdist.item(), "d_real": s_real.mean().item(), "d_fake": s_fake.mean().item()}
        loss = self.regularise(D, real, -wdist, stats)
        return loss, {"d_loss": loss.item(), **stats}

    def g_loss(self, D, fake):
        loss = -_scores(D, fake).mean()
        return loss, {"g_loss": loss.item()}

    def make_optimizers(self, g_params, d_params, cfg=None):
        cfg = cfg or self.cfg
        return (
            torch.optim.RMSprop(list(g_params), lr=cfg.lr_g),
            torch.optim.RMSprop(list(d_params), lr=cfg.lr_d),
        )

    @torch.no_grad()
    def after_d_step(self, D: nn.Module) -> None:
        c = self.cfg.clip
        for p in D.parameters():
            p.clamp_(-c, c)


class DCGANLoss(GANLoss):
    """Non-saturating BCE on logits: D maximises log D(x) + log(1 - D(G(z))), G maximises log D(G(z))."""

    name = "dcgan"

    def d_loss(self, D, real, fake):
        s_real, s_fake = _scores(D, real), _scores(D, _detach(fake))
        loss_real = F.softplus(-s_real).mean()  # -log sigmoid(real)
        loss_fake = F.softplus(s_fake).mean()  # -log(1 - sigmoid(fake))
        stats = {"d_real": torch.sigmoid(s_real).mean().item(), "d_fake": torch.sigmoid(s_fake).mean().item()}
        loss = self.regularise(D, real, loss_real + loss_fake, stats)
        return loss, {"d_loss": loss.item(), **stats}

    def g_loss(self, D, fake):
        loss = F.softplus(-_scores(D, fake)).mean()
        return loss, {"g_loss": loss.item()}


_LOSSES: dict[str, type[GANLoss]] = {
    "wgan-gp-msg": MSGWGANGPLoss,
    "wgan-gp": WGANGPLoss,
    "wgan": WGANClipLoss,
    "dcgan": DCGANLoss,
}


def make_loss(cfg: LossConfig) -> GANLoss:
    """The loss object named by ``cfg.name`` (validated)."""
    cfg.validate()
    return _LOSSES[cfg.name](cfg)
