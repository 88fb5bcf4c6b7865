"""Typer options shared by several data-side commands (one definition, one help text)."""

from __future__ import annotations

import typer


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
