"""``poke fetch``: get images from Danbooru (live API or Danbooru20xx dumps), DuckDuckGo, or a local folder.

Every source plans rows into the dataset's ledger and stores files under ``DIR/raw/<class>/``; rerunning
the same command resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pokedata.commands import options as opts
from pokedata.commands.options import default_of
from pokedata.fetch.config import DanbooruOptions, DdgOptions, DumpOptions, FolderOptions  # light: --help

app = typer.Typer(
    help="Get images from Danbooru (API or dumps), DuckDuckGo image search, or a local folder.",
    no_args_is_help=True,
)


@app.command("danbooru")
def fetch_danbooru(
    tags: list[str] = typer.Option(
        [],
        "--tags",
        "-t",
        help="Tag every post must have (repeatable; at most --tag-limit go to the server).",
    ),
    exclude: list[str] = typer.Option([], "--exclude", "-x", help="Tag no post may have (repeatable)."),
    rating: list[str] = typer.Option(
        [], "--rating", help="Allowed ratings, e.g. g,s (API: g/s/q/e; dumps use their own letters, s/q/e)."
    ),
    variant: str = typer.Option(
        default_of(DanbooruOptions, "variant"),
        "--variant",
        help="original (file_url) or sample (large_file_url; the 512px files of a dump).",
    ),
    catalog: bool = typer.Option(
        default_of(DanbooruOptions, "catalog"),
        "--catalog",
        help="Label posts by the catalog's character tags; without --tags fetch every class.",
    ),
    catalog_file: Path | None = typer.Option(
        None,
        "--catalog-file",
        help="Catalog CSV for --catalog / --class (default: the shipped one).",
        dir_okay=False,
    ),
    class_name: str | None = typer.Option(None, "--class", help="Give every post this class instead."),
    base_url: str = typer.Option(
        default_of(DanbooruOptions, "base_url"), "--base-url", help="Danbooru API root URL."
    ),
    limit: int | None = typer.Option(
        None, "--limit", help="At most N matching posts per query this run (dump mode: N new posts in all)."
    ),
    tag_limit: int = typer.Option(
        default_of(DanbooruOptions, "tag_limit"),
        "--tag-limit",
        help="Tags the account may search at once: 2 (anonymous, Member), 6 Gold, 12 Platinum.",
    ),
    login: str | None = opts.danbooru_login_option(),
    api_key: str | None = opts.danbooru_api_key_option(),
    api_rate: float = typer.Option(
        default_of(DanbooruOptions, "api_rate"),
        "--api-rate",
        help="Requests per second to the API host (polite: <= 2).",
    ),
    file_rate: float = typer.Option(
        default_of(DanbooruOptions, "file_rate"),
        "--file-rate",
        help="Requests per second to each file host (<= 5).",
    ),
    retry_failed: bool = typer.Option(
        default_of(DanbooruOptions, "retry_failed"),
        "--retry-failed",
        help="Also retry posts that failed before.",
    ),
    retry_quarantined: bool = opts.retry_quarantined_option(),
    max_pixels: int | None = opts.max_pixels_option(),
    file_timeout: float | None = opts.file_timeout_option(),
    max_retry_after: float | None = opts.max_retry_after_option(),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the queries, estimated posts and pages (dump: scan and count); download nothing.",
    ),
    dump: Path | None = typer.Option(
        None,
        "--dump",
        help="Dump mode: a Danbooru20xx metadata folder (JSON lines, .gz/.xz/.zst) instead of the API.",
    ),
    images: Path | None = typer.Option(
        None,
        "--images",
        help="Dump mode: local mirror root (original/ and 512px/) to copy matches from.",
        file_okay=False,
    ),
    rsync_list: Path | None = typer.Option(
        None,
        "--rsync-list",
        help="Dump mode: write matching mirror paths as an rsync --files-from list.",
        dir_okay=False,
    ),
    any_tag: list[str] = typer.Option(
        [], "--any-tag", help="Dump mode: at least one of these tags (repeatable)."
    ),
    exclude_all: list[str] = typer.Option(
        [], "--exclude-all", help="Dump mode: drop posts having all of these tags together (repeatable)."
    ),
    link: bool = typer.Option(
        default_of(DumpOptions, "link"),
        "--link",
        help="Dump mode: hard-link files from the mirror instead of copying.",
    ),
    data: Path = typer.Option(Path("data"), "--data", help="Dataset directory (created if missing)."),
) -> None:
    """Fetch Danbooru posts by tags: from the live API (polite, resumable) or a Danbooru20xx dump."""
    from pokedata.errors import UserError
    from pokedata.log import console, out

    if dump is None:
        if images or rsync_list or any_tag or exclude_all or link:
            raise UserError(
                "--images, --rsync-list, --any-tag, --exclude-all and --link only work with --dump",
                hint="pass --dump METADATA_DIR, or drop those options",
            )
        from pokedata.fetch.danbooru import DanbooruConfig
        from pokedata.fetch.danbooru_run import estimate_danbooru, estimate_table
        from pokedata.fetch.danbooru_run import fetch_danbooru as run

        cfg = DanbooruConfig(
            data=data, tags=tuple(tags), exclude=tuple(exclude), rating=tuple(rating), variant=variant,
            catalog=catalog or catalog_file is not None and class_name is None, catalog_path=catalog_file,
            class_name=class_name, base_url=base_url, limit=limit, tag_limit=tag_limit, login=login,
            api_key=api_key, api_rate=api_rate, file_rate=file_rate, retry_failed=retry_failed,
            retry_quarantined=retry_quarantined, max_pixels=max_pixels, file_timeout=file_timeout,
            max_retry_after=max_retry_after,
        )  # fmt: skip
        if dry_run:
            out.print(estimate_table(estimate_danbooru(cfg)))
            return
        console.print(run(cfg).table())
        return
    from pokedata.fetch.dump import DumpConfig, fetch_dump

    dcfg = DumpConfig(
        metadata=dump, data=data, images=images, rsync_list=rsync_list, tags=tuple(tags), any_tags=tuple(any_tag),
        exclude=tuple(exclude), exclude_all=tuple(exclude_all), rating=tuple(rating), variant=variant,
        catalog=catalog or catalog_file is not None and class_name is None, catalog_path=catalog_file,
        class_name=class_name, link=link, limit=limit, retry_failed=retry_failed, base_url=base_url,
        dry_run=dry_run, retry_quarantined=retry_quarantined, max_pixels=max_pixels,
    )  # fmt: skip
    result = fetch_dump(dcfg)
    console.print(result.table())
    if result.summary is not None:
        console.print(result.summary.table())


@app.command("ddg")
def fetch_ddg(
    query: str | None = typer.Option(None, "--query", "-q", help="Search words, e.g. 'pikachu pokemon'."),
    class_name: list[str] = typer.Option(
        [],
        "--class",
        help="With --query: the class of what it finds. With --catalog: only these classes (repeatable).",
    ),
    catalog: bool = typer.Option(
        default_of(DdgOptions, "catalog"), "--catalog", help="One query per catalog class (its search_query)."
    ),
    catalog_file: Path | None = typer.Option(
        None, "--catalog-file", help="Catalog CSV to use (default: the shipped one).", dir_okay=False
    ),
    max_results: int = typer.Option(
        default_of(DdgOptions, "max_results"), "--max-results", help="Results to plan per query."
    ),
    safesearch: str = typer.Option(
        default_of(DdgOptions, "safesearch"), "--safesearch", help="on, moderate or off."
    ),
    region: str = typer.Option(
        default_of(DdgOptions, "region"), "--region", help="DuckDuckGo region, e.g. us-en, wt-wt (no region)."
    ),
    type_image: str | None = typer.Option(
        None, "--type-image", help="photo, clipart, gif, transparent or line (default: any)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Download at most N images this run."),
    retry_failed: bool = typer.Option(
        default_of(DdgOptions, "retry_failed"),
        "--retry-failed",
        help="Also retry downloads that failed before.",
    ),
    retry_quarantined: bool = opts.retry_quarantined_option(),
    max_pixels: int | None = opts.max_pixels_option(),
    file_timeout: float | None = opts.file_timeout_option(),
    max_retry_after: float | None = opts.max_retry_after_option(),
    search_again: bool = typer.Option(
        default_of(DdgOptions, "search_again"),
        "--search-again",
        help="Repeat searches that already finished (new results are added).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the queries and what the ledger holds for them; search nothing."
    ),
    user_agent: str | None = typer.Option(
        None, "--user-agent", help="User-Agent header for image downloads."
    ),
    concurrency: int = typer.Option(
        default_of(DdgOptions, "concurrency"), "--concurrency", help="Downloads in flight in all."
    ),
    per_host: int = typer.Option(
        default_of(DdgOptions, "per_host"), "--per-host", help="Downloads in flight per image host."
    ),
    rate: float | None = typer.Option(
        None, "--rate", help="Requests per second per image host (default: no rate limit)."
    ),
    data: Path = typer.Option(Path("data"), "--data", help="Dataset directory (created if missing)."),
) -> None:
    """Search DuckDuckGo images and download the results (polite, resumable, verified)."""
    from pokedata.fetch.ddg import DdgConfig, dry_run_table
    from pokedata.fetch.ddg import dry_run as plan_only
    from pokedata.fetch.ddg import fetch_ddg as run
    from pokedata.log import console, out

    cfg = DdgConfig(
        data=data, query=query, class_names=tuple(class_name), catalog=catalog or catalog_file is not None,
        catalog_path=catalog_file, max_results=max_results, safesearch=safesearch.lower(), region=region,
        type_image=type_image, limit=limit, retry_failed=retry_failed, search_again=search_again,
        concurrency=concurrency, per_host=per_host, host_rate=rate, retry_quarantined=retry_quarantined,
        max_pixels=max_pixels, file_timeout=file_timeout, max_retry_after=max_retry_after,
        **({"user_agent": user_agent} if user_agent else {}),
    )  # fmt: skip
    if dry_run:
        out.print(dry_run_table(cfg, plan_only(cfg)))
        return
    console.print(run(cfg).table())


@app.command("folder")
def fetch_folder(
    path: Path = typer.Argument(
        ..., help="Image folder to import (e.g. the Kaggle set: one PNG per species)."
    ),
    class_from: str = typer.Option(
        default_of(FolderOptions, "class_from"),
        "--class-from",
        help="Where the class comes from: dirname (first sub-folder), filename (file stem), or catalog "
        "(folder or file name matched against the catalog; unmatched files are skipped).",
    ),
    catalog: Path | None = typer.Option(
        None,
        "--catalog",
        help="Catalog CSV to match names against (default: the shipped one with --class-from catalog).",
        dir_okay=False,
    ),
    link: bool = typer.Option(
        default_of(FolderOptions, "link"), "--link", help="Hard-link files instead of copying them."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Import at most N files this run."),
    retry_failed: bool = typer.Option(
        default_of(FolderOptions, "retry_failed"),
        "--retry-failed",
        help="Also retry files that failed before.",
    ),
    retry_quarantined: bool = opts.retry_quarantined_option(),
    max_pixels: int | None = opts.max_pixels_option(),
    data: Path = typer.Option(Path("data"), "--data", help="Dataset directory (created if missing)."),
) -> None:
    """Import an existing image folder into the dataset store (copies or hard-links; rerun adds nothing)."""
    from pokedata.fetch.folder import FolderImportConfig, import_folder
    from pokedata.log import console

    cfg = FolderImportConfig(
        root=path,
        data=data,
        class_from=class_from,
        catalog=catalog,
        link=link,
        limit=limit,
        retry_failed=retry_failed,
        retry_quarantined=retry_quarantined,
        max_pixels=max_pixels,
    )
    console.print(import_folder(cfg).table())
