"""GAN loss objects and discriminators: known-gradient penalty, MSG shapes, a few steps without NaNs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pokedata.errors import UserError
from pokegan.losses import LOSS_NAMES, LossConfig, gradient_penalty, make_loss
from pokegan.models.discriminator import (
    DCGANDiscriminator,
    DiscriminatorArgs,
    MSGDiscriminator,
    build_discriminator,
    image_pyramid,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class Linear(nn.Module):
    """D(x) = <w, x>: its gradient is w for every input, so the penalty is (||w|| - 1)^2 exactly."""

    def __init__(self, shapes):
        super().__init__()
        self.ws = nn.ParameterList(nn.Parameter(torch.randn(*s)) for s in shapes)

    def forward(self, x):
        xs = x if isinstance(x, (list, tuple)) else [x]
        return sum((xi * w).flatten(1).sum(1) for xi, w in zip(xs, self.ws, strict=True))


def test_gradient_penalty_known_gradient_tensor():
    torch.manual_seed(0)
    D = Linear([(3, 8, 8)])
    real, fake = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    expected = (D.ws[0].detach().norm() - 1) ** 2
    gp = gradient_penalty(D, real, fake)
    assert torch.allclose(gp, expected, rtol=1e-5)
    gp.backward()  # differentiable wrt D's weights: d/dw (||w||-1)^2 = 2(||w||-1) w/||w||
    w = D.ws[0].detach()
    assert torch.allclose(D.ws[0].grad, 2 * (w.norm() - 1) * w / w.norm(), rtol=1e-4, atol=1e-6)


def test_gradient_penalty_known_gradient_lists():
    torch.manual_seed(1)
    D = Linear([(3, 4, 4), (3, 8, 8)])
    real = [torch.randn(4, 3, 4, 4), torch.randn(4, 3, 8, 8)]
    fake = [torch.randn(4, 3, 4, 4), torch.randn(4, 3, 8, 8)]
    norm = math.sqrt(sum(float(w.detach().pow(2).sum()) for w in D.ws))
    assert gradient_penalty(D, real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-5)


def test_gradient_penalty_zero_for_unit_norm():
    w = torch.randn(3, 8, 8)
    D = Linear([(3, 8, 8)])
    with torch.no_grad():
        D.ws[0].copy_(w / w.norm())
    assert gradient_penalty(D, torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)).item() < 1e-8


@pytest.mark.parametrize("size", [8, 32, 64])
def test_msg_discriminator_shapes_every_scale(size):
    args = DiscriminatorArgs(image_size=size, kind="msg", base_channels=8, max_channels=32)
    D = MSGDiscriminator(args)
    assert D.sizes == [4 * 2**i for i in range(int(math.log2(size // 4)) + 1)]
    real = torch.rand(6, 3, size, size) * 2 - 1
    pyr = image_pyramid(real, D.sizes)
    assert [p.shape[-1] for p in pyr] == D.sizes and pyr[-1] is real
    assert torch.allclose(pyr[0].mean(), real.mean(), atol=1e-5)  # area pooling keeps the mean
    pyr = [p.clone().requires_grad_(True) for p in pyr]
    out = D(pyr)
    assert out.shape == (6,)
    out.sum().backward()
    for p in pyr:  # every scale receives a gradient directly
        assert p.grad is not None and p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="scales"):
        D(pyr[1:])


def test_dcgan_discriminator_shapes():
    D = DCGANDiscriminator(DiscriminatorArgs(image_size=32, kind="dcgan", base_channels=8, max_channels=32))
    assert D(torch.randn(3, 3, 32, 32)).shape == (3,)
    with pytest.raises(ValueError):
        DiscriminatorArgs(image_size=48).validate()
    with pytest.raises(ValueError, match="downsample"):
        DiscriminatorArgs(image_size=32, kind="dcgan", downsample="blur").validate()


def test_pool_critic_input_gradient_depends_less_on_the_stride2_phase():
    """``downsample="pool"``: on a flat image the critic's gradient differs less between the four
    stride-2 phases of the pixels (away from the border) than the strided trunk's, averaged over
    initialisations. Args saved before the option existed rebuild the strided critic, old names."""

    def spread(downsample, seed):
        torch.manual_seed(seed)
        D = DCGANDiscriminator(
            DiscriminatorArgs(
                image_size=32, kind="dcgan", base_channels=8, max_channels=32, downsample=downsample
            )
        )
        x = torch.zeros(1, 3, 32, 32, requires_grad=True)
        D(x).sum().backward()
        g = x.grad[0, :, 8:24, 8:24].abs().sum(0)  # interior
        p = torch.stack([g[i::2, j::2].mean() for i in (0, 1) for j in (0, 1)])
        return float((p.max() - p.min()) / p.mean())

    pool = sum(spread("pool", s) for s in range(5))
    stride = sum(spread("stride", s) for s in range(5))
    assert pool < 0.7 * stride
    old = {
        "image_size": 32,
        "kind": "dcgan",
        "base_channels": 8,
        "max_channels": 32,
        "min_size": 4,
        "mbstd_group": 4,
    }
    D = DCGANDiscriminator(DiscriminatorArgs(**old))
    assert "blocks.0.weight" in D.state_dict() and D.blocks[0].stride == (2, 2)


class _TinyG(nn.Module):
    """z -> pyramid 4, 8, 16 (stand-in for the step-2 generator's forward_multiscale)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16 * 4 * 4)
        self.rgb = nn.ModuleList(nn.Conv2d(16, 3, 1) for _ in range(3))
        self.up = nn.ModuleList(nn.Conv2d(16, 16, 3, padding=1) for _ in range(2))

    def forward_multiscale(self, z):
        h = torch.relu(self.fc(z)).view(-1, 16, 4, 4)
        outs = [torch.tanh(self.rgb[0](h))]
        for conv, rgb in zip(self.up, self.rgb[1:], strict=True):
            h = torch.relu(conv(nn.functional.interpolate(h, scale_factor=2)))
            outs.append(torch.tanh(rgb(h)))
        return outs

    def forward(self, z):
        return self.forward_multiscale(z)[-1]


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_each_loss_runs_steps_without_nans(name):
    torch.manual_seed(0)
    loss = make_loss(LossConfig(name=name, lr_g=1e-3, lr_d=1e-3))
    assert loss.name == name and loss.n_critic >= 1
    G = _TinyG()
    D = build_discriminator(
        DiscriminatorArgs(
            image_size=16, kind="msg" if loss.multiscale else "dcgan", base_channels=8, max_channels=16
        )
    )
    opt_g, opt_d = loss.make_optimizers(G.parameters(), D.parameters())
    if name == "wgan":
        assert isinstance(opt_d, torch.optim.RMSprop)
    real_img = torch.rand(8, 3, 16, 16) * 2 - 1
    real = image_pyramid(real_img, [4, 8, 16]) if loss.multiscale else real_img
    g_before = [p.detach().clone() for p in G.parameters()]
    for _ in range(3):
        G.zero_grad(set_to_none=True)
        for _ in range(loss.n_critic):
            z = torch.randn(8, 8)
            fake = G.forward_multiscale(z) if loss.multiscale else G(z)
            ld, stats_d = loss.d_loss(D, real, fake)
            opt_d.zero_grad(set_to_none=True)
            ld.backward()
            opt_d.step()
            loss.after_d_step(D)
            assert torch.isfinite(ld) and all(math.isfinite(v) for v in stats_d.values())
            assert all(p.grad is None or p.grad.abs().sum() == 0 for p in G.parameters())  # fake detached
        z = torch.randn(8, 8)
        fake = G.forward_multiscale(z) if loss.multiscale else G(z)
        lg, stats_g = loss.g_loss(D, fake)
        opt_g.zero_grad(set_to_none=True)
        lg.backward()
        opt_g.step()
        assert torch.isfinite(lg) and math.isfinite(stats_g["g_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(g_before, G.parameters(), strict=True))
    if name == "wgan":
        assert max(p.abs().max().item() for p in D.parameters()) <= loss.cfg.clip + 1e-7


def test_loss_config_validation():
    with pytest.raises(UserError, match="--loss"):
        make_loss(LossConfig(name="hinge"))
    with pytest.raises(UserError, match="betas"):
        make_loss(LossConfig(betas=(0.5,)))
    assert make_loss(LossConfig(name="wgan-gp")).n_critic == 5
    assert make_loss(LossConfig(name="wgan-gp", n_critic=2)).n_critic == 2
    with pytest.raises(TypeError, match="lists"):
        make_loss(LossConfig()).d_loss(nn.Identity(), torch.zeros(1), torch.zeros(1))


@pytest.mark.parametrize("name", ["wgan-gp", "dcgan"])
def test_critic_runs_in_float32_inside_autocast(name):
    """The docstring's promise: under the caller's autocast the critic (penalty included) is float32."""
    dtypes: list[torch.dtype] = []
    D = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(1))
    D(torch.zeros(1, 3, 8, 8))
    D[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    loss = make_loss(LossConfig(name=name))
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = nn.Conv2d(3, 3, 1)(fake)  # a "generator" output in bf16
        assert fake.dtype == torch.bfloat16
        ld, _ = loss.d_loss(D, real, fake)
        lg, _ = loss.g_loss(D, fake)
    assert dtypes and set(dtypes) == {torch.float32}
    assert ld.dtype == lg.dtype == torch.float32


@pytest.mark.slow
def test_gan_generator_step_goes_through_its_grad_scaler(tmp_path, monkeypatch):
    """fp16 autocast needs a grad scaler for G: the step-3 loop scales, unscales and updates it."""
    from pokegan.config import load_step_config
    from pokegan.steps import gan_setup
    from pokegan.steps.gan import _data_iter, _train_step
    from pokegan.steps.gmm import GMMConfig, run_gmm
    from tests.helpers.step3_run import make_step3_run

    run = make_step3_run(tmp_path, image_size=16)
    run_gmm(load_step_config(GMMConfig, "gmm", preset="tiny", overrides={"bic": [2]}), run.root)
    over = {"metrics_samples": 8, "judge_epochs": 1, "data.batch_size": 8, "loss": "dcgan"}
    st = gan_setup.build_state(
        run, load_step_config(gan_setup.GANConfig, "gan", preset="tiny", overrides=over)
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, enabled=True)  # what fp16 on a GPU gets
    calls = []
    for name in ("scale", "step", "update"):
        real = getattr(scaler, name)
        monkeypatch.setattr(scaler, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    st.scaler_g = scaler
    before = [p.detach().clone() for p in st.G.parameters()]
    _train_step(st, _data_iter(st))
    assert calls == ["scale", "step", "update"]
    assert any(not torch.equal(a, p) for a, p in zip(before, st.G.parameters(), strict=True))
    saved = gan_setup.state_dict(st)
    assert saved["scaler_g"]["scale"] == scaler.get_scale()
