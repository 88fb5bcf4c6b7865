"""The progressive DCGAN: models, growing (weight transfer, freezing, fade-in), gradient flow, the GIF,
the config, and tiny end-to-end runs (8 -> 16 -> 32 on CPU, resume mid-stage, CLI)."""

from __future__ import annotations

import json

import pytest
import torch

from pokedata.errors import UserError
from pokegan.losses import LossConfig, make_loss
from pokegan.progan.config import ProGANConfig, parse_cycle_option, parse_sizes_option
from pokegan.progan.gif import prune_snapshots, save_snapshot, snapshot_frame, snapshot_paths, write_gif
from pokegan.progan.gradflow import GradFlow, plot_grad_flow
from pokegan.progan.grow import build_models, fade_alpha, grow, transfer_weights
from pokegan.progan.models import Discriminator, Generator, ProGANArgs

TINY = dict(z_dim=16, channel_base=128, max_channels=32)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny convolutions: one thread is ~20x faster than two


def _tiny(resolution: int = 8, **kw) -> ProGANArgs:
    return ProGANArgs(resolution=resolution, **{**TINY, **kw})


def _train_some(g, d, steps: int, z_dim: int = 16, size: int | None = None) -> None:
    """A few real DCGAN steps (step 3's loss object) on random 'real' images."""
    loss = make_loss(LossConfig(name="dcgan", lr_g=1e-2, lr_d=1e-2, betas=(0.5, 0.999)))
    opt_g, opt_d = loss.make_optimizers(
        [p for p in g.parameters() if p.requires_grad], [p for p in d.parameters() if p.requires_grad]
    )
    size = size or g.args.resolution
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        real = torch.rand(8, 3, size, size, generator=gen) * 2 - 1
        z = torch.randn(8, z_dim, generator=gen)
        d_loss, _ = loss.d_loss(d, real, g(z))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss, _ = loss.g_loss(d, g(torch.randn(8, z_dim, generator=gen)))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()


# ---- models --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_shapes_and_range(norm):
    g, d = Generator(_tiny(16, g_norm=norm)), Discriminator(_tiny(16, d_norm=norm))
    x = g(torch.randn(4, 16))
    assert x.shape == (4, 3, 16, 16)
    assert x.min() >= -1 and x.max() <= 1 and torch.isfinite(x).all()
    assert d(x).shape == (4,)


def test_dcgan_init_and_mirrored_blocks():
    g, d = Generator(_tiny(32)), Discriminator(_tiny(32))
    assert list(g.blocks) == ["4", "8", "16", "32"] and list(d.blocks) == ["32", "16", "8", "4"]
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 0.005 and 0.015 < w.std().item() < 0.025


def test_bad_args_are_refused():
    with pytest.raises(ValueError):
        ProGANArgs(resolution=24).validate()
    with pytest.raises(ValueError):
        ProGANArgs(resolution=16, fade=True).validate()


# ---- growing -------------------------------------------------------------------------------------------
def test_grow_copies_old_weights_exactly():
    g, d = build_models(_tiny(8))
    _train_some(g, d, 3)
    g2, d2, report = grow(g, d, 16, fade=True, freeze=True)
    for old, new, tag in ((g, g2, "G"), (d, d2, "D")):
        old_state, new_state = old.state_dict(), new.state_dict()
        assert report.copied[tag], tag
        for key in report.copied[tag]:
            assert torch.equal(old_state[key], new_state[key]), key
        # every layer of the old model is in the new one (the fade-in keeps the old toRGB / fromRGB)
        assert set(old_state) <= set(new_state)
    assert any(k.startswith("blocks.16") for k in report.fresh["G"])
    assert "to_rgb.8.weight" in report.copied["G"] and "from_rgb.8.conv.weight" in report.copied["D"]


def test_grow_without_fade_drops_old_rgb_layers_and_switches_hard():
    g, d = build_models(_tiny(8))
    g2, d2, report = grow(g, d, 16, fade=False, freeze=False)
    assert "to_rgb.8" not in g2.to_rgb and g2.alpha == 1.0
    assert report.frozen == {"G": [], "D": []}
    assert all(p.requires_grad for p in g2.parameters())


def test_frozen_layers_do_not_change_new_block_does():
    g, d = build_models(_tiny(8))
    _train_some(g, d, 2)
    g2, d2, _ = grow(g, d, 16, fade=False, freeze=True)
    before_g = {k: v.clone() for k, v in g2.state_dict().items()}
    before_d = {k: v.clone() for k, v in d2.state_dict().items()}
    _train_some(g2, d2, 3)
    for model, before in ((g2, before_g), (d2, before_d)):
        after = model.state_dict()
        for key in before:
            if key.startswith(("blocks.4.", "blocks.8.")):  # learned at 8 px: frozen (weights and BN stats)
                assert torch.equal(before[key], after[key]), key
        assert not torch.equal(before["blocks.16.conv.weight"], after["blocks.16.conv.weight"])
    assert not torch.equal(before_g["to_rgb.16.weight"], g2.state_dict()["to_rgb.16.weight"])
    assert not torch.equal(before_d["from_rgb.16.conv.weight"], d2.state_dict()["from_rgb.16.conv.weight"])
    # frozen BatchNorms stay in eval mode even after .train()
    g2.train()
    assert not g2.blocks["8"].norm.training and g2.blocks["16"].norm.training


def test_fade_in_blends_old_and_new_paths():
    g, d = build_models(_tiny(8))
    g.eval()
    z = torch.randn(2, 16)
    with torch.no_grad():
        old = g(z)
        g2, d2, _ = grow(g, d, 16, fade=True, freeze=True)
        g2.eval()
        g2.alpha = 0.0
        start = g2(z)
        g2.alpha = 1.0
        end = g2(z)
    # alpha 0: the old generator's picture, upsampled (nearest); alpha 1: the new block alone
    assert torch.allclose(start, torch.nn.functional.interpolate(old, scale_factor=2), atol=1e-6)
    assert not torch.allclose(start, end)
    assert fade_alpha(0, 10) == 0.0 and fade_alpha(5, 10) == 0.5 and fade_alpha(50, 10) == 1.0
    assert fade_alpha(3, 0) == 1.0


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_skip_rgb_growth_starts_at_the_upsampled_previous_output_then_learns_a_residual(mode):
    g, d = build_models(_tiny(8, g_upsample=mode, padding="replicate", skip_rgb=True))
    _train_some(g, d, 3)
    g.eval()
    z = torch.randn(4, 16)
    with torch.no_grad():
        old = g(z)  # [4, 3, 8, 8]
    g2, d2, report = grow(g, d, 16, fade=False, freeze=False)
    assert g2.args.skip_rgb and g2.args.rgb_from == 8 and g2.alpha == 1.0 and not g2.fading
    assert {"to_rgb.8.weight", "from_rgb.8.conv.weight"} & set(report.copied["G"] + report.copied["D"])
    assert not g2.to_rgb["16"].weight.any() and not g2.to_rgb["16"].bias.any()  # the new toRGB: zero
    g2.eval()
    with torch.no_grad():
        start = g2(z)  # [4, 3, 16, 16]
    # right after growing: exactly the 8 px picture, upsampled as G upsamples (the skip path adds before
    # the tanh, so bilinear interpolates the pre-tanh picture); no grey from the new toRGB
    if mode == "nearest":
        assert torch.equal(start, torch.nn.functional.interpolate(old, scale_factor=2, mode="nearest"))
    else:
        pre = torch.nn.functional.interpolate(old.double().atanh(), scale_factor=2, mode="bilinear")
        assert torch.allclose(start.double(), pre.tanh(), atol=1e-5)
    _train_some(g2, d2, 3, size=16)
    g2.eval()
    with torch.no_grad():
        after = g2(z)
    assert after.shape == (4, 3, 16, 16) and torch.isfinite(after).all()
    assert g2.to_rgb["16"].weight.abs().sum() > 0 and not torch.equal(after, start)  # the residual learns
    g3, d3, _ = grow(g2, d2, 32, fade=False, freeze=True)  # a second growth keeps both earlier toRGBs
    assert list(g3.to_rgb) == ["8", "16", "32"] and list(d3.from_rgb) == ["32", "16", "8"]
    assert g3.frozen == ("blocks.4", "blocks.8", "blocks.16", "to_rgb.8", "to_rgb.16")
    assert g3(z).shape == (4, 3, 32, 32) and d3(g3(z)).shape == (4,)


def test_skip_rgb_discriminator_reads_the_downsampled_image_again():
    g, d = build_models(_tiny(8, d_norm="none"))  # built without skip: a first stage grows into it alike
    _train_some(g, d, 2)
    _, d2, _ = grow(g, d, 16, fade=False, freeze=False, skip_rgb=True)
    img = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        d2.blocks["16"].conv.weight.zero_()  # silence the new branch: what is left is the old critic's view
        d2.blocks["16"].conv.bias.zero_()
        assert torch.allclose(d2(img), d(torch.nn.functional.avg_pool2d(img, 2)), atol=1e-6)
    _, d_sn, _ = grow(*build_models(_tiny(8, d_norm="spectral")), 16, fade=False, freeze=False, skip_rgb=True)
    assert torch.isfinite(d_sn(img)).all()
    with pytest.raises(ValueError, match="first growth"):
        grow(*grow(g, d, 16, fade=False, freeze=False)[:2], 32, fade=False, freeze=False, skip_rgb=True)
    with pytest.raises(ValueError, match="two ways"):
        _tiny(16, grown_from=8, fade=True, skip_rgb=True).validate()
    with pytest.raises(UserError, match="skip_rgb and fade_in"):
        ProGANConfig(skip_rgb=True, fade_in=True).validate()


def test_grow_skips_sizes_and_transfer_reports_fresh():
    g, d = build_models(_tiny(8))
    g2, d2, report = grow(g, d, 32, fade=True, freeze=True)
    assert g2(torch.randn(2, 16)).shape == (2, 3, 32, 32)
    g2.alpha = d2.alpha = 0.5
    assert d2(g2(torch.randn(2, 16))).shape == (2,)
    copied, fresh = transfer_weights(Generator(_tiny(8)), Generator(_tiny(8)))
    assert not fresh and copied


# ---- pictures ------------------------------------------------------------------------------------------
def test_gradflow_png_written_with_frozen_layers(tmp_path):
    g, d = build_models(_tiny(8))
    g2, d2, _ = grow(g, d, 16, fade=False, freeze=True)
    fg, fd = GradFlow("G"), GradFlow("D")
    for _ in range(2):
        d2(g2(torch.randn(4, 16))).mean().backward()
        fg.record(g2)
        fd.record(d2)
    path = plot_grad_flow([fg, fd], tmp_path / "gradflow_16px.png", title="16 px")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads(path.with_suffix(".json").read_text())
    layers = {la["name"]: la for la in info["G"]["layers"]}
    assert layers["blocks.8.conv"]["frozen"] and layers["blocks.8.conv"]["mean"] == 0
    assert (
        not layers["blocks.16.conv"]["frozen"]
        and layers["blocks.16.conv"]["max"] >= layers["blocks.16.conv"]["mean"] > 0
    )
    assert info["G"]["records"] == 2


def test_gif_has_one_frame_per_snapshot_and_prunes(tmp_path):
    from PIL import Image

    folder = tmp_path / "snapshots"
    for step, size in ((10, 8), (20, 8), (30, 16), (40, 16), (50, 32)):
        imgs = torch.zeros(4, 3, size, size)  # identical pictures: the captions keep frames distinct
        save_snapshot(snapshot_frame(imgs, 32, f"{size}px step {step}", step / 50), folder, step)
    assert write_gif(folder, tmp_path / "all_samples.gif") == 5
    with Image.open(tmp_path / "all_samples.gif") as im:
        assert im.n_frames == 5 and im.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2 + 18)
    assert prune_snapshots(folder, 30) == 2 and len(snapshot_paths(folder)) == 3


# ---- config --------------------------------------------------------------------------------------------
def test_config_cycles_and_validation():
    cfg = ProGANConfig(sizes=[8, 16], cycles={16: [{"lr": 1e-3, "epochs": 2, "lr_d": 4e-3}]}).validate()
    assert [e.epochs for e in cfg.stage_cycle(8)] == [4, 2]
    (entry,) = cfg.stage_cycle(16)
    assert entry.lr == 1e-3 and entry.lr_d == 4e-3
    assert parse_cycle_option("2e-4:3, 1e-5:1") == [{"lr": 2e-4, "epochs": 3}, {"lr": 1e-5, "epochs": 1}]
    assert parse_sizes_option("8,16,32") == [8, 16, 32]
    assert ProGANConfig(loss="wgan-gp").validate().resolved_d_norm == "instance"
    bad = [
        dict(sizes=[16, 24]),
        dict(sizes=[32, 16]),
        dict(loss="wgan-gp-msg"),
        dict(cycle=[{"lr": 1e-3}]),
        dict(cycle=[{"lr": 1e-3, "epochs": 0}]),
        dict(cycle=[{"lr": 1e-3, "epochs": 1, "momentum": 0.9}]),
        dict(cycles={"128": [{"lr": 1e-3, "epochs": 1}]}),
        dict(norm="group"),
        dict(cycles=5),
        dict(cycle=[]),
    ]
    for kw in bad:
        with pytest.raises(UserError):
            ProGANConfig(**kw).validate()
    with pytest.raises(UserError, match="--cycle"):
        parse_cycle_option("fast")


# ---- end to end (tiny, CPU) ----------------------------------------------------------------------------
def _options(manifest, out, *extra: str) -> list[str]:
    """``poke train progan`` on a new run with the tiny config file written by :func:`_write_tiny_config`."""
    return [
        "train",
        "progan",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--config",
        str(out.parent / "progan.toml"),
        *extra,
    ]


def _write_tiny_config(folder, sizes=(8, 16, 32)) -> None:
    """Small widths, one 1-epoch cycle entry per stage, a snapshot every 2 steps, checkpoints every step."""
    (folder / "progan.toml").write_text(
        "[data]\nbatch_size = 8\nnum_workers = 0\nuse_cache = false\n\n"
        f"[progan]\nsizes = {list(sizes)}\ncycle = [{{lr = 1e-3, epochs = 1}}]\n"
        "z_dim = 8\nchannel_base = 64\nmax_channels = 16\nn_fixed = 4\nsample_every = 2\n"
        'checkpoint_every = 1\nlog_every = 1\ngradflow_every = 1\ndevice = "cpu"\n\n'
        '[progan.cycles]\n"16" = [{lr = 1e-3, epochs = 1}, {lr = 1e-4, epochs = 1}]\n'
    )


@pytest.fixture
def tiny_manifest(tmp_path):
    from tests.helpers.tiny_manifest import make_tiny_manifest

    return make_tiny_manifest(tmp_path, n_classes=3, per_class=12, size=32)  # 27 train images: 3 batches of 8


def test_tiny_run_8_16_32_with_fade_in(runner, tmp_path, tiny_manifest):
    from PIL import Image

    from cli import app
    from pokegan.checkpoint import load_checkpoint

    _write_tiny_config(tmp_path)
    out = tmp_path / "run"
    result = runner.invoke(app, _options(tiny_manifest, out, "--fade-in"))
    assert result.exit_code == 0, result.output
    d = out / "progan"
    done = json.loads((d / "done.json").read_text())
    steps_per_epoch = 3
    assert done["steps"] == steps_per_epoch * (1 + 2 + 1)  # the 16 px stage runs a two-entry cycle
    for size in (8, 16, 32):
        assert (d / f"samples_{size}px.png").is_file() and (d / f"gradflow_{size}px.png").is_file()
        assert (d / f"stage_{size}px.pt").is_file()
    snapshots = snapshot_paths(d / "snapshots")
    # every 2nd step plus each stage's last step (3, 9, 12): 2,3,4,6,8,9,10,12
    assert [int(p.stem) for p in snapshots] == [2, 3, 4, 6, 8, 9, 10, 12]
    with Image.open(d / "all_samples.gif") as gif:
        assert gif.n_frames == len(snapshots) == done["gif_frames"]
    final = load_checkpoint(d / "final.pt")
    assert final["stage"] == {"index": 2, "size": 32} and final["alpha"] == 1.0
    assert set(final["cycle_position"]) == {"entry", "epoch", "batch"}
    mid = load_checkpoint(d / "stage_16px.pt")
    assert mid["model_args"]["resolution"] == 16 and mid["model_args"]["fade"]
    assert mid["frozen"]["G"] == ["blocks.4", "blocks.8", "to_rgb.8"]
    assert list((d / "tb").iterdir()), "TensorBoard event files"
    from pokegan.progan.state import load_generator

    g, _ = load_generator(d / "final.pt")  # rebuilt from the checkpoint alone
    assert g(torch.randn(2, 8)).shape == (2, 3, 32, 32)
    # a finished step is not retrained; an existing --out is refused without --resume
    again = runner.invoke(app, _options(tiny_manifest, out))
    assert again.exit_code == 2 and "--resume" in again.output
    done_again = runner.invoke(app, ["train", "progan", "--run", str(out)])
    assert done_again.exit_code == 0 and "already done" in done_again.output


def test_resume_continues_mid_stage(tmp_path, tiny_manifest, monkeypatch):
    from pokegan.checkpoint import load_checkpoint
    from pokegan.progan import train as progan_train

    _write_tiny_config(tmp_path, sizes=(8, 16))
    out = tmp_path / "run"
    job = dict(out=out, manifest=tiny_manifest, config_file=tmp_path / "progan.toml")
    real_step, calls = progan_train.train_step, {"n": 0}

    def crashing_step(st, real, **kw):
        calls["n"] += 1
        if calls["n"] == 5:  # the 2nd batch of the 16 px stage's first epoch
            raise RuntimeError("simulated crash")
        return real_step(st, real, **kw)

    monkeypatch.setattr(progan_train, "train_step", crashing_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        progan_train.train_progan(progan_train.ProGANJob(**job))
    d = out / "progan"
    saved = load_checkpoint(d / "last.pt")
    assert saved["stage"]["size"] == 16 and saved["cycle_position"] == {"entry": 0, "epoch": 0, "batch": 1}
    assert saved["step"] == 4 and not (d / "done.json").exists()
    monkeypatch.setattr(progan_train, "train_step", real_step)
    with pytest.raises(UserError, match="--resume"):
        progan_train.train_progan(progan_train.ProGANJob(**job))
    summary = progan_train.train_progan(progan_train.ProGANJob(**job, resume=True))
    assert summary["steps"] == 3 + 6  # no step lost, none repeated
    assert [int(p.stem) for p in snapshot_paths(d / "snapshots")] == [2, 3, 4, 6, 8, 9]
    assert summary["gif_frames"] == 6
    flow = json.loads((d / "gradflow_16px.json").read_text())  # the checkpoint carried the running sums
    assert flow["D"]["records"] == 6 and flow["G"]["records"] == 6


def test_growth_settings_may_change_before_the_first_growth_only(tmp_path, tiny_manifest, monkeypatch):
    from pokegan.checkpoint import load_checkpoint
    from pokegan.progan import train as progan_train

    _write_tiny_config(tmp_path, sizes=(8, 16))
    real_step = progan_train.train_step

    def crash_at(n: int):
        calls = {"n": 0}

        def step(st, real, **kw):
            calls["n"] += 1
            if calls["n"] == n:
                raise RuntimeError("simulated crash")
            return real_step(st, real, **kw)

        return step

    for name, crash, grown in (("early", 2, False), ("late", 5, True)):  # 3 steps per epoch at 8 px
        out = tmp_path / name
        job = dict(out=out, manifest=tiny_manifest, config_file=tmp_path / "progan.toml")
        monkeypatch.setattr(progan_train, "train_step", crash_at(crash))
        with pytest.raises(RuntimeError, match="simulated crash"):
            progan_train.train_progan(progan_train.ProGANJob(**job, overrides={"fade_in": True}))
        monkeypatch.setattr(progan_train, "train_step", real_step)
        resumed = progan_train.ProGANJob(
            run=out, resume=True, overrides={"fade_in": False, "skip_rgb": True}
        )  # the saved config.toml, grown with skip outputs instead of the fade-in
        if grown:  # the 16 px models were built for the fade-in: refused, naming the settings
            with pytest.raises(UserError, match="skip_rgb"):
                progan_train.train_progan(resumed)
            continue
        summary = progan_train.train_progan(resumed)
        assert summary["steps"] == 3 + 6
        final = load_checkpoint(out / "progan" / "final.pt")
        assert final["model_args"]["skip_rgb"] and final["model_args"]["rgb_from"] == 8
        assert not final["model_args"]["fade"] and final["alpha"] == 1.0
        assert set(final["generator"]) >= {"to_rgb.8.weight", "to_rgb.16.weight"}


def test_dry_run_prints_config_and_stages(runner, tmp_path, tiny_manifest):
    from cli import app

    out = tmp_path / "run"
    base = ["train", "progan", "--out", str(out), "--manifest", str(tiny_manifest)]
    result = runner.invoke(app, [*base, "--preset", "tiny", "--sizes", "8,16", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "[progan]" in result.output and "sizes = [8, 16]" in result.output
    assert "steps per epoch: 1" in result.output  # 27 train images, fewer than one batch of 32: one batch
    assert not out.exists()
    bad = runner.invoke(app, [*base, "--sizes", "8,12"])
    assert bad.exit_code == 2 and "--sizes" in bad.output
    missing = runner.invoke(app, ["train", "progan", "--out", str(out), "--manifest", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "nope" in missing.output
    assert not out.exists()  # bad options and inputs leave no half-made run directory behind


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan"])
def test_train_step_n_critic_and_gradflow_records(tmp_path, loss):
    from pokegan.progan.state import new_state
    from pokegan.progan.train import train_step

    cfg = ProGANConfig(sizes=[8], loss=loss, z_dim=8, channel_base=64, max_channels=16, n_fixed=2).validate()
    st = new_state(cfg, tmp_path, torch.device("cpu"), ["a"], "sha")
    assert st.loss.n_critic == 5 and (loss != "wgan-gp" or st.D.args.d_norm == "instance")
    flows = (GradFlow("G"), GradFlow("D"))
    g_before = st.G.blocks["8"].conv.weight.clone()
    for _ in range(10):
        logs = train_step(st, torch.rand(4, 3, 8, 8) * 2 - 1, record_every=1, flows=flows)
        st.pos.step += 1
        st.pos.stage_step += 1
        assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert flows[1].count == 10 and flows[0].count == 2  # 10 critic steps, 2 generator steps
    assert not torch.equal(g_before, st.G.blocks["8"].conv.weight)
    if loss == "wgan":  # weight clipping after every critic step
        assert max(p.abs().max().item() for p in st.D.parameters()) <= cfg.clip + 1e-7


# ---- nearest-neighbour upsampling (the small preset) ----------------------------------------------------
def test_nearest_upsampling_has_no_transposed_conv_past_the_stem_and_grows():
    args = _tiny(8, g_upsample="nearest")
    g = Generator(args)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.blocks["8"].modules())
    x = g(torch.randn(4, 16))
    assert x.shape == (4, 3, 8, 8) and torch.isfinite(x).all()
    g, d = build_models(args)
    _train_some(g, d, 2)
    g2, _, report = grow(g, d, 16, fade=True, freeze=False)
    assert "blocks.8.conv.1.weight" in report.copied["G"] and g2(torch.randn(2, 16)).shape == (2, 3, 16, 16)
    # a constant latent map stays flat: nearest x2 + 3x3 conv cannot draw a checkerboard on a flat input
    with torch.no_grad():
        flat = g2.blocks["16"].conv(torch.ones(1, g2.args.channels(8), 8, 8))[..., 2:-2, 2:-2]
    assert torch.allclose(flat, flat[..., :1, :1].expand_as(flat), atol=1e-6)
    with pytest.raises(ValueError, match="g_upsample"):
        ProGANArgs(resolution=16, g_upsample="bicubic").validate()
    with pytest.raises(UserError, match="upsample"):
        ProGANConfig(upsample="bicubic").validate()


# ---- ProGAN's stabilisers: pixel norm, minibatch stddev, spectral norm, replicate padding ------------------
def test_pixel_norm_is_per_pixel_unit_rms_and_couples_no_samples():
    from pokegan.progan.models import PixelNorm

    x = torch.randn(3, 8, 4, 4) * 5
    y = PixelNorm()(x)
    assert torch.allclose(y.pow(2).mean(dim=1), torch.ones(3, 4, 4), atol=1e-4)
    g = Generator(_tiny(16, g_norm="pixel", g_upsample="nearest")).train()
    z = torch.randn(4, 16)
    with torch.no_grad():  # in training mode too: one image alone is the same image as in its batch
        assert torch.allclose(g(z)[1:2], g(z[1:2]), atol=1e-5)


def test_minibatch_stddev_adds_one_map_zero_for_identical_images():
    from pokegan.progan.models import MinibatchStd

    same = torch.randn(1, 5, 4, 4).expand(8, 5, 4, 4)
    out = MinibatchStd()(same)
    assert out.shape == (8, 6, 4, 4) and out[:, 5].abs().max() < 1e-3
    varied = MinibatchStd()(torch.randn(6, 5, 4, 4))  # 6 is not a multiple of the group of 4: groups of 3
    assert varied.shape == (6, 6, 4, 4) and varied[:, 5].min() > 0.3
    d = Discriminator(_tiny(16, mbstd=True))
    assert d.blocks["4"].conv.in_channels == d.args.channels(4) + 1
    assert d(torch.randn(5, 3, 16, 16)).shape == (5,)


def test_spectral_critic_has_unit_spectral_norm_and_grows():
    torch.manual_seed(0)
    args = _tiny(8, d_norm="spectral", g_upsample="nearest", mbstd=True)
    g, d = build_models(args, freeze=False)
    _train_some(g, d, 3)
    with torch.no_grad():  # a few more power iterations (one per training-mode forward) after the steps
        for _ in range(10):
            d(torch.randn(4, 3, 8, 8))
    for m in d.modules():
        if isinstance(m, torch.nn.Conv2d):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert 0.9 < sigma.item() < 1.1  # power iteration: about 1
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    flow = GradFlow("D")  # spectral norm renames the weights: the gradient flow still sees every layer
    d(torch.randn(4, 3, 8, 8)).sum().backward()
    flow.record(d)
    names = [layer.name for layer in flow.layers()]
    assert "blocks.8.conv" in names and "from_rgb.8.conv" in names and "blocks.4.conv" in names
    _, d2, report = grow(g, d, 16, fade=True, freeze=False)
    assert "blocks.8.conv.parametrizations.weight.original" in report.copied["D"]
    assert d2(torch.randn(2, 3, 16, 16)).shape == (2,)


def test_replicate_padding_keeps_a_flat_map_flat_up_to_the_border():
    for padding, flat_border in (("zeros", False), ("replicate", True)):
        g = Generator(_tiny(16, g_upsample="nearest", padding=padding))
        flat = torch.ones(1, g.args.channels(8), 8, 8)
        with torch.no_grad():
            y = g.blocks["16"].conv(flat)  # [1, C(16), 16, 16]
        same = torch.allclose(y, y[..., 5:6, 5:6].expand_as(y), atol=1e-6)
        assert same == flat_border, padding
    d = Discriminator(_tiny(16, padding="replicate"))
    assert d.blocks["16"].conv.padding_mode == "replicate"
    with pytest.raises(ValueError, match="padding"):
        ProGANArgs(resolution=16, padding="reflect").validate()
    with pytest.raises(UserError, match="padding"):
        ProGANConfig(padding="reflect").validate()
    with pytest.raises(ValueError, match="d_norm"):
        ProGANArgs(resolution=16, d_norm="layer").validate()
    ProGANConfig(d_norm="spectral", norm="pixel").validate()  # accepted


# ---- poke eval --step progan ------------------------------------------------------------------------------
def test_eval_step_progan_judges_every_stage_checkpoint(runner, tmp_path, tiny_manifest):
    from cli import app

    _write_tiny_config(tmp_path, sizes=(8, 16))
    out = tmp_path / "run"
    assert runner.invoke(app, _options(tiny_manifest, out)).exit_code == 0
    result = runner.invoke(app, ["eval", "--run", str(out), "--step", "progan", "--n-samples", "24"])
    assert result.exit_code == 0, result.output
    figures = json.loads((out / "progan" / "eval.json").read_text())
    assert list(figures) == ["stage_8px", "stage_16px", "final"]
    assert [figures[k]["size"] for k in figures] == [8, 16, 16]
    for m in figures.values():
        assert m["judge_fd"] > 0 and 0 <= m["judge_precision"] <= 1 and 0 <= m["judge_recall"] <= 1
    assert figures["final"]["judge_fd"] == pytest.approx(figures["stage_16px"]["judge_fd"])  # same weights
    assert "judge_fd" in result.output
    sampled = runner.invoke(app, ["sample", "--run", str(out), "--step", "progan", "--n", "4"])
    assert sampled.exit_code == 0 and (out / "samples" / "progan-seed0.png").is_file()
    by_class = runner.invoke(app, ["sample", "--run", str(out), "--step", "progan", "--class", "x"])
    assert by_class.exit_code == 2 and "unconditional" in by_class.output  # and names the fix
    bad = runner.invoke(app, ["eval", "--run", str(out), "--step", "pretrain"])
    assert bad.exit_code == 2 and "--step" in bad.output
    for path in (out / "progan").glob("*.pt"):
        path.unlink()
    none = runner.invoke(app, ["eval", "--run", str(out), "--step", "progan"])
    assert none.exit_code == 2 and "no progan checkpoints" in none.output


# ---- EMA of the generator -------------------------------------------------------------------------------
def test_ema_generator_averages_grows_and_is_what_samples_and_checkpoints_use(tmp_path):
    from pokegan.progan.state import grow_state, load_generator, load_state, new_state, save_state
    from pokegan.progan.train import generate_fixed, train_step

    cfg = ProGANConfig(
        sizes=[8, 16],
        z_dim=8,
        channel_base=64,
        max_channels=16,
        n_fixed=2,
        norm="pixel",
        upsample="nearest",
        fade_in=True,
        freeze=False,
        ema_decay=0.9,
    ).validate()
    st = new_state(cfg, tmp_path, torch.device("cpu"), ["a"], "sha")
    flows = (GradFlow("G"), GradFlow("D"))
    for _ in range(4):
        train_step(st, torch.rand(4, 3, 8, 8) * 2 - 1, record_every=10**6, flows=flows)
        st.pos.step += 1
        st.pos.stage_step += 1
    assert st.ema.num_updates == 4 and st.sample_model is st.ema.model
    live, avg = st.G.blocks["8"].conv[1].weight, st.ema.model.blocks["8"].conv[1].weight
    assert not torch.equal(live, avg)  # an average, not a copy
    with torch.no_grad():
        assert torch.allclose(generate_fixed(st), st.ema.model(st.fixed_z))
    grow_state(st)
    assert st.ema.model.args.resolution == 16 and st.ema.num_updates == 4
    assert torch.equal(st.ema.model.blocks["8"].conv[1].weight, avg)  # old layers keep their average
    assert torch.equal(st.ema.model.blocks["16"].conv[1].weight, st.G.blocks["16"].conv[1].weight)
    st.set_alpha(0.25)
    assert st.ema.model.alpha == 0.25
    save_state(st, tmp_path / "last.pt")
    g, _ = load_generator(tmp_path / "last.pt")
    assert torch.equal(g.blocks["8"].conv[1].weight, avg) and g.alpha == 0.25
    again = new_state(cfg, tmp_path, torch.device("cpu"), ["a"], "sha")
    load_state(again, tmp_path / "last.pt")
    assert again.ema.num_updates == 4 and torch.equal(again.ema.model.blocks["8"].conv[1].weight, avg)
    with pytest.raises(UserError, match="ema_decay"):
        ProGANConfig(ema_decay=1.0).validate()
