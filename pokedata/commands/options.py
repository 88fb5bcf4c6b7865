"""Typer options shared by several data-side commands (one definition, one help text), and
:func:`default_of`: every option that sets a config field takes its default from the config dataclass, so
the CLI and the library cannot drift apart."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer


def default_of(config: type, name: str) -> Any:
    """The default of field ``name`` of the config dataclass ``config`` (where it is written, once)."""
    for f in dataclasses.fields(config):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{config.__name__}.{name} has no default")
    raise ValueError(f"{config.__name__} has no field {name!r}")


def danbooru_login_option():
    return typer.Option(
        None,
        "--login",
        envvar="DANBOORU_LOGIN",
        show_default=False,
        help="Danbooru login (or DANBOORU_LOGIN).",
    )


def danbooru_api_key_option():
    return typer.Option(
        None,
        "--api-key",
        envvar="DANBOORU_API_KEY",
        show_default=False,
        help="Danbooru API key (or DANBOORU_API_KEY); sent only to the API host, never printed or stored.",
    )


def file_timeout_option():
    return typer.Option(
        None,
        "--file-timeout",
        show_default=False,
        help="Longest time one file may take to download, all tries (seconds; default 600); slower "
        "files are recorded as failed with reason timeout (--retry-failed tries them again).",
    )


def max_retry_after_option():
    return typer.Option(
        None,
        "--max-retry-after",
        show_default=False,
        help="Longest wait a server's Retry-After can impose (seconds; default 600); longer asks are cut "
        "to this, and every long wait is announced.",
    )


def max_pixels_option():
    return typer.Option(
        None,
        "--max-pixels",
        show_default=False,
        help="Decompression-bomb limit while verifying (pixels; default Pillow's ~89 MP); raise it for "
        "legit huge images, e.g. 400000000 for 20000x20000.",
    )


def retry_quarantined_option():
    return typer.Option(
        False,
        "--retry-quarantined",
        help="Also retry rows quarantined before (e.g. refused as too big before --max-pixels was raised).",
    )
