"""Embeddings: batch-independent encoding with frozen statistics; embed and pretrain on a tiny run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pokegan.config import EmbedConfig, PretrainConfig, load_step_config
from pokegan.models.classifier import EmbeddingClassifier
from pokegan.models.generator import Generator, GeneratorArgs
from pokegan.perceptual import PerceptualLoss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_embedding_barely_moves_across_batch_composition():
    torch.manual_seed(0)
    m = EmbeddingClassifier(3).eval()
    x = torch.randn(24, 3, 16, 16)
    with torch.no_grad():
        f = m.pooled(x)
        m.set_frozen_stats(f.mean(0), f.var(0, unbiased=False))
        a = m.embed(x[:8])  # image 0 among 0..7
        b = m.embed(torch.cat([x[16:], x[:1]]))[-1:]  # image 0 among 16..23
    assert (a[0] - b[0]).abs().max() < 1e-4
    with torch.no_grad():
        m.set_frozen_stats(None, None)
        c, d = m.embed(x[:8])[0], m.embed(torch.cat([x[16:], x[:1]]))[-1]
    assert (c - d).abs().max() > 1e-2  # batch statistics alone would move it


def test_generator_upsampling_modes_and_older_args():
    z = torch.randn(2, 512)
    for mode in ("nearest", "bilinear"):
        g = Generator(GeneratorArgs(image_size=16, channel_base=256, max_channels=32, upsample=mode))
        assert g(z).shape == (2, 3, 16, 16) and g.blocks[0].up.mode == mode
    # checkpoints written before the option rebuild as they were trained: nearest
    old = {"image_size": 16, "z_dim": 512, "channel_base": 256, "max_channels": 32, "min_channels": 8}
    assert Generator(GeneratorArgs(**old)).blocks[0].up.mode == "nearest"
    with pytest.raises(ValueError, match="upsample"):
        GeneratorArgs(upsample="bicubic").validate()


def test_linear_output_keeps_a_gradient_where_tanh_has_saturated():
    """A white background is tanh's asymptote: a saturated tanh generator gets no gradient back."""
    torch.manual_seed(0)
    kw = {"image_size": 16, "channel_base": 256, "max_channels": 32}
    tanh, linear = Generator(GeneratorArgs(**kw)), Generator(GeneratorArgs(**kw, output="linear"))
    linear.load_state_dict(tanh.state_dict())  # same weights: the output is the only difference
    z = torch.randn(2, 512)
    for g in (tanh, linear):  # drive the pre-activation far into saturation, as an all-white picture does
        with torch.no_grad():
            g.to_rgb[-1].conv.bias.fill_(12.0)
    assert torch.equal(torch.tanh(linear(z)), tanh(z)) and linear(z).min() > 1
    grads = []
    for g in (tanh, linear):
        g.zero_grad()
        (g(z) - 0.0).abs().mean().backward()  # pull towards mid-grey
        grads.append(g.to_rgb[-1].conv.bias.grad.abs().max().item())
    assert grads[0] < 1e-8 < 0.1 < grads[1]
    # older checkpoints (no ``output``) rebuild with tanh; bad values are refused
    assert Generator(GeneratorArgs(**kw)).to_rgb[0].tanh
    with pytest.raises(ValueError, match="output"):
        GeneratorArgs(output="sigmoid").validate()
    with pytest.raises(Exception, match="g_output"):
        load_step_config(PretrainConfig, "pretrain", overrides={"g_output": "relu"})


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
def test_generator_shapes_and_perceptual_loss_falls(upsample):
    torch.manual_seed(0)
    g = Generator(
        GeneratorArgs(image_size=16, channel_base=256, max_channels=32, dilate_from=8, upsample=upsample)
    )
    z = torch.randn(4, 512)
    outs = g.forward_multiscale(z)
    assert [o.shape[-1] for o in outs] == [4, 8, 16] and torch.equal(outs[-1], g(z))
    assert all(o.abs().max() <= 1 for o in outs)
    clf = EmbeddingClassifier(3).eval().requires_grad_(False)
    loss_fn = PerceptualLoss(clf, (1, 1, 1, 1), pixel_l1=1.0)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    zr, targets = loss_fn.encode(real)
    opt = torch.optim.Adam(g.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        loss, terms = loss_fn(g(zr), real, targets)
        assert torch.isfinite(loss) and set(terms) == {"layer1", "layer2", "layer3", "layer4", "pixel_l1"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_embed_and_pretrain_steps(four_class_run):
    from pokegan.runs import open_run
    from pokegan.steps.embed import data_section, load_embedding_index, run_embed
    from pokegan.steps.pretrain import run_pretrain

    run_dir, m, _ = four_class_run  # the session's shared step-1 run (16 px); this test adds steps to it
    run_embed(load_step_config(EmbedConfig, "embed", overrides={"batch_size": 5, "num_workers": 0}), run_dir)
    run = open_run(run_dir, resume=False, create=False)
    emb, index = load_embedding_index(run)
    man = pd.read_parquet(m / "manifest.parquet")
    assert emb.shape == (len(man), 512) and np.isfinite(emb).all()
    assert index["image_id"].tolist() == man["image_id"].tolist()
    over = {"epochs": 3, "warmup_steps": 3, "grid_n": 4, "data.num_workers": 0}  # 3 steps per epoch
    cfg = load_step_config(
        PretrainConfig, "pretrain", preset="tiny", overrides=over, base={"data": data_section(run)}
    )
    assert cfg.data.image_size == 16  # inherited from step 1
    summary = run_pretrain(cfg, run_dir)
    assert summary["steps"] == 9 and summary["loss"] < summary["first_loss"], summary
    d = run.step_dir("pretrain")
    assert (
        (d / "recon" / "epoch-003.png").is_file() and (d / "final.pt").is_file() and run.is_done("pretrain")
    )
    state = torch.load(d / "final.pt", weights_only=False)
    g = Generator(GeneratorArgs(**state["model_args"]["generator"]))
    g.load_state_dict(state["generator"])
    assert g(torch.from_numpy(np.array(emb[:2]))).shape == (2, 3, 16, 16)


def test_embed_and_step2_encode_with_the_same_statistics(four_class_run, tmp_path):
    """One source of frozen statistics: embeddings.npy (the GMM's data) is what step 2 encodes."""
    import shutil

    from pokegan.data import load_manifest, make_loader
    from pokegan.models.classifier import load_frozen_classifier
    from pokegan.runs import open_run
    from pokegan.steps.embed import run_embed

    run_dir = tmp_path / "run"
    shutil.copytree(four_class_run.run_dir / "classifier", run_dir / "classifier")
    shutil.copy(four_class_run.run_dir / "run.json", run_dir / "run.json")
    cfg = load_step_config(EmbedConfig, "embed", preset="tiny", overrides={"num_workers": 0})
    run_embed(cfg, run_dir)
    run = open_run(run_dir, resume=False, create=False)
    emb = np.load(run.step_dir("embed") / "embeddings.npy")
    # step 2's encoder: the frozen classifier with step 1's statistics (PerceptualLoss.encode)
    loss_fn = PerceptualLoss(load_frozen_classifier(run), (1, 1, 1, 1))
    man = load_manifest(four_class_run.manifest_dir)
    rows = np.arange(12)
    kw = {"augment": False, "seed": 0, "num_workers": 0, "distributed": False, "rows": rows}
    x, _, got = next(iter(make_loader(man, "all", 16, 12, **kw)))
    with torch.no_grad():
        z, _ = loss_fn.encode(x)
    np.testing.assert_allclose(emb[got.numpy()], z.numpy(), atol=1e-4)
    with pytest.raises(Exception, match="stats_images"):  # the second source is gone
        load_step_config(EmbedConfig, "embed", overrides={"stats_images": 400})
