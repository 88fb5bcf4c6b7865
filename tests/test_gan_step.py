"""Step 3 on a tiny run: gmm step, GAN loop artifacts, refusal without step 2, NaN recovery, resume, sample/eval."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from pokedata.errors import UserError
from pokegan.config import load_step_config
from pokegan.runs import RunDir
from pokegan.steps import gan_setup
from pokegan.steps.gan import GANConfig, run_gan
from pokegan.steps.gmm import GMMConfig, run_gmm
from tests.helpers.step3_run import make_step3_run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # trains: ~2 min in all

GAN_TINY = {
    "steps": 4,
    "sample_every": 2,
    "checkpoint_every": 2,
    "metrics_every": 2,
    "metrics_samples": 12,
    "n_fixed": 4,
    "log_every": 1,
    "data.batch_size": 6,
}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A tiny run with steps 1-2 'done' and the gmm step run (BIC over 2 and 4 components)."""
    run = make_step3_run(tmp_path_factory.mktemp("step3"))
    cfg = load_step_config(GMMConfig, "gmm", preset="tiny", overrides={"bic": [2, 4]})
    run_gmm(cfg, run.root)
    return run


@pytest.fixture
def run(base_run, tmp_path):
    """A private copy of the base run (the manifest and images stay shared)."""
    dst = tmp_path / "run"
    shutil.copytree(base_run.root, dst)
    return RunDir(dst)


def gan_cfg(**over) -> GANConfig:
    return load_step_config(GANConfig, "gan", preset="tiny", overrides={**GAN_TINY, **over})


def test_gmm_step_outputs_and_resume(base_run, tmp_path):
    gdir = base_run.step_dir("gmm")
    for name in (
        "gmm.pt",
        "bic.json",
        "pca.png",
        "config.toml",
        "done.json",
        "candidates/k002.pt",
        "candidates/k004.pt",
    ):
        assert (gdir / name).is_file(), name
    bic = json.loads((gdir / "bic.json").read_text())
    assert {r["components"] for r in bic["candidates"]} == {2, 4}
    best = min(bic["candidates"], key=lambda r: r["bic"])
    assert bic["chosen"] == best["components"] == base_run.done_summary("gmm")["components"]
    # resume: a killed search keeps its fitted candidates and refits nothing
    dst = tmp_path / "r2"
    shutil.copytree(base_run.root, dst)
    r2 = RunDir(dst)
    (r2.step_dir("gmm") / "done.json").unlink()
    (r2.step_dir("gmm") / "gmm.pt").unlink()
    before = (r2.step_dir("gmm") / "candidates" / "k004.pt").stat().st_mtime_ns
    cfg = load_step_config(GMMConfig, "gmm", preset="tiny", overrides={"bic": [2, 4]})
    with pytest.raises(UserError, match="--resume"):
        run_gmm(cfg, r2.root)
    summary = run_gmm(cfg, r2.root, resume=True)
    assert summary["components"] == bic["chosen"]
    assert (r2.step_dir("gmm") / "candidates" / "k004.pt").stat().st_mtime_ns == before


def test_gan_refuses_without_step2_unless_from_scratch(run):
    (run.step_dir("pretrain") / "final.pt").unlink()
    with pytest.raises(UserError, match="--from-scratch"):
        run_gan(gan_cfg(), run.root)
    st = gan_setup.build_state(run, gan_cfg(from_scratch=True))
    assert st.scales == [4, 8, 16, 32]


def test_gan_real_images_follow_data_augment_unless_switched_off(run):
    """``[gan] augment = false``: the critic and the anchor see the images as step 2 and the mixture did."""
    assert gan_setup.build_state(run, gan_cfg()).loader.augment  # [data] augment (on)
    assert not gan_setup.build_state(run, gan_cfg(augment=False)).loader.augment


def test_gan_end_to_end_then_sample_and_eval(run, runner, tmp_path):
    from cli import app

    summary = run_gan(gan_cfg(), run.root)
    gdir = run.step_dir("gan")
    assert summary["steps"] == 4 and summary["nan_events"] == 0
    for name in (
        "last.pt",
        "best.pt",
        "final.pt",
        "fixed_latents.pt",
        "real_stats-32px-n12-s0.npz",
        "samples.png",
        "grids/step-0000002.png",
        "grids/step-0000004.png",
        "summary.json",
        "done.json",
    ):
        assert (gdir / name).is_file(), name
    assert list((gdir / "tb").iterdir())
    rows = [json.loads(x) for x in (gdir / "metrics.jsonl").read_text().splitlines()]
    # step 0 is the step-2 generator itself: best.pt never ends worse than step 3 started from
    assert [r["step"] for r in rows] == [0, 2, 4] and all(r["fcd"] >= 0 for r in rows)
    judge_keys = {"judge_fd", "judge_kid_mean", "judge_kid_std", "judge_precision", "judge_recall"}
    assert all(judge_keys <= set(r) for r in rows)
    assert all(0 <= r["judge_precision"] <= 1 and r["judge_kid_std"] > 0 for r in rows)
    best = min(rows, key=lambda r: r["judge_fd"])  # best.pt is chosen by the judge
    assert summary["best_step"] == best["step"] and summary["best_judge_fd"] == best["judge_fd"]
    assert summary["kept"]["step"] == best["step"]
    assert summary["kept"]["start_judge_fd"] == rows[0]["judge_fd"]
    # a finished step is skipped
    assert run_gan(gan_cfg(), run.root)["steps"] == 4

    out = tmp_path / "pngs"
    res = runner.invoke(
        app,
        [
            "sample",
            "--run",
            str(run.root),
            "--n",
            "5",
            "--out",
            str(out),
            "--grid",
            str(tmp_path / "g.png"),
            "--interpolate",
            "2",
            "--frames",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("sample-*.png"))) == 5 and (tmp_path / "g.png").is_file()
    assert (out / "interpolation-seed0.gif").is_file()

    res = runner.invoke(app, ["eval", "--run", str(run.root), "--n-samples", "8", "--json"])
    assert res.exit_code == 0, res.output
    saved = json.loads((gdir / "eval.json").read_text())
    assert set(saved) == {"final", "best"} and saved["final"]["step"] == 4
    printed = json.loads(res.stdout[res.stdout.index("{") : res.stdout.rindex("}") + 1])
    assert judge_keys <= set(printed["final"]) and judge_keys <= set(printed["best"])
    assert printed["final"]["judge_kid_std"] > 0
    assert "standard FID/KID skipped" in res.output

    res = runner.invoke(app, ["sample", "--run", str(tmp_path), "--n", "2"])
    assert res.exit_code == 2 and "no GAN checkpoint" in res.output


class _NaNLoss:
    """Wraps a real loss; its discriminator loss is NaN on the listed calls (1-based)."""

    def __init__(self, inner, nan_calls):
        self.inner, self.nan_calls, self.calls = inner, set(nan_calls), 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def d_loss(self, D, real, fake):
        self.calls += 1
        loss, stats = self.inner.d_loss(D, real, fake)
        return (loss * float("nan") if self.calls in self.nan_calls else loss), stats


def test_nan_recovery_reloads_and_lowers_lr(run, monkeypatch):
    real = gan_setup.make_loss
    monkeypatch.setattr(gan_setup, "make_loss", lambda cfg: _NaNLoss(real(cfg), {3}))
    summary = run_gan(gan_cfg(loss="dcgan"), run.root)
    assert summary["steps"] == 4 and summary["nan_events"] == 1 and summary["lr_scale"] == 0.5
    import torch

    state = torch.load(run.step_dir("gan") / "final.pt", weights_only=False)
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(gan_cfg().loss.lr_g * 0.5)


def test_nan_every_step_stops_with_a_clear_error(run, monkeypatch):
    real = gan_setup.make_loss
    monkeypatch.setattr(gan_setup, "make_loss", lambda cfg: _NaNLoss(real(cfg), range(1, 100)))
    with pytest.raises(UserError, match="diverged"):
        run_gan(gan_cfg(loss="dcgan", max_nan_retries=2), run.root)
    assert not run.is_done("gan")


def test_interrupted_gan_resumes_to_the_same_step_count(run):
    class Killed(Exception):
        pass

    def die_at_3(step):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        run_gan(gan_cfg(), run.root, on_step=die_at_3)
    assert not run.is_done("gan")
    with pytest.raises(UserError, match="--resume"):
        run_gan(gan_cfg(), run.root)
    summary = run_gan(gan_cfg(), run.root, resume=True)
    assert summary["steps"] == 4
    rows = [json.loads(x) for x in (run.step_dir("gan") / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4]  # the resumed run re-logged nothing twice


def test_gan_that_only_gets_worse_keeps_the_step2_generator(run, monkeypatch):
    """When every evaluation after step 0 is worse, best.pt (what `poke sample` uses) is the start."""
    import pokegan.steps.gan as gan_mod
    from pokegan.checkpoint import load_checkpoint
    from pokegan.sampling import gan_checkpoint_path

    real_evaluate = gan_mod._evaluate

    def worse_each_time(st, writer):
        m = real_evaluate(st, writer)
        m["judge_fd"] = 100.0 + st.step  # step 0 is the best by construction
        return m

    monkeypatch.setattr(gan_mod, "_evaluate", worse_each_time)
    summary = gan_mod.run_gan(gan_cfg(), run.root)
    assert summary["kept"]["step"] == 0 and "did not improve" in summary["kept"]["note"]
    best = gan_checkpoint_path(run.root)
    assert best.name == "best.pt" and load_checkpoint(best)["step"] == 0


def test_nan_recovery_keeps_the_best_record_newer_than_last_pt(run, monkeypatch):
    """best.pt saved after last.pt must not be overwritten by a worse model after a NaN reload."""
    import pokegan.steps.gan as gan_loop

    fds = iter([11.0, 10.0, 9.0, 8.0, 50.0, 40.0, 30.0, 20.0, 15.0, 12.0])  # 11: step 0, the start

    def figures(*args, **kw):
        keys = ("judge_kid_mean", "judge_kid_std", "judge_precision", "judge_recall", "fcd", "fck")
        return {"judge_fd": next(fds), **dict.fromkeys(keys, 0.5)}

    monkeypatch.setattr(gan_loop, "generator_figures", figures)  # the name the loop evaluates with
    saved = []
    real_save = gan_setup.save_state
    monkeypatch.setattr(
        "pokegan.steps.gan.save_state",
        lambda st, path: saved.append((path.name, st.best_judge_fd)) or real_save(st, path),
    )
    real = gan_setup.make_loss
    monkeypatch.setattr(gan_setup, "make_loss", lambda cfg: _NaNLoss(real(cfg), {4}))
    over = {"loss": "dcgan", "steps": 6, "metrics_every": 1, "checkpoint_every": 5, "sample_every": 100}
    summary = run_gan(gan_cfg(**over), run.root)
    assert summary["nan_events"] == 1
    best_saves = [fd for name, fd in saved if name == "best.pt"]
    assert best_saves == [11.0, 10.0, 9.0, 8.0]  # after the reload to step 0, 50 .. 12 are all worse
    assert summary["best_judge_fd"] == 8.0 and summary["best_step"] == 3


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan-gp-msg"])
def test_gradient_penalty_with_a_train_split_smaller_than_the_batch(run, loss):
    # 36 train images, batches of 64: the loader serves batches of 36; the fakes must match them
    summary = run_gan(gan_cfg(loss=loss, steps=2, n_critic=1, **{"data.batch_size": 64}), run.root)
    assert summary["steps"] == 2 and summary["nan_events"] == 0


def test_resume_continues_the_real_data_where_it_stopped(run, tmp_path, monkeypatch):
    """A resumed GAN sees the batches an uninterrupted run sees next, not epoch 0, batch 0 again."""
    import pokegan.steps.gan as gan_loop

    seen: list[float] = []
    real_fn = gan_loop._real
    monkeypatch.setattr(gan_loop, "_real", lambda st, x: seen.append(float(x.sum())) or real_fn(st, x))
    cfg = gan_cfg(loss="dcgan", steps=8, checkpoint_every=4, metrics_every=8, sample_every=100)
    other = tmp_path / "uninterrupted"
    shutil.copytree(run.root, other)
    run_gan(cfg, other)
    straight, seen[:] = list(seen), []

    class Killed(Exception):
        pass

    def die_at_6(step):
        if step == 6:
            raise Killed

    with pytest.raises(Killed):
        run_gan(cfg, run.root, on_step=die_at_6)
    seen.clear()
    run_gan(cfg, run.root, resume=True)  # from last.pt at step 4: 36 images, batches of 6
    assert len(straight) == 8 and seen == straight[4:]


def test_from_scratch_builds_the_generator_step2_would(run, runner):
    """--from-scratch and the pretrained arm must be the same model: the [pretrain] generator settings."""
    from cli import app
    from pokegan.config import PretrainConfig
    from pokegan.models.generator import Generator, GeneratorArgs
    from pokegan.steps.pretrain import generator_args

    (run.step_dir("pretrain") / "final.pt").unlink()
    pre = load_step_config(PretrainConfig, "pretrain", preset="tiny", base={"data": {"image_size": 32}})
    expected = sum(p.numel() for p in Generator(generator_args(pre)).parameters())
    args = ["train", "gan", "--run", str(run.root), "--preset", "tiny", "--from-scratch", "--dry-run"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"# generator: {expected:,} parameters" in res.output
    default = sum(p.numel() for p in Generator(GeneratorArgs(image_size=32)).parameters())
    assert default > 10 * expected  # what it built before: 512 channels, ~40x the tiny preset's
    st = gan_setup.build_state(run, gan_cfg(from_scratch=True), gan_setup.scratch_generator_args(run, pre))
    assert st.g_args == dataclasses.asdict(generator_args(pre))


def test_recon_anchor_is_logged_and_pulls_g_towards_the_reals(run):
    """``recon_weight``: pixel L1 of G(classifier embedding of the real batch) vs that batch joins the
    generator loss; with a large weight a few steps lower it."""
    from pokegan.steps import gan

    cfg = gan_cfg(recon_weight=20.0, lr_g=2e-3, **{"data.batch_size": 12}).validate()
    st = gan_setup.build_state(run, cfg)
    data = gan._data_iter(st)
    first = [gan._train_step(st, data)["g_recon_l1"] for _ in range(2)]
    last = [gan._train_step(st, data)["g_recon_l1"] for _ in range(10)][-2:]
    assert sum(last) < sum(first)
    with pytest.raises(UserError, match="recon_weight"):
        gan_cfg(recon_weight=-1.0).validate()


def test_recon_size_compares_area_averages_and_is_validated():
    """``recon_size``: the anchor compares the two batches' ``size`` x ``size`` area averages, so a
    reconstruction whose detail differs but whose 8x8 averages match costs nothing."""
    import torch

    from pokegan.losses import anchor_l1

    real = torch.rand(2, 3, 32, 32)
    detail = torch.randn(2, 3, 32, 32)
    detail -= torch.nn.functional.avg_pool2d(detail, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert float(anchor_l1(real + detail, real, 8)) < 1e-5  # the 8x8 averages match
    full = float(anchor_l1(real + detail, real, 0))
    assert full > 0.1 and float(anchor_l1(real + detail, real, 32)) == pytest.approx(full)  # 32: full size
    for bad in (-8, 12):
        with pytest.raises(UserError, match="recon_size"):
            gan_cfg(recon_size=bad).validate()
    with pytest.raises(UserError, match="d_downsample"):
        gan_cfg(d_downsample="blur").validate()
