"""Sampling helpers (interpolation, GIF, PNGs) and `poke sample` / `poke eval` on a trained tiny run."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from pokedata.errors import UserError
from pokegan.sampling import SampleConfig, interpolation_latents, save_gif, save_pngs, slerp

pytestmark = pytest.mark.usefixtures("one_thread")


def test_slerp_endpoints_and_norms():
    a, b = torch.randn(16), torch.randn(16) * 3
    t = torch.linspace(0, 1, 5)
    path = slerp(a, b, t)
    assert path.shape == (5, 16)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    expected_norms = (1 - t) * a.norm() + t * b.norm()
    assert torch.allclose(path.norm(dim=1), expected_norms, atol=1e-4)
    assert torch.allclose(slerp(a, a * 2, t)[2], a * 1.5, atol=1e-4)  # parallel: linear


def test_interpolation_loop_and_gif(tmp_path):
    keys = torch.randn(3, 8)
    z = interpolation_latents(keys, 4)
    assert z.shape == (12, 8)
    assert torch.allclose(z[0], keys[0], atol=1e-5) and torch.allclose(z[4], keys[1], atol=1e-5)
    frames = torch.rand(12, 3, 8, 8) * 2 - 1
    gif = save_gif(frames, tmp_path / "a.gif", scale=2)
    with Image.open(gif) as im:
        assert im.n_frames == 12 and im.size == (16, 16)


def test_save_pngs(tmp_path):
    imgs = torch.zeros(3, 3, 8, 8)
    imgs[1] = 1.0
    paths = save_pngs(imgs, tmp_path / "pngs")
    assert [p.name for p in paths] == ["sample-00000.png", "sample-00001.png", "sample-00002.png"]
    with Image.open(paths[1]) as im:
        assert im.getpixel((0, 0)) == (255, 255, 255)
    with Image.open(paths[0]) as im:
        assert im.getpixel((0, 0)) == (128, 128, 128)


def test_sample_config_validation(tmp_path):
    with pytest.raises(UserError, match="--n"):
        SampleConfig(run=tmp_path, n=0).validate()
    with pytest.raises(UserError, match="--interpolate"):
        SampleConfig(run=tmp_path, interpolate=1).validate()
    with pytest.raises(UserError, match="--run"):
        SampleConfig(run=tmp_path / "nope").validate()
