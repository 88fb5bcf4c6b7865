"""What the critic sees: real images only flipped by default; DiffAugment alike on real and fake."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pokedata.errors import UserError
from pokegan.data import augment_batch, to_unit
from pokegan.diffaugment import DiffAugment, apply, critic_view, draw_params, parse_policy

pytestmark = pytest.mark.usefixtures("one_thread")


def _is_flip_or_same(out: torch.Tensor, src: torch.Tensor) -> bool:
    u = to_unit(src)
    return torch.equal(out, u) or torch.equal(out, u.flip(2))


def test_crop_scale_one_means_flips_only():
    x = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8)
    out = augment_batch(x, torch.Generator().manual_seed(0), crop_scale=1.0)
    assert all(_is_flip_or_same(o, s) for o, s in zip(out, x, strict=True))  # no aspect jitter, no resampling
    flipped = sum(not torch.equal(o, to_unit(s)) for o, s in zip(out, x, strict=True))
    assert 0 < flipped < 16


@pytest.mark.slow
def test_gan_real_images_are_only_flipped(tmp_path):
    from pokegan.config import load_step_config
    from pokegan.data import decode_image, load_manifest
    from pokegan.steps import gan_setup
    from pokegan.steps.gmm import GMMConfig, run_gmm
    from tests.helpers.step3_run import make_step3_run

    run = make_step3_run(tmp_path, image_size=16)
    run_gmm(load_step_config(GMMConfig, "gmm", preset="tiny", overrides={"bic": [2]}), run.root)
    over = {"metrics_samples": 8, "judge_epochs": 1, "data.batch_size": 8}
    cfg = load_step_config(gan_setup.GANConfig, "gan", preset="tiny", overrides=over)
    assert cfg.data.augment and cfg.data.crop_scale < 1  # the [data] crop is step 1's, not step 3's
    st = gan_setup.build_state(run, cfg)
    paths = load_manifest(run.manifest_dir).abs_paths()
    x, _, rows = next(iter(st.loader))
    for img, r in zip(x, rows.tolist(), strict=True):
        src = torch.from_numpy(decode_image(paths[r], 16))
        assert _is_flip_or_same(img.cpu(), src), f"row {r}: the real image was cropped or resampled"
    # the loop with DiffAugment: one generator step, finite losses
    from pokegan.steps.gan import _data_iter, _train_step

    st.cfg.diffaugment = "color,translation,cutout"
    stats = _train_step(st, _data_iter(st))
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


def test_diffaugment_policy_validation():
    assert parse_policy("color, cutout") == ("color", "cutout") and parse_policy("") == ()
    with pytest.raises(UserError, match="unknown augmentation 'zoom'"):
        parse_policy("color,zoom")
    d = nn.Identity()
    assert critic_view(d, "") is d and isinstance(critic_view(d, "color"), DiffAugment)


def test_diffaugment_is_differentiable_and_consistent_across_scales():
    torch.manual_seed(0)
    fine = torch.rand(4, 3, 16, 16) * 2 - 1
    coarse = torch.nn.functional.avg_pool2d(fine, 2)
    p = draw_params(4, fine.device)
    a_fine, a_coarse = apply(fine, p, ("color",)), apply(coarse, p, ("color",))
    # colour changes commute with average pooling up to the per-image means: same parameters per scale
    assert torch.allclose(torch.nn.functional.avg_pool2d(a_fine, 2), a_coarse, atol=1e-5)
    moved = apply(fine, p, ("translation", "cutout"))
    assert moved.shape == fine.shape and not torch.allclose(moved, fine)
    x = fine.clone().requires_grad_(True)
    critic = DiffAugment(nn.Conv2d(3, 1, 3), "color,translation,cutout")
    critic(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the generator's gradient gets through T
    seen = []
    record = DiffAugment(lambda xs: seen.append(xs) or torch.zeros(4), "translation")
    record([coarse, fine])
    assert [t.shape[-1] for t in seen[0]] == [8, 16]


def test_gan_config_refuses_an_unknown_policy():
    from pokegan.config import load_step_config
    from pokegan.steps.gan_setup import GANConfig

    with pytest.raises(UserError, match=r"\[gan\] diffaugment"):
        load_step_config(GANConfig, "gan", overrides={"diffaugment": "blur"})
