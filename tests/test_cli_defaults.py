"""Every data-side option that sets a config field has that field's default: the CLI and the library agree.

Every command reads its defaults from the dataclasses (``default_of``; the fetch commands from the fields
of ``pokedata/fetch/config.py``, which their configs extend); this test checks the mapping of option to
field, and the options still written by hand (``--data``, the repeatable lists, flags a command owns).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.main import get_command

from cli import app
from pokedata.clean.config import CleanConfig
from pokedata.dedup.config import DedupConfig
from pokedata.fetch.danbooru import DanbooruConfig
from pokedata.fetch.ddg import DdgConfig
from pokedata.fetch.dump import DumpConfig
from pokedata.fetch.folder import FolderImportConfig
from pokedata.manifest import ManifestConfig

NEGATED = {"no_progress": "progress", "ignore_colour": "colour"}  # flag -> the field it turns off
KEEPS_CONFIG_DEFAULT = {"user_agent"}  # None: the command leaves the field at the config's own default

# (command path, config, {option parameter: field} where the names differ)
COMMANDS = [
    (("clean",), CleanConfig, {}),
    (("clean",), DedupConfig, {"method": "method"}),
    (("build-manifest",), ManifestConfig, {}),
    (("fetch", "danbooru"), DanbooruConfig, {"catalog_file": "catalog_path"}),
    (("fetch", "danbooru"), DumpConfig, {"catalog_file": "catalog_path", "any_tag": "any_tags"}),
    (("fetch", "ddg"), DdgConfig, {"catalog_file": "catalog_path", "class_name": "class_names", "rate": "host_rate"}),
    (("fetch", "folder"), FolderImportConfig, {}),
]  # fmt: skip


def _defaults(config: type) -> dict:
    out = {}
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _norm(value):
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, Path):
        return str(value)
    return value


@pytest.mark.parametrize(("path", "config", "renamed"), COMMANDS, ids=lambda v: getattr(v, "__name__", v))
def test_option_defaults_are_the_config_defaults(path, config, renamed):
    cmd = get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    defaults = _defaults(config)
    checked = 0
    for param in cmd.params:
        if getattr(param, "param_type_name", "") != "option" or param.name == "data":
            continue
        field = renamed.get(param.name, NEGATED.get(param.name, param.name))
        if field not in defaults or (param.name in KEEPS_CONFIG_DEFAULT and param.default is None):
            continue
        expected = (not defaults[field]) if param.name in NEGATED else defaults[field]
        assert _norm(param.default) == _norm(expected), f"{' '.join(path)} {param.opts[0]}: {param.default!r}"
        checked += 1
    assert checked >= 3  # the mapping found the options
