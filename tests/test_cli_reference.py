"""docs/cli.md is generated from the typer app; it must list every command and match the code."""

from __future__ import annotations

import re

from typer.main import get_command

from cli import app
from pokedata.clidoc import DEFAULT_OUT, REGENERATE, main, render_cli_reference


def _leaf_paths(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            if not getattr(sub, "hidden", False):
                yield from _leaf_paths(sub, (*path, name))
    else:
        yield path


def test_cli_reference_is_up_to_date():
    current = DEFAULT_OUT.read_text(encoding="utf-8") if DEFAULT_OUT.is_file() else ""
    assert current == render_cli_reference(), (
        f"docs/cli.md is stale (a command or option changed): run `{REGENERATE}` and commit docs/cli.md"
    )


def test_reference_covers_every_command_and_option():
    text = render_cli_reference()
    root = get_command(app)
    for path in _leaf_paths(root):
        title = " ".join(("poke", *path))
        assert f"`{title}`" in text, f"{title} missing from the reference"
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        for param in cmd.params:
            if getattr(param, "param_type_name", "") == "option" and not param.hidden:
                assert f"`{param.opts[0]}`" in text


def test_reference_links_resolve():
    text = render_cli_reference()
    headings = set()
    for line in text.splitlines():
        m = re.match(r"^#+ `(.+)`$", line)
        if m:
            headings.add(re.sub(r"[^a-z0-9 _-]", "", m.group(1).lower()).replace(" ", "-"))
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links
    assert set(links) <= headings


def test_check_mode_reports_stale_file(tmp_path, capsys):
    out = tmp_path / "cli.md"
    out.write_text("old\n", encoding="utf-8")
    assert main(["--out", str(out), "--check"]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main(["--out", str(out)]) == 0
    assert main(["--out", str(out), "--check"]) == 0
