"""``poke classes``: browse the class catalog."""

from __future__ import annotations

from pathlib import Path

import typer

from pokedata.commands import options as opts

app = typer.Typer(help="Browse the class catalog (799 Pokemon classes by default).", no_args_is_help=True)

CATALOG_OPTION = typer.Option(
    None, "--catalog", help="Catalog CSV to use instead of the shipped 799-class one.", dir_okay=False
)


@app.command("list")
def list_classes(
    catalog: Path | None = CATALOG_OPTION,
    generation: int | None = typer.Option(None, "--generation", "-g", help="Only this generation (1-6)."),
    form: str | None = typer.Option(
        None,
        "--form",
        help="Only this form kind: base, mega, primal, forme, cloak, mode, size, gender, form.",
    ),
) -> None:
    """List classes as a table: index, name, dex, generation, form, Danbooru tag, search query."""
    from rich.table import Table

    from pokedata.catalog import load_catalog
    from pokedata.log import out

    cat = load_catalog(catalog)
    rows = cat.filter(generation=generation, form=form)
    table = Table(title=f"{len(rows)} of {len(cat)} classes ({cat.source})")
    for col in ("index", "name", "dex", "gen", "form", "danbooru_tag", "search_query"):
        table.add_column(col, justify="right" if col in ("index", "dex", "gen") else "left")
    for c in rows:
        table.add_row(
            str(c.class_index), c.name, str(c.dex), str(c.generation), c.form, c.danbooru_tag, c.search_query
        )
    out.print(table)


@app.command("show")
def show_class(
    name: str = typer.Argument(..., help="Class name or Danbooru tag, e.g. 'Mega Charizard X' or pikachu."),
    catalog: Path | None = CATALOG_OPTION,
) -> None:
    """Show every field of one class."""
    from dataclasses import asdict

    from rich.table import Table

    from pokedata.catalog import load_catalog
    from pokedata.log import out

    c = load_catalog(catalog).by_name(name)
    table = Table(show_header=False, title=c.name)
    for key, value in asdict(c).items():
        table.add_row(key, str(value))
    out.print(table)


@app.command("resolve")
def resolve_classes(
    catalog: Path | None = CATALOG_OPTION,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Catalog CSV to write (default: rewrite --catalog in place; required with the shipped catalog).",
        dir_okay=False,
    ),
    base_url: str = typer.Option("https://danbooru.donmai.us", "--base-url", help="Danbooru API root URL."),
    limit: int | None = typer.Option(
        None, "--limit", help="Resolve only the first N classes (a quick trial)."
    ),
    api_rate: float = typer.Option(2.0, "--api-rate", help="Requests per second to Danbooru (polite: <= 2)."),
    login: str | None = opts.danbooru_login_option(),
    api_key: str | None = opts.danbooru_api_key_option(),
) -> None:
    """Map each class to its canonical Danbooru character tag (tags.json, tag aliases) with post counts."""
    from pokedata.fetch.resolve import ResolveConfig, resolution_table, resolve_catalog
    from pokedata.log import console
    from pokedata.log import out as stdout

    cfg = ResolveConfig(
        catalog=catalog,
        out=out,
        base_url=base_url,
        limit=limit,
        api_rate=api_rate,
        login=login,
        api_key=api_key,
    )
    path, results = resolve_catalog(cfg)
    summary, unresolved = resolution_table(results)
    stdout.print(summary)
    if unresolved is not None:
        stdout.print(unresolved)
    console.print(f"wrote {path}")
