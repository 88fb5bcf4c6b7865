"""The class-conditional progressive DCGAN (``[progan] conditional``): G(z, y) with a class embedding beside
the latent, a projection critic D(x, y), labels through growth, checkpoints, resume, eval and sampling."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pokedata.errors import UserError
from pokegan.losses import LossConfig, make_loss
from pokegan.progan.grow import build_models, grow
from pokegan.progan.models import Discriminator, Generator, ProGANArgs

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(z_dim=16, channel_base=128, max_channels=32)


def _args(resolution: int = 8, n_classes: int = 3, **kw) -> ProGANArgs:
    return ProGANArgs(resolution=resolution, n_classes=n_classes, **{**TINY, **kw})


# ---- models ----------------------------------------------------------------------------------------------
def test_conditional_models_take_labels_and_the_label_changes_the_output():
    g, d = Generator(_args(16, g_norm="pixel")), Discriminator(_args(16, d_norm="spectral", mbstd=True))
    z = torch.randn(4, 16)
    y = torch.tensor([0, 1, 2, 0])
    x = g(z, y)
    assert x.shape == (4, 3, 16, 16) and torch.isfinite(x).all()
    other = g(z, torch.tensor([1, 2, 0, 1]))
    assert not torch.allclose(x, other)  # same latents, other classes: other images
    with torch.no_grad():
        d.embed.parametrizations.weight.original.normal_()  # a non-trivial projection
    s = d(x, y)
    assert s.shape == (4,) and not torch.allclose(s, d(x, torch.tensor([1, 2, 0, 1])))
    with pytest.raises(ValueError, match="pass the labels"):
        g(z)
    with pytest.raises(ValueError, match="pass the labels"):
        d(x)
    with pytest.raises(ValueError, match="unconditional"):
        Generator(_args(16, n_classes=0))(z, y)
    with pytest.raises(ValueError, match="n_classes"):
        _args(8, n_classes=-1).validate()


def test_projection_critic_learns_which_colour_belongs_to_which_class():
    """Real: red images labelled 0, blue labelled 1. Fake: the same images with the labels swapped. Only the
    projection (label x features) can tell them apart: a critic that ignores labels sits at chance."""
    d = Discriminator(_args(8, n_classes=2, d_norm="spectral"))
    loss = make_loss(LossConfig(name="dcgan", lr_g=1e-3, lr_d=2e-3, betas=(0.5, 0.999)))
    _, opt = loss.make_optimizers([torch.nn.Parameter(torch.zeros(1))], list(d.parameters()))
    gen = torch.Generator().manual_seed(0)

    def batch():
        red = torch.tensor([0.8, -0.8, -0.8]).view(1, 3, 1, 1)
        blue = torch.tensor([-0.8, -0.8, 0.8]).view(1, 3, 1, 1)
        noise = 0.1 * torch.randn(8, 3, 8, 8, generator=gen)
        x = torch.cat([red.expand(4, 3, 8, 8), blue.expand(4, 3, 8, 8)]) + noise
        return x, torch.tensor([0] * 4 + [1] * 4)

    from pokegan.progan.train import Conditioned

    losses = []
    for _ in range(60):
        x, y = batch()
        real, fake = Conditioned(d, y), Conditioned(d, 1 - y)
        s_real, s_fake = real(x), fake(x)
        d_loss = F.softplus(-s_real).mean() + F.softplus(s_fake).mean()
        opt.zero_grad()
        d_loss.backward()
        opt.step()
        losses.append(d_loss.item())
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10  # from ~2 ln 2 down
    x, y = batch()
    with torch.no_grad():
        right, wrong = d(x, y), d(x, 1 - y)
    assert (right > wrong).all()


def test_growth_copies_the_class_embeddings_and_freezes_them_with_the_stem():
    g, d = build_models(_args(8, g_norm="pixel", g_upsample="nearest", skip_rgb=True, d_norm="spectral"))
    with torch.no_grad():
        g.embed.weight.mul_(2.0)
    g2, d2, report = grow(g, d, 16, fade=False, freeze=True, skip_rgb=True)
    assert torch.equal(g2.embed.weight, g.embed.weight)
    assert "embed" in report.frozen["G"] and "embed" in report.frozen["D"]
    assert not g2.embed.weight.requires_grad
    z, y = torch.randn(3, 16), torch.tensor([2, 0, 1])
    with torch.no_grad():  # skip outputs: right after growing, G draws its 8 px images upsampled, per label
        g.eval(), g2.eval()
        assert torch.allclose(g2(z, y), F.interpolate(g(z, y), scale_factor=2, mode="nearest"), atol=1e-6)
    g3, _, report = grow(g, d, 16, fade=False, freeze=False, skip_rgb=True)
    assert g3.embed.weight.requires_grad and "embed" not in report.frozen["G"]


def test_fixed_labels_show_every_present_class_before_any_repeat():
    from pokegan.progan.state import fixed_labels

    counts = [5, 0, 3, 7, 0]
    y = fixed_labels(counts, 7, seed=1)
    assert sorted(y[:3].tolist()) == [0, 2, 3] and set(y.tolist()) <= {0, 2, 3}
    assert torch.equal(y, fixed_labels(counts, 7, seed=1))  # seeded
    with pytest.raises(UserError, match="no labelled"):
        fixed_labels([0, 0], 4, seed=0)


def test_sampler_draws_labels_from_the_class_counts_and_refuses_without_them():
    from pokegan.progan.evaluate import progan_sampler

    g = Generator(_args(8, n_classes=3)).eval()
    drawn = []
    real_forward = g.forward

    def spy(z, y=None):
        drawn.append(y)
        return real_forward(z, y)

    g.forward = spy
    sample = progan_sampler(g, 16, seed=0, device=torch.device("cpu"), class_counts=[0, 10, 30])
    assert sample(400).shape == (400, 3, 8, 8)
    y = drawn[0]
    assert (y != 0).all() and 0.15 < (y == 1).float().mean() < 0.35  # ~1/4 of the draws
    with pytest.raises(UserError, match="class counts"):
        progan_sampler(g, 16, seed=0, device=torch.device("cpu"))


# ---- the step, end to end ----------------------------------------------------------------------------------
@pytest.fixture
def tiny_manifest(tmp_path):
    from tests.helpers.tiny_manifest import make_tiny_manifest

    return make_tiny_manifest(tmp_path, n_classes=3, per_class=12, size=32)  # 27 train images: 3 batches of 8


def _write_config(folder) -> None:
    (folder / "progan.toml").write_text(
        "[data]\nbatch_size = 8\nnum_workers = 0\nuse_cache = false\n\n"
        "[progan]\nsizes = [8, 16]\ncycle = [{lr = 1e-3, epochs = 1}]\nconditional = true\n"
        'z_dim = 8\nchannel_base = 64\nmax_channels = 16\nn_fixed = 4\nsample_every = 2\nnorm = "pixel"\n'
        'd_norm = "spectral"\nmbstd = true\nskip_rgb = true\nupsample = "nearest"\nema_decay = 0.9\n'
        'checkpoint_every = 1\nlog_every = 1\ngradflow_every = 1\ndevice = "cpu"\ndiffaugment = "color,cutout"\n'
    )


def _train_frames(manifest, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The train split decoded as training decodes it: images ``[N, 3, size, size]`` in [-1, 1], labels ``[N]``."""
    from pokegan.decode import decode_image

    rows, paths = manifest.rows("train"), manifest.abs_paths()
    imgs = torch.stack([torch.from_numpy(decode_image(paths[i], size)).float() / 127.5 - 1 for i in rows])
    return imgs, torch.from_numpy(manifest.labels()[rows])


def _train_steps(
    st, imgs: torch.Tensor, ys: torch.Tensor, steps: int, batch: int = 16, bank=None
) -> list[dict]:
    """``steps`` calls of the real ``train_step`` on random batches of the frames; the logs of each."""
    from pokegan.progan.train import train_step

    gen, logs = torch.Generator().manual_seed(0), []
    for _ in range(steps):
        pick = torch.randint(len(ys), (batch,), generator=gen)
        logs.append(
            train_step(st, imgs[pick], labels=ys[pick], record_every=10**6, flows=st.flows, bank=bank)
        )
        st.pos.stage_step += 1
    return logs


def _tiny_state(tmp_path, manifest_dir, **kw):
    """A fresh conditional 8 px state (pixel-norm G, spectral critic) on the tiny manifest, and the manifest."""
    from pokegan.data import load_manifest
    from pokegan.progan.config import ProGANConfig
    from pokegan.progan.state import new_state
    from pokegan.progan.train import class_counts

    manifest = load_manifest(manifest_dir)
    cfg = ProGANConfig(
        sizes=[8],
        z_dim=8,
        channel_base=128,
        max_channels=32,
        n_fixed=3,
        norm="pixel",
        upsample="nearest",
        d_norm="spectral",
        conditional=True,
        cycle=[{"lr": 2e-3, "epochs": 1}],
        **kw,
    ).validate()
    counts = class_counts(cfg, manifest)
    return new_state(cfg, tmp_path, torch.device("cpu"), list(manifest.classes), "sha", counts), manifest


def test_conditional_run_checkpoints_labels_evaluates_and_refuses_a_changed_resume(
    runner, tmp_path, tiny_manifest
):
    from cli import app
    from pokegan.checkpoint import load_checkpoint
    from pokegan.progan.evaluate import progan_sampler
    from pokegan.progan.state import load_generator

    _write_config(tmp_path)
    out = tmp_path / "run"
    opts = ["train", "progan", "--manifest", str(tiny_manifest), "--out", str(out)]
    dry = runner.invoke(app, [*opts, "--config", str(tmp_path / "progan.toml"), "--dry-run"])
    assert dry.exit_code == 0 and "conditional = true" in dry.output
    result = runner.invoke(app, [*opts, "--config", str(tmp_path / "progan.toml")])
    assert result.exit_code == 0, result.output
    d = out / "progan"
    final = load_checkpoint(d / "final.pt")
    assert final["model_args"]["n_classes"] == 3 and final["class_counts"] == [9, 9, 9]
    labels = final["fixed_labels"].tolist()
    assert len(labels) == 4 and sorted(labels[:3]) == [0, 1, 2]  # every class in the grid
    assert final["frozen"]["G"][-1] == "embed" and "generator" in final
    g, saved = load_generator(d / "final.pt")
    x = progan_sampler(g, g.args.z_dim, 0, torch.device("cpu"), saved["class_counts"])(5)
    assert x.shape == (5, 3, 16, 16) and torch.isfinite(x).all()
    ev = runner.invoke(app, ["eval", "--run", str(out), "--step", "progan", "--n-samples", "24"])
    assert ev.exit_code == 0, ev.output
    figures = json.loads((d / "eval.json").read_text())
    assert list(figures) == ["stage_8px", "stage_16px", "final"] and figures["final"]["judge_fd"] > 0
    # poke sample --step progan: a grid row per --class, names matched case-insensitively, mistakes named
    names = json.loads((tiny_manifest / "classes.json").read_text())
    names = names if isinstance(names, list) else names["classes"]
    grid = tmp_path / "by-class.png"
    args = ["sample", "--run", str(out), "--step", "progan", "--n", "3", "--grid", str(grid)]
    got = runner.invoke(
        app, [*args, "--class", names[2], "--class", names[0].upper(), "--out", str(tmp_path / "pngs")]
    )
    assert got.exit_code == 0, got.output
    with Image.open(grid) as im:  # 2 rows of 3 tiles, each upscaled to 64 px
        assert im.size[0] > im.size[1] > 2 * 64
    assert len(list((tmp_path / "pngs").glob("progan-*.png"))) == 6
    typo = runner.invoke(app, [*args, "--class", names[1] + "x"])
    assert typo.exit_code == 2 and "not a class of this run" in typo.output and names[1] in typo.output
    prior = runner.invoke(app, ["sample", "--run", str(out), "--step", "progan", "--n", "5"])
    assert prior.exit_code == 0 and (out / "samples" / "progan-seed0.png").is_file()
    wrong = runner.invoke(app, ["sample", "--run", str(out), "--class", names[0]])
    assert wrong.exit_code == 2 and "--step progan" in wrong.output
    # a conditional checkpoint cannot be continued as an unconditional run (or the other way round)
    (d / "done.json").unlink()
    bad = runner.invoke(app, ["train", "progan", "--run", str(out), "--resume", "--no-conditional"])
    assert (
        bad.exit_code == 2 and "other settings" in bad.output and "conditional: True -> False" in bad.output
    )


def test_conditional_training_learns_each_class_colour(tmp_path, tiny_manifest):
    """A few hundred CPU steps at 8 px: the samples drawn for a class take that class's colour, nearer to it
    than to any other class's (the tiny manifest gives every class its own colour on a light background)."""
    from pokegan.progan.evaluate import progan_sampler

    st, manifest = _tiny_state(tmp_path, tiny_manifest)
    imgs, ys = _train_frames(manifest, 8)  # [N, 3, 8, 8], [N]
    means = torch.stack([imgs[ys == c].mean(dim=(0, 2, 3)) for c in range(3)])  # [3, 3] the class colours
    _train_steps(st, imgs, ys, 300)
    gen = torch.Generator().manual_seed(1)
    g = st.G.eval()
    with torch.no_grad():
        for c in range(3):
            x = g(torch.randn(64, 8, generator=gen), torch.full((64,), c)).mean(dim=(0, 2, 3))  # [3]
            dist = ((means - x) ** 2).sum(dim=1)
            assert dist.argmin().item() == c, (c, dist.tolist())
    assert progan_sampler(g, 8, 0, torch.device("cpu"), st.class_counts)(4).shape == (4, 3, 8, 8)


def test_class_anchor_pulls_each_class_to_its_real_layout_and_needs_labels(tmp_path, tiny_manifest):
    """``anchor_weight``: G's step adds the L1 between each fake and the real image of its label at
    ``anchor_size`` x ``anchor_size``; a few dozen CPU steps lower it (logged as ``g_anchor_l1``). Without
    ``conditional`` the option is refused: it would pull every sample to the data's mean."""
    from pokegan.data import load_manifest
    from pokegan.progan.config import ProGANConfig
    from pokegan.progan.state import new_state
    from pokegan.progan.train import class_counts

    def cfg(**kw):
        base = dict(sizes=[8], z_dim=8, channel_base=128, max_channels=32, n_fixed=3, norm="pixel")
        return ProGANConfig(**{**base, "upsample": "nearest", "d_norm": "spectral", **kw})

    with pytest.raises(UserError, match="anchor_weight needs conditional"):
        cfg(anchor_weight=1.0).validate()
    for bad in (dict(anchor_weight=-1.0), dict(anchor_size=6)):
        with pytest.raises(UserError, match="anchor_size"):
            cfg(conditional=True, **bad).validate()

    manifest = load_manifest(tiny_manifest)
    c = cfg(conditional=True, anchor_weight=10.0, anchor_size=4, cycle=[{"lr": 2e-3, "epochs": 1}]).validate()
    st = new_state(c, tmp_path, torch.device("cpu"), list(manifest.classes), "sha", class_counts(c, manifest))
    l1 = [logs["g_anchor_l1"] for logs in _train_steps(st, *_train_frames(manifest, 8), 60)]
    assert sum(l1[-10:]) / 10 < 0.6 * sum(l1[:10]) / 10, l1


# ---- the nearest-frame anchor (anchor_match = "nearest") ---------------------------------------------------
def test_class_bank_takes_the_nearest_image_of_the_fakes_own_class(monkeypatch):
    """``ClassBank.nearest_l1``: per fake the smallest L1 over its label's images (mirrors included), never
    another class's; the same in chunks and with a capped class (a seeded subset)."""
    import pokegan.progan.anchor as anchor

    gen = torch.Generator().manual_seed(0)
    imgs = torch.rand(12, 3, 8, 8, generator=gen) * 2 - 1
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    bank = anchor.ClassBank(imgs, labels, mirror=True)
    assert len(bank) == 24 and bank.counts.tolist() == [8, 6, 10]
    assert bank.nearest_l1(imgs[[1]].flip(3), torch.tensor([0])) == 0  # a mirror of one of its frames
    assert bank.nearest_l1(imgs[[1]], torch.tensor([2])) > 0.3  # another class's frame is no match

    fakes, ys = torch.rand(5, 3, 8, 8, generator=gen) * 2 - 1, torch.tensor([0, 1, 2, 2, 0])
    brute = torch.stack(
        [
            min((f - r).abs().mean() for r in torch.cat([imgs[labels == y], imgs[labels == y].flip(3)]))
            for f, y in zip(fakes, ys, strict=True)
        ]
    ).mean()
    assert torch.allclose(bank.nearest_l1(fakes, ys), brute)
    monkeypatch.setattr(anchor, "_CHUNK_ELEMS", {"cpu": 1})  # one bank image at a time
    assert torch.allclose(bank.nearest_l1(fakes, ys), brute)

    pooled = anchor.ClassBank(imgs, labels, size=4)
    assert (
        torch.allclose(pooled.nearest_l1(imgs[[4]], torch.tensor([1])), torch.tensor(0.0))
        and pooled.images.shape[-1] == 4
    )
    capped = anchor.ClassBank(imgs, labels, max_per_class=3)
    assert capped.counts.tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="no image in the class bank"):
        anchor.ClassBank(imgs[:4], labels[:4]).nearest_l1(fakes[:1], torch.tensor([1]))


def test_nearest_anchor_settles_on_one_frame_where_the_row_anchor_blends_them():
    """Why ``nearest``: one image held to a class of two different frames. Paired with a random frame each
    step (the row anchor), it ends between them, far from both; held to the nearest it becomes one of them."""
    from pokegan.losses import anchor_l1
    from pokegan.progan.anchor import ClassBank

    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 3, 8, 8, generator=gen).round() * 2 - 1  # two flat-coloured, unlike frames
    bank = ClassBank(frames, torch.tensor([0, 0]))

    def fit(loss) -> torch.Tensor:
        x = (frames[:1] * 0.1).clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.05)
        for i in range(300):
            opt.zero_grad()
            loss(x, frames[[i % 2]]).backward()
            opt.step()
        return x.detach()

    row = fit(lambda x, real: anchor_l1(x, real))
    nearest = fit(lambda x, real: bank.nearest_l1(x, torch.tensor([0])))
    dist = lambda x: min(float((x - f).abs().mean()) for f in frames)  # noqa: E731
    assert dist(nearest) < 0.05 and dist(row) > 0.25, (dist(nearest), dist(row))


def test_class_bank_of_a_stage_holds_the_train_split_at_its_size(tmp_path, tiny_manifest):
    """``_class_bank``: every train image at the stage's size (as the loader decodes it) with its mirror,
    grouped by label; ``None`` for the row anchor; an unknown ``anchor_match`` is refused by name."""
    from pokegan.data import load_manifest
    from pokegan.progan.config import ProGANConfig
    from pokegan.progan.state import new_state
    from pokegan.progan.train import _class_bank, class_counts

    manifest = load_manifest(tiny_manifest)
    base = dict(sizes=[8], z_dim=8, channel_base=128, max_channels=32, n_fixed=3, conditional=True)
    with pytest.raises(UserError, match="anchor_match 'closest'"):
        ProGANConfig(**base, anchor_weight=1.0, anchor_match="closest").validate()
    c = ProGANConfig(**base, anchor_weight=1.0, anchor_size=0, anchor_match="nearest").validate()
    c.data.use_cache, c.data.num_workers = False, 0
    st = new_state(c, tmp_path, torch.device("cpu"), list(manifest.classes), "sha", class_counts(c, manifest))
    bank = _class_bank(st, manifest)
    imgs, ys = _train_frames(manifest, 8)
    assert bank.counts.tolist() == [2 * n for n in torch.bincount(ys).tolist()]
    assert torch.allclose(bank.nearest_l1(imgs, ys), torch.tensor(0.0), atol=1e-6)
    assert (
        _class_bank(
            new_state(
                ProGANConfig(**base, anchor_weight=1.0).validate(),
                tmp_path,
                torch.device("cpu"),
                list(manifest.classes),
                "sha",
                class_counts(c, manifest),
            ),
            manifest,
        )
        is None
    )


def test_cover_anchor_holds_each_real_image_to_its_nearest_candidate():
    """``anchor_match = "cover"`` (IMLE): the generator step draws ``k`` fakes per label of the first
    ``B // k`` rows; each of those real images is held to the nearest of its ``k`` candidates only."""
    from pokegan.progan.anchor import cover_l1, cover_labels

    y_g, k = cover_labels(torch.tensor([5, 7, 9, 11, 13, 2, 3, 4, 6]), k=4)
    assert k == 4 and y_g.tolist() == [5] * 4 + [7] * 4
    assert cover_labels(torch.tensor([1, 2]), k=4)[1] == 2  # a batch smaller than k: one label, all rows

    gen = torch.Generator().manual_seed(0)
    real = torch.rand(8, 3, 8, 8, generator=gen) * 2 - 1
    fake = torch.rand(8, 3, 8, 8, generator=gen, requires_grad=False) * 2 - 1
    fake[2], fake[5] = real[0], real[1]  # one candidate of each of real[0], real[1] is exact
    assert cover_l1(fake, real, 4) == 0
    fake.requires_grad_(True)
    moved = fake.detach().clone()
    moved[2] += 0.5  # now real[0]'s nearest candidate is another one
    near0 = min(float((moved[i] - real[0]).abs().mean()) for i in range(4))
    assert torch.isclose(cover_l1(moved, real, 4), torch.tensor(near0 / 2))
    loss = cover_l1(fake + 0.1, real, 4)
    loss.backward()
    assert fake.grad[[2, 5]].abs().sum() > 0 and fake.grad[[0, 1, 3, 4, 6, 7]].abs().sum() == 0


@pytest.mark.parametrize("match", ["nearest", "cover", "chamfer"])
def test_each_anchor_match_trains_through_the_real_step_and_lowers_its_l1(tmp_path, tiny_manifest, match):
    """60 CPU steps of the real ``train_step`` with each ``anchor_match`` lower ``g_anchor_l1``; "nearest"
    and "chamfer" need the stage's class bank, and a caller that leaves it out is refused (it would
    otherwise have trained the row anchor)."""
    from pokegan.progan.train import _class_bank

    st, manifest = _tiny_state(tmp_path, tiny_manifest, anchor_weight=10.0, anchor_size=0, anchor_match=match)
    bank = _class_bank(st, manifest)
    frames = _train_frames(manifest, 8)
    assert (bank is None) == (match == "cover")
    if bank is not None:
        with pytest.raises(ValueError, match="class bank"):
            _train_steps(st, *frames, 1)
    l1 = [logs["g_anchor_l1"] for logs in _train_steps(st, *frames, 60, bank=bank)]
    assert sum(l1[-10:]) / 10 < 0.6 * sum(l1[:10]) / 10, l1
