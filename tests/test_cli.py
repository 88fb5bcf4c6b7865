"""CLI contract: every command has help, UserError -> exit 2 without traceback, classes commands work."""

from __future__ import annotations

import typer
from typer.main import get_command

from cli import app
from pokedata.errors import UserError


def _walk(cmd, path: tuple[str, ...] = ()):
    yield path, cmd
    if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))


def test_every_command_has_help(runner):
    root = get_command(app)
    seen = 0
    for path, cmd in _walk(root):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert (cmd.help or "").strip(), f"command {' '.join(path) or 'poke'} has no help text"
        for param in cmd.params:
            if getattr(param, "param_type_name", "") == "option" and param.name != "help":
                assert (param.help or "").strip(), f"option {param.opts} of {' '.join(path)} has no help"
        seen += 1
    assert seen >= 3


def test_top_level_help_lists_groups(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "classes" in result.output


def test_user_error_is_one_line_exit_2(runner, tmp_path):
    result = runner.invoke(app, ["classes", "list", "--catalog", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "error:" in result.output and "nope.csv" in result.output
    assert "Traceback" not in result.output


def test_verbose_shows_traceback(runner, tmp_path):
    result = runner.invoke(app, ["--verbose", "classes", "list", "--catalog", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "Traceback" in result.output


def test_user_error_from_any_command(runner, monkeypatch):
    extra = typer.Typer()

    @extra.command()
    def boom() -> None:
        """Raise a user error."""
        raise UserError("input X is bad", hint="pass --x Y")

    monkeypatch.setattr(app, "registered_groups", list(app.registered_groups))  # restored after the test
    app.add_typer(extra, name="zz-test-only")
    result = runner.invoke(app, ["zz-test-only", "boom"])
    assert result.exit_code == 2
    assert "input X is bad (pass --x Y)" in result.output


def test_classes_list_prints_all_rows(runner):
    result = runner.invoke(app, ["classes", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "799 of 799 classes" in result.output
    assert "Mega Charizard X" in result.output


def test_classes_list_filters_and_show(runner):
    result = runner.invoke(
        app, ["classes", "list", "--generation", "1", "--form", "mega"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0
    assert "Mega Charizard Y" in result.output and "Mega Venusaur" in result.output
    assert "Pikachu" not in result.output
    shown = runner.invoke(app, ["classes", "show", "pikachu"])
    assert shown.exit_code == 0 and "25" in shown.output
