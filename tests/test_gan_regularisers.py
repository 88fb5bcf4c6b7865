"""The R1 penalty: exact on a linear critic, added by every loss when asked, composes with DiffAugment."""

from __future__ import annotations

import pytest
import torch

from pokedata.errors import UserError
from pokegan.diffaugment import critic_view
from pokegan.losses import LOSS_NAMES, LossConfig, make_loss, r1_penalty
from pokegan.models.discriminator import DiscriminatorArgs, build_discriminator, image_pyramid
from tests.test_gan_losses import Linear

pytestmark = pytest.mark.usefixtures("one_thread")


def test_r1_of_a_linear_critic_is_its_squared_weight_norm():
    torch.manual_seed(0)
    D = Linear([(3, 4, 4), (3, 8, 8)])
    real = [torch.randn(6, 3, 4, 4), torch.randn(6, 3, 8, 8)]
    expected = sum(w.pow(2).sum() for w in D.ws)
    assert torch.allclose(r1_penalty(D, real), expected, rtol=1e-5)
    r1_penalty(D, real).backward()  # differentiable in D's parameters (create_graph)
    assert all(w.grad is not None and torch.isfinite(w.grad).all() for w in D.ws)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_adds_r1_when_asked(name):
    torch.manual_seed(0)
    multi = name == "wgan-gp-msg"
    D = build_discriminator(
        DiscriminatorArgs(image_size=16, kind="msg" if multi else "dcgan", base_channels=8, max_channels=16)
    )
    real, fake = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    if multi:
        real, fake = image_pyramid(real, [4, 8, 16]), image_pyramid(fake, [4, 8, 16])
    torch.manual_seed(0)  # the same interpolates for the wgan-gp penalty
    plain, s0 = make_loss(LossConfig(name=name)).d_loss(D, real, fake)
    torch.manual_seed(0)
    with_r1, s1 = make_loss(LossConfig(name=name, r1_gamma=2.0)).d_loss(D, real, fake)
    assert "r1" in s1 and "r1" not in s0
    assert with_r1.item() == pytest.approx(plain.item() + s1["r1"], rel=1e-4)  # gamma / 2 * r1, gamma = 2


def test_wgan_gp_with_r1_instead_of_the_interpolate_penalty():
    D = Linear([(3, 8, 8)])
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    _, stats = make_loss(LossConfig(name="wgan-gp", gp_weight=0.0, r1_gamma=1.0)).d_loss(D, real, fake)
    assert "gp" not in stats and "r1" in stats


def test_r1_config_is_validated():
    with pytest.raises(UserError, match="r1_gamma"):
        LossConfig(r1_gamma=-1.0).validate()


def test_augmented_critic_still_trains_without_nans():
    torch.manual_seed(0)
    D = build_discriminator(DiscriminatorArgs(image_size=16, kind="dcgan", base_channels=8, max_channels=16))
    loss = make_loss(LossConfig(name="dcgan", r1_gamma=0.1))
    critic = critic_view(D, "color,translation,cutout")  # what the loop passes: R1 through the augmentation
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    fake = torch.zeros(8, 3, 16, 16)
    first = None
    for _ in range(15):
        ld, stats = loss.d_loss(critic, real, fake)
        first = first if first is not None else ld.item()
        opt.zero_grad()
        ld.backward()
        opt.step()
    assert torch.isfinite(ld) and ld.item() < first and stats["r1"] >= 0
