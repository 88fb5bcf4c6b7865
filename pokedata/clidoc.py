"""The CLI reference, ``docs/cli.md``, generated from the typer app so it can never drift from the code.

    python -m pokedata.clidoc            # rewrite docs/cli.md
    python -m pokedata.clidoc --check    # exit 1 when docs/cli.md is stale (the test suite does this)

Every command and group, in the order ``poke --help`` lists them, with its help text, a usage line, its
arguments and a table of its options (flags, type, default, help). The output depends only on the
code: no terminal width, no environment values, no machine-specific defaults.
"""

from __future__ import annotations

import argparse
import enum
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typer.main import get_command

from pokedata.store import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "cli.md"
REGENERATE = "python -m pokedata.clidoc"

_HEADER = """\
# `poke` command reference

Generated from the typer app by `{regen}`; do not edit by hand (a test fails when this file is stale).
Run any command with `--help` for the same text in the terminal. Errors are one red line naming the
input and the fix, with exit code 2; `poke --verbose ...` adds the traceback.

"""


def _walk(cmd: Any, ctx: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    yield path, cmd, ctx
    if hasattr(cmd, "commands"):  # a group (typer vendors its own click: duck-type, never import click)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            sub_ctx = type(ctx)(sub, info_name=name, parent=ctx)
            yield from _walk(sub, sub_ctx, (*path, name))


def _clean_help(text: str | None) -> str:
    """Docstring text as markdown paragraphs: click's ``\\b`` markers and the ``\\f`` tail dropped."""
    if not text:
        return ""
    text = text.split("\f", 1)[0]
    lines = [ln for ln in text.strip().splitlines() if ln.strip() != "\b"]
    return "\n".join(ln.rstrip() for ln in lines).strip()


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


_TYPE_NAMES = {str: "text", int: "integer", float: "number", bool: "flag", Path: "path"}


def _type_name(param: Any) -> str:
    """A short type from the annotation typer recorded (``int | None`` -> integer, ``list[str]`` -> text ...)."""
    if getattr(param, "is_flag", False) and not getattr(param, "count", False):
        return "flag"
    desc = getattr(param, "type_descriptor", None)
    ann = getattr(desc, "annotation", None)
    repeat = ""
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (list, tuple) and args:
        ann, repeat = args[0], " (repeatable)"
    elif args and typing.get_origin(ann) in (typing.Union, types.UnionType):
        ann = args[0]
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return " \\| ".join(str(m.value) for m in ann) + repeat
    if typing.get_origin(ann) is typing.Literal:
        return " \\| ".join(str(v) for v in typing.get_args(ann)) + repeat
    name = _TYPE_NAMES.get(ann) or getattr(ann, "__name__", None) or str(ann or "text")
    return name.lower() + repeat


def _default(param: Any) -> str:
    if getattr(param, "show_default", True) is False:
        return ""
    value = param.default
    if callable(value) or value is None:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if getattr(param, "is_flag", False) and not getattr(param, "secondary_opts", None):
        return "" if value is False else "on"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else ""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"`{value}`"


def _option_names(param: Any) -> str:
    names = [*param.opts, *getattr(param, "secondary_opts", [])]
    return ", ".join(f"`{n}`" for n in names)


_SKIP_OPTIONS = {"install_completion", "show_completion"}  # typer's shell-completion helpers


def _section(path: tuple[str, ...], cmd: Any, ctx: Any) -> str:
    title = " ".join(("poke", *path))
    depth = min(len(path) + 2, 4)
    parts = [f"{'#' * depth} `{title}`", ""]
    helptext = _clean_help(cmd.help)
    if helptext:
        parts += [helptext, ""]
    args = [p for p in cmd.params if getattr(p, "param_type_name", "") == "argument"]
    opts = [
        p
        for p in cmd.params
        if getattr(p, "param_type_name", "") == "option"
        and not getattr(p, "hidden", False)
        and p.name not in _SKIP_OPTIONS
    ]
    usage = [title, "[OPTIONS]"] + [p.name.upper() if p.required else f"[{p.name.upper()}]" for p in args]
    if hasattr(cmd, "commands"):
        usage.append("COMMAND [ARGS]...")
    parts += ["```", " ".join(usage), "```", ""]
    if args:
        parts += ["| argument | type | help |", "|---|---|---|"]
        for p in args:
            need = "" if p.required else " (optional)"
            parts.append(
                f"| `{p.name.upper()}`{need} | {_type_name(p)} | {_cell(getattr(p, 'help', '') or '')} |"
            )
        parts.append("")
    if opts:
        parts += ["| option | type | default | help |", "|---|---|---|---|"]
        for p in opts:
            env = f" (env `{p.envvar}`)" if isinstance(getattr(p, "envvar", None), str) else ""
            req = " **required**" if p.required else ""
            parts.append(
                f"| {_option_names(p)} | {_type_name(p)} | {_default(p)} | {_cell(p.help or '')}{env}{req} |"
            )
        parts.append("")
    if hasattr(cmd, "commands"):
        subs = [
            (name, cmd.get_command(ctx, name))
            for name in cmd.list_commands(ctx)
            if not getattr(cmd.get_command(ctx, name), "hidden", False)
        ]
        if subs:
            parts += ["| command | what it does |", "|---|---|"]
            for name, sub in subs:
                anchor = _anchor(" ".join(("poke", *path, name)))
                short = sub.get_short_help_str(limit=200)
                parts.append(f"| [`{name}`](#{anchor}) | {_cell(short)} |")
            parts.append("")
    return "\n".join(parts)


def _anchor(title: str) -> str:
    """GitHub's heading anchor for a heading ``` `title` ```."""
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return keep.replace(" ", "-")


def render_cli_reference(app: Any = None) -> str:
    """The whole reference as markdown (``app`` defaults to the ``poke`` app in cli.py)."""
    if app is None:
        from cli import app  # the poke app: cli.py imports every command module, needed only here
    root = get_command(app)
    ctx = root.context_class(root, info_name="poke")
    sections = list(_walk(root, ctx, ()))
    toc = ["## Commands", ""]
    for path, cmd, _ctx in sections[1:]:
        if hasattr(cmd, "commands"):
            continue
        title = " ".join(("poke", *path))
        toc.append(f"- [`{title}`](#{_anchor(title)}): {_cell(cmd.get_short_help_str(limit=90))}")
    body = [_section(path, cmd, c) for path, cmd, c in sections]
    return _HEADER.format(regen=REGENERATE) + "\n".join(toc) + "\n\n" + "\n".join(body).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description="Write the CLI reference (docs/cli.md).")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where to write it (default docs/cli.md)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale; write nothing")
    args = parser.parse_args(argv)
    text = render_cli_reference()
    current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
    if args.check:
        if current != text:
            print(f"{args.out} is stale: run `{REGENERATE}` to regenerate it", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    if current == text:
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
