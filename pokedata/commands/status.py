"""``poke status``: what the ledger of a dataset directory holds."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer()


@app.command("status")
def status(
    data: Path = typer.Option(Path("data"), "--data", help="Dataset directory to report on."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON on stdout."),
    classes: int = typer.Option(20, "--classes", help="Show the N largest classes (0: all of them)."),
    errors: int = typer.Option(10, "--errors", help="Show the N commonest error reasons."),
) -> None:
    """Counts by source, class and status, and the commonest errors (safe while a fetch runs)."""
    import json

    from pokedata.errors import UserError
    from pokedata.log import out
    from pokedata.status import dataset_status, status_tables

    if classes < 0 or errors < 0:
        raise UserError("--classes and --errors must be >= 0", hint="0 shows every class")
    report = dataset_status(data, top_errors=errors)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))  # plain: no wrapping, no colour
        return
    for table in status_tables(report, classes=classes):
        out.print(table)
