"""The preset table (pokegan/presets.py) resolves every step's config exactly as before it became one table.

``tests/snapshots/resolved_configs.json`` was written by the code that still spread the presets over four
modules (``register_presets`` at import time), with ``config_to_dict(load_step_config(cls, section,
preset=p))`` for each section and preset (``none`` = no preset). A change of a preset value is a change of
this snapshot, made on purpose (edit the JSON with it).
"""

from __future__ import annotations

import json

import pytest

from pokegan.config import (
    PRESETS,
    ClassifyConfig,
    EmbedConfig,
    PretrainConfig,
    config_to_dict,
    load_step_config,
)
from pokegan.progan.config import ProGANConfig
from pokegan.steps.gan_config import GANConfig
from pokegan.steps.gmm_config import GMMConfig
from tests.helpers.config_snapshot import NEW_KEYS, SNAPSHOT

STEPS = {
    "classify": ClassifyConfig,
    "embed": EmbedConfig,
    "pretrain": PretrainConfig,
    "gmm": GMMConfig,
    "gan": GANConfig,
    "progan": ProGANConfig,
}


def _plain(value):
    """JSON's view of a value (tuples are lists, dict keys strings), as the snapshot holds it."""
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("preset", [None, "tiny", "small", "default"])
@pytest.mark.parametrize("section", sorted(STEPS))
def test_every_section_resolves_as_before(section, preset):
    cfg = load_step_config(STEPS[section], section, preset=preset)
    expected = {**NEW_KEYS.get(section, {}), **SNAPSHOT[f"{section}/{preset or 'none'}"]}
    assert _plain(config_to_dict(cfg)) == expected


def test_the_table_covers_every_step_and_loading_leaves_it_unchanged():
    before = json.dumps(PRESETS, sort_keys=True)
    assert sorted(PRESETS) == ["default", "small", "tiny"]
    for name, sections in PRESETS.items():
        assert sorted(sections) == sorted([*STEPS, "data"]), name
        for section, cls in STEPS.items():
            cfg = load_step_config(cls, section, preset=name)
            if section == "progan":  # validate() normalises in place: that must not reach the table
                cfg.cycle[0]["lr"] = -1.0
    assert json.dumps(PRESETS, sort_keys=True) == before


def test_a_test_edits_the_table_through_monkeypatch(monkeypatch):
    monkeypatch.setitem(PRESETS["tiny"], "embed", {"batch_size": 7})  # restored after the test
    assert load_step_config(EmbedConfig, "embed", preset="tiny").batch_size == 7


def test_an_unknown_preset_key_is_refused(monkeypatch):
    from pokedata.errors import UserError

    monkeypatch.setitem(PRESETS["tiny"], "gmm", {"componets": 3})
    with pytest.raises(UserError, match="unknown key 'componets' in section \\[gmm\\]"):
        load_step_config(GMMConfig, "gmm", preset="tiny")
