"""R1 penalty and DiffAugment (real and fake augmented alike, differentiably, one draw per pyramid)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pokedata.errors import UserError
from pokegan.diffaug import DiffAugment, parse_policy
from pokegan.losses import LOSS_NAMES, LossConfig, make_loss, r1_penalty
from pokegan.models.discriminator import DiscriminatorArgs, build_discriminator, image_pyramid
from tests.helpers.threads import one_thread  # noqa: F401  (fixture)
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


def test_policy_parsing_and_config_errors():
    assert parse_policy(" color , cutout ") == ("color", "cutout") and parse_policy("") == ()
    with pytest.raises(ValueError, match="blur"):
        parse_policy("color,blur")
    with pytest.raises(UserError, match="augment"):
        LossConfig(augment="blur").validate()
    with pytest.raises(UserError, match="r1_gamma"):
        LossConfig(r1_gamma=-1.0).validate()


def test_diffaugment_is_identity_without_a_policy_and_keeps_shapes():
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    assert DiffAugment("")(x) is x and not DiffAugment("")
    y = DiffAugment("color,translation,cutout")(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(x, y)


def test_diffaugment_is_differentiable():
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    DiffAugment("color,translation,cutout")(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_moves_content_and_replicates_the_edge():
    x = torch.zeros(1, 3, 8, 8)
    x[..., 3, 3] = 1.0
    torch.manual_seed(0)
    y = DiffAugment("translation")(x)
    assert y.sum() == x.sum()  # one pixel moved by at most 1 (1/8 of 8), nothing lost from the middle
    r, c = (y[0, 0] == 1).nonzero()[0].tolist()
    assert abs(r - 3) <= 1 and abs(c - 3) <= 1


def test_one_draw_for_a_whole_pyramid():
    """Colour only: each scale of the augmented pyramid is the area-downsampled augmented finest scale."""
    torch.manual_seed(1)
    fine = torch.rand(6, 3, 16, 16) * 2 - 1
    pyr = image_pyramid(fine, [4, 8, 16])
    out = DiffAugment("color")(pyr)
    for o in out[:-1]:
        assert torch.allclose(o, F.interpolate(out[-1], size=o.shape[-2:], mode="area"), atol=1e-5)


def test_augmented_critic_still_trains_without_nans():
    torch.manual_seed(0)
    D = build_discriminator(DiscriminatorArgs(image_size=16, kind="dcgan", base_channels=8, max_channels=16))
    loss = make_loss(LossConfig(name="dcgan", r1_gamma=0.1, augment="color,translation,cutout"))
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    fake = torch.zeros(8, 3, 16, 16)
    first = None
    for _ in range(15):
        ld, _ = loss.d_loss(D, real, fake)
        first = first if first is not None else ld.item()
        opt.zero_grad()
        ld.backward()
        opt.step()
    assert torch.isfinite(ld) and ld.item() < first
