"""Options of the ``poke train`` commands: the ones a config dataclass declares, and the few that are not
config fields (``--config``, ``--preset``, ``--run``, ``--resume``, ``--dry-run``).

:func:`config_options` turns the fields of a step config that carry ``cli`` metadata
(:func:`pokegan.config.cli`: help, flag, parser) into typer options: the field's type, its help and its
flag are written once, on the field, and the command receives the given values as config overrides.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from pokegan import config as C

TAIL = ("resume", "dry_run")  # the command's own options listed after the generated ones


def _field(cls: type, key: str) -> tuple[dataclasses.Field, Any]:
    """The dataclass field behind ``key`` (``"lr"``, ``"loss"``, ``"data.batch_size"``) and its type."""
    where = C.field_of(cls, key)
    if "cli" not in where.field.metadata:
        raise TypeError(f"{cls.__name__} key {key!r} is not a command-line option (no cli metadata)")
    return where.field, where.type


def _flag(key: str, meta: C.CliOption, typ: Any) -> str:
    flag = meta.flag or "--" + key.rpartition(".")[2].replace("_", "-")
    return f"{flag}/--no-{flag[2:]}" if typ is bool and "/" not in flag else flag


def _path_text(value: Path, flag: str) -> str:
    return str(value)


def config_options(cls: type, *keys: str) -> Callable[[Callable], Callable]:
    """Give a command one option per config key, from the field's ``cli`` metadata.

    The decorated function takes ``overrides: dict`` (key -> value, ``None`` where the option was not
    given) in place of the options; they go before its ``--resume`` / ``--dry-run``.
    """

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "overrides"]
        made, parsers = [], {}
        for key in keys:
            f, typ = _field(cls, key)
            meta: C.CliOption = f.metadata["cli"]
            name = "opt_" + key.replace(".", "_")
            flag = _flag(key, meta, typ)
            option = typer.Option(None, flag, help=meta.help)
            ann = (Path if meta.path else str if meta.parse else typ) | None
            made.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=ann)
            )
            parsers[name] = (key, _path_text if meta.path else meta.parse, flag)

        def command(**kwargs):
            overrides = {}
            for name, (key, parse, flag) in parsers.items():
                value = kwargs.pop(name)
                overrides[key] = parse(value, flag) if parse and value is not None else value
            return fn(**kwargs, overrides=overrides)

        params = [p for p in own if p.name not in TAIL] + made + [p for p in own if p.name in TAIL]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__name__, command.__doc__, command.__module__ = fn.__name__, fn.__doc__, fn.__module__
        return command

    return decorate


def config_opt():
    return typer.Option(
        None,
        "--config",
        help=r"TOML file; one file can hold the sections \[data], \[classify], \[embed], \[pretrain], \[gmm], \[gan], \[progan].",
    )


def preset_opt():
    return typer.Option(
        None,
        "--preset",
        help="tiny (CPU smoke run, 32 px), small (CPU recipe: 32 px, a few thousand images, ~30 min on 2 cores) or default (one GPU, 128 px, ~80k images).",
    )


def run_opt():
    return typer.Option(
        ..., "--run", help="The run directory made by `poke train classify --out` (runs/NAME)."
    )


def resume_opt():
    return typer.Option(False, "--resume", help="Continue a started run/step from its last checkpoint.")


def dry_run_opt():
    return typer.Option(
        False, "--dry-run", help="Print the resolved config and the model sizes, train nothing."
    )


def device_opt():
    """``--device`` of a command that is not one step (``train all``): the steps' declaration."""
    f, typ = _field(C.ClassifyConfig, "device")
    return typer.Option(None, _flag("device", f.metadata["cli"], typ), help=f.metadata["cli"].help)


def data_root_opt():
    return typer.Option(
        None,
        "--data-root",
        help="Dataset directory the manifest paths are relative to (default: stats.json).",
    )


def print_dry_run(info: dict) -> None:
    """The resolved config on stdout, then the model sizes."""
    from pokedata.log import out

    out.print(info["config"], markup=False, highlight=False)
    for key in ("task", "outputs", "train_images", "val_images"):
        if key in info:
            out.print(f"# {key}: {info[key]}", markup=False)
    for name, n in info.get("model", {}).items():
        out.print(f"# {name}: {n:,} parameters ({n * 4 / 2**20:.1f} MiB float32)", markup=False)
