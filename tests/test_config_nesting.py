"""Nested configs written flat (``pokegan.config.inline``): ``[gan]`` holds a LossConfig and ``[gmm]`` a
GMMFitConfig, each field declared once, and what older versions wrote (a run's ``config.toml``, a
checkpoint's ``config`` dict) still loads to the same values."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from pokegan.config import (
    config_from_dict,
    config_to_dict,
    config_to_toml,
    field_of,
    inline,
    load_step_config,
    section_keys,
)
from pokegan.loss_config import LossConfig
from pokegan.steps.gan_config import GANConfig
from pokegan.steps.gmm_config import GMMConfig
from tests.helpers.config_snapshot import NEW_KEYS, SNAPSHOT

# `[gan]` and `[gmm]` of a run's config.toml as the code before the nesting wrote them (preset small)
OLD_GAN_TOML = """[gan]
loss = "dcgan"
n_critic = 1
gp_weight = 10.0
clip = 0.01
drift = 0.001
r1_gamma = 0.05
recon_weight = 1.0
lr_g = 0.0002
lr_d = 0.0002
betas = [0.5, 0.99]
steps = 1000
d_channels = 16
d_max_channels = 128
ema_decay = 0.99
n_fixed = 64
sample_every = 100
checkpoint_every = 100
metrics_every = 200
metrics_samples = 500
diffaugment = "color,translation,cutout"
judge_width = 16
judge_epochs = 6
judge_max_images = 4000
log_every = 25
max_nan_retries = 3
nan_lr_factor = 0.5
from_scratch = false
seed = 0
device = "auto"
amp = true
"""
OLD_GMM_TOML = """[gmm]
components = 10
bic = [4, 8, 16]
covariance = "full"
max_iter = 100
tol = 0.001
reg_covar = 1e-06
seed = 0
backend = "torch"
device = "auto"
dtype = "float32"
max_rows = 0
plot_points = 3000
"""


# what --preset small has changed since these files were written (issue 12: the un-augmented dcgan GAN of
# 400 steps with a coarse anchor, the diagonal 64-256 mixture); the files hold the values of their time
SMALL_THEN = {
    "gan": {"steps": 1000, "augment": True, "recon_weight": 1.0},
    "gmm": {"bic": [4, 8, 16], "covariance": "full"},
}


def test_an_older_run_config_toml_loads_to_the_same_config(tmp_path):
    for cls, section, text in ((GANConfig, "gan", OLD_GAN_TOML), (GMMConfig, "gmm", OLD_GMM_TOML)):
        f = tmp_path / f"{section}.toml"
        f.write_text(text)
        old = config_to_dict(load_step_config(cls, section, config_file=f))
        now = config_to_dict(load_step_config(cls, section, preset="small"))
        old.pop("data", None), now.pop("data", None)  # the files hold no [data]
        assert old == {**now, **NEW_KEYS.get(section, {}), **SMALL_THEN[section]}, section
    gan = load_step_config(GANConfig, "gan", config_file=tmp_path / "gan.toml")
    assert gan.loss == LossConfig("dcgan", 1, 10.0, 0.01, 2e-4, 2e-4, (0.5, 0.99), 0.001, 0.05)
    gmm = load_step_config(GMMConfig, "gmm", config_file=tmp_path / "gmm.toml")
    assert (
        gmm.fit.n_components == 10 and gmm.candidates() == [4, 8, 16] and gmm.fit_config(8).n_components == 8
    )


def test_an_older_checkpoint_config_dict_loads():
    """A GAN checkpoint's ``config`` was ``asdict`` of the flat GANConfig: the snapshot holds exactly that."""
    old = SNAPSHOT["gan/small"]
    cfg = config_from_dict(GANConfig, old, "gan").validate()
    assert cfg == load_step_config(GANConfig, "gan", preset="small")
    # and the checkpoint keeps that form (plus keys added since, at their defaults)
    assert json.loads(json.dumps(config_to_dict(cfg))) == {**NEW_KEYS["gan"], **old}


@pytest.mark.parametrize("cls", [GANConfig, GMMConfig])
def test_written_flat_and_read_back(tmp_path, cls):
    section = "gan" if cls is GANConfig else "gmm"
    cfg = load_step_config(
        cls,
        section,
        preset="tiny",
        overrides={"loss": "wgan", "n_critic": 3}
        if cls is GANConfig
        else {"components": 3, "covariance": "full"},
    )
    text = config_to_toml(cfg)
    assert "[gan.loss]" not in text and "[fit]" not in text and "name =" not in text  # flat, keys as before
    (tmp_path / "c.toml").write_text(text)
    assert load_step_config(cls, section, config_file=tmp_path / "c.toml") == cfg


def test_flat_keys_reach_the_nested_fields():
    gan = load_step_config(
        GANConfig, "gan", overrides={"loss": "wgan-gp", "lr_d": 3e-4, "data.batch_size": 8}
    )
    assert gan.loss.name == "wgan-gp" and gan.loss.lr_d == 3e-4 and gan.data.batch_size == 8
    assert gan.loss.effective_n_critic == 5
    assert (
        field_of(GANConfig, "loss").field.name == "name"
        and field_of(GANConfig, "data.image_size").type is int
    )
    assert "name" not in section_keys(GANConfig) and "fit" not in section_keys(GMMConfig)


def test_a_key_declared_twice_is_refused():
    @dataclass
    class Twice:
        loss: LossConfig = inline(LossConfig)
        lr_g: float = field(default=1.0)

    with pytest.raises(TypeError, match="'lr_g' is declared twice"):
        section_keys(Twice)


def test_cli_options_come_from_the_nested_fields(tmp_path, runner):
    from cli import app

    r = runner.invoke(
        app,
        [
            "train",
            "gmm",
            "--run",
            str(tmp_path),
            "--components",
            "3",
            "--covariance",
            "diag",
            "--bic",
            "2,4",
            "--seed",
            "5",
            "--dry-run",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "components = 3" in r.stdout and "bic = [2, 4]" in r.stdout and 'covariance = "diag"' in r.stdout
    assert "seed = 5" in r.stdout
    r = runner.invoke(app, ["train", "gmm", "--run", str(tmp_path), "--bic", "2,x", "--dry-run"])
    assert r.exit_code == 2 and "--bic '2,x' is not a comma-separated list of integers" in r.output
