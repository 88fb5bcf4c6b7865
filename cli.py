"""``poke``: the command line. Thin by design: each command builds a config and calls one library function.

Command groups live beside the code they drive (``pokedata/commands/``, ``pokegan/commands/``); this file
only assembles them and turns :class:`pokedata.errors.UserError` into one red line and exit code 2.
Command modules import their heavy libraries inside the command functions, so ``poke --help`` is fast
and the training commands work where the data-side packages (ddgs, imagehash, requests) are missing.
"""

from __future__ import annotations

import logging
import traceback

import typer
from rich.markup import escape
from typer.core import TyperGroup

from pokedata.commands import classes, curate, demo, fetch, report, status
from pokedata.errors import UserError
from pokedata.log import console, setup_logging
from pokegan.commands import sample, train


class PokeGroup(TyperGroup):
    """Root group: a UserError anywhere below becomes a one-line message and exit code 2; Ctrl-C stops the
    command cleanly, says how to resume and exits 130 (a second Ctrl-C quits at once)."""

    def invoke(self, ctx: typer.Context):
        from pokedata.interrupt import Interrupted, graceful_interrupt

        protected = getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", None) or []
        resume = resume_command(self, [*protected, *ctx.args])
        try:
            with graceful_interrupt(resume, lambda text: console.print(f"[yellow]{escape(text)}[/]")):
                return super().invoke(ctx)
        except Interrupted as exc:
            console.print(
                f"[bold yellow]interrupted:[/] what was done is saved. Resume with: {escape(exc.resume)}",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
            raise typer.Exit(code=exc.exit_code) from None
        except UserError as exc:
            if (ctx.obj or {}).get("verbose"):
                console.print(traceback.format_exc(), markup=False, highlight=False)
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=UserError.exit_code) from None


def resume_command(group: TyperGroup, args: list[str]) -> str:
    """The command line that continues an interrupted command: the same one, plus ``--resume`` where the
    command has that flag (training) and it was not given."""
    import shlex

    cmd = group
    for tok in args:
        commands = getattr(cmd, "commands", None)
        if isinstance(commands, dict) and tok in commands:
            cmd = commands[tok]
    extra = []
    if any("--resume" in getattr(p, "opts", ()) for p in cmd.params) and "--resume" not in args:
        extra = ["--resume"]
    shown, secret_next = [], False
    for tok in args:  # never print a secret given on the command line: point at its variable instead
        if secret_next:
            shown.append("$DANBOORU_API_KEY")
        elif tok.startswith("--api-key="):
            shown.append("--api-key=$DANBOORU_API_KEY")
        else:
            shown.append(shlex.quote(tok))
        secret_next = tok == "--api-key"
    return " ".join(["poke", *shown, *extra])


app = typer.Typer(
    cls=PokeGroup,
    name="poke",
    help="Build a clean, labelled Pokemon image dataset from the web and train a generator on it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Debug logging and full tracebacks on errors."
    ),
) -> None:
    """Build a clean, labelled Pokemon image dataset from the web and train a generator on it."""
    ctx.obj = {"verbose": verbose}
    setup_logging(verbose)
    logging.getLogger(__name__).debug("verbose logging on")


app.add_typer(fetch.app, name="fetch")
app.add_typer(status.app)  # poke status
app.add_typer(curate.app)  # poke clean, poke build-manifest
app.add_typer(classes.app, name="classes")
app.add_typer(train.app, name="train")
app.add_typer(sample.app)  # poke sample, poke eval
app.add_typer(report.app)  # poke report
app.add_typer(demo.app)  # poke demo

if __name__ == "__main__":
    app()
