"""Configs (presets, TOML, overrides), the LR schedule, run directories, checkpoints and the train CLI."""

from __future__ import annotations

import math

import pytest
import torch

from pokedata.errors import UserError
from pokegan.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from pokegan.config import (
    ClassifyConfig,
    EmbedConfig,
    PretrainConfig,
    config_to_toml,
    load_step_config,
)
from pokegan.runs import open_run
from pokegan.schedule import WarmupCosine, lr_at
from tests.helpers.tiny_manifest import make_tiny_manifest


def test_layers_defaults_preset_file_overrides(tmp_path):
    f = tmp_path / "all.toml"
    f.write_text("[data]\nimage_size = 128\n[classify]\nepochs = 7\nlr = 1\n[pretrain]\nepochs = 3\n")
    cfg = load_step_config(
        ClassifyConfig, "classify", config_file=f, preset="tiny", overrides={"lr": 0.5, "seed": None}
    )
    assert cfg.epochs == 7 and cfg.lr == 0.5 and isinstance(cfg.lr, float)  # file int 1 -> float, CLI wins
    assert cfg.data.image_size == 128 and cfg.data.max_images == 400  # file over preset, preset over default
    assert cfg.seed == 0  # None = not given
    pre = load_step_config(PretrainConfig, "pretrain", config_file=f, overrides={"data.batch_size": 8})
    assert pre.epochs == 3 and pre.data.image_size == 128 and pre.data.batch_size == 8


def test_toml_round_trip(tmp_path):
    cfg = load_step_config(
        PretrainConfig, "pretrain", preset="tiny", overrides={"layer_weights": [1, 0.5, 0, 2]}
    )
    text = config_to_toml(cfg)
    assert text.startswith("[data]") and "[pretrain]" in text
    (tmp_path / "c.toml").write_text(text)
    assert load_step_config(PretrainConfig, "pretrain", config_file=tmp_path / "c.toml") == cfg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[classify]\nepoch = 3\n", "unknown key 'epoch' in section [classify]"),
        ("[data]\nimage_sise = 3\n", "unknown key 'image_sise' in section [data]"),
        ("[classify]\nepochs = 'x'\n", "[classify] epochs must be an integer"),
        ("[data]\nimage_size = 48\n", "power of two"),
        ("epochs = 3\n", "not inside a section"),
        ("[classify\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UserError) as e:
        load_step_config(ClassifyConfig, "classify", config_file=f)
    assert needle in str(e.value)


def test_validation_and_presets():
    with pytest.raises(UserError, match="--task"):
        load_step_config(ClassifyConfig, "classify", overrides={"task": "nope"})
    with pytest.raises(UserError, match="--preset"):
        load_step_config(EmbedConfig, "embed", preset="huge")
    with pytest.raises(UserError, match="layer_weights"):
        load_step_config(PretrainConfig, "pretrain", overrides={"layer_weights": [0, 0, 0, 0]})
    assert (
        load_step_config(EmbedConfig, "embed", preset="tiny").batch_size == 128
    )  # tests/test_presets.py: all


def test_schedule_is_a_pure_function_of_the_step():
    s = WarmupCosine(base_lr=1.0, total_steps=100, warmup_steps=10, min_ratio=0.1)
    lrs = [s.lr_at(i) for i in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # monotone after warm-up
    assert lrs[100] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lr_at(5, 1.0, 0, 0, 0.25) == pytest.approx(0.25)  # zero total steps: no division by zero


def test_run_dirs_are_never_reused(tmp_path):
    run = open_run(tmp_path / "r", resume=False, create=True, manifest_dir=tmp_path, image_size=32)
    assert run.manifest_dir == tmp_path.resolve() and run.image_size == 32
    with pytest.raises(UserError, match="already exists"):
        open_run(tmp_path / "r", resume=False, create=True, manifest_dir=tmp_path)
    with pytest.raises(UserError, match="started on manifest"):
        open_run(tmp_path / "r", resume=True, create=True, manifest_dir=tmp_path / "other")
    with pytest.raises(UserError, match="not a run directory"):
        open_run(tmp_path / "nothing", resume=True, create=False)
    d, started = run.begin_step("embed", resume=False)
    (d / "partial").write_text("x")
    with pytest.raises(UserError, match="--resume"):
        run.begin_step("embed", resume=False)
    assert run.begin_step("embed", resume=True) == (d, True)
    run.mark_done("embed", {"images": 3})
    assert run.is_done("embed") and run.done_summary("embed")["images"] == 3


def test_checkpoint_atomic_and_refused_elsewhere(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint(
        p, {"kind": "k", "x": torch.arange(3), "manifest_sha256": "a" * 64, "classes": ["A", "B"]}
    )
    st = load_checkpoint(p)
    assert torch.equal(st["x"], torch.arange(3)) and not list(tmp_path.glob(".tmp-*"))
    check_compatible(st, p, manifest_sha256="a" * 64, classes=["A", "B"], kind="k")
    with pytest.raises(UserError, match="another manifest"):
        check_compatible(st, p, manifest_sha256="b" * 64, classes=["A", "B"])
    with pytest.raises(UserError, match="2 classes, the manifest has 3"):
        check_compatible(st, p, manifest_sha256="a" * 64, classes=["A", "B", "C"])
    p.write_bytes(b"garbage")
    with pytest.raises(UserError, match="could not be read"):
        load_checkpoint(p)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_cli_dry_run_and_refusals(tmp_path, runner):
    from cli import app

    m = make_tiny_manifest(tmp_path, n_classes=3, per_class=4, size=16)
    out = tmp_path / "runs" / "r"
    r = runner.invoke(
        app, ["train", "classify", "--manifest", str(m), "--out", str(out), "--preset", "tiny", "--dry-run"]
    )
    assert r.exit_code == 0, r.output
    assert "[classify]" in r.stdout and "image_size = 32" in r.stdout and "parameters" in r.stdout
    assert not out.exists()  # a dry run creates nothing
    out.mkdir(parents=True)
    (out / "something").write_text("x")
    r = runner.invoke(app, ["train", "classify", "--manifest", str(m), "--out", str(out), "--preset", "tiny"])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(app, ["train", "classify", "--manifest", str(tmp_path), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "manifest.parquet" in r.output
    r = runner.invoke(app, ["train", "pretrain", "--run", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "not a run directory" in r.output
    r = runner.invoke(app, ["train", "classify", "--manifest", str(m), "--out", str(out), "--lr", "-1"])
    assert r.exit_code == 2 and "lr must be > 0" in r.output


def test_small_preset_resolves_every_step():
    """``--preset small`` (the CPU recipe) is a complete preset: every step resolves, 32 px, short."""
    from pokegan.progan.config import ProGANConfig
    from pokegan.steps.gan_setup import GANConfig
    from pokegan.steps.gmm import GMMConfig

    for cls, section in (
        (ClassifyConfig, "classify"),
        (EmbedConfig, "embed"),
        (PretrainConfig, "pretrain"),
        (GMMConfig, "gmm"),
        (GANConfig, "gan"),
        (ProGANConfig, "progan"),
    ):
        cfg = load_step_config(cls, section, preset="small")
        if hasattr(cfg, "data"):
            assert cfg.data.image_size == 32, section
    gan = load_step_config(GANConfig, "gan", preset="small")
    assert gan.steps < 10_000 and gan.diffaugment and gan.loss.validate()
    assert load_step_config(ProGANConfig, "progan", preset="small").sizes[-1] == 32
