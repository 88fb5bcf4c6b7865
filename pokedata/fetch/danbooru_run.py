"""Running a Danbooru fetch: queries from the config, listing pages into the ledger, then downloading.

``fetch_danbooru(cfg)`` is the one call behind ``poke fetch danbooru``; ``estimate_danbooru(cfg)`` is
``--dry-run`` (queries, estimated posts and pages; nothing planned or downloaded). The query building,
paging, labelling and skip rules live in :mod:`pokedata.fetch.danbooru`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pokedata.catalog import load_catalog
from pokedata.errors import UserError
from pokedata.fetch.danbooru import (
    DEFAULT_FILE_HOST,
    PAGE_SIZE,
    SOURCE,
    Cursor,
    DanbooruConfig,
    Labeller,
    Query,
    api_get,
    build_query,
    estimate_pages,
    iter_pages,
    normalise_ratings,
    plan_posts,
    post_candidate,
    post_id,
)
from pokedata.fetch.download import download_pending
from pokedata.fetch.http import FetchError, HttpConfig, PoliteClient, origin_of, with_limits
from pokedata.fetch.intake import FetchSummary, Outcome
from pokedata.ledger import SKIPPED, Ledger
from pokedata.log import console
from pokedata.store import DatasetDir
from pokedata.verify import pixel_limit

log = logging.getLogger(__name__)


def http_config(cfg: DanbooruConfig) -> Any:
    """The polite HTTP settings: API host <= ``cfg.api_rate`` req/s, file hosts <= ``cfg.file_rate``; auth to
    the exact origin (scheme, host, port) of ``--base-url`` only."""

    base = with_limits(cfg.http or HttpConfig(), cfg.file_timeout, cfg.max_retry_after)
    rates = dict(base.host_rates)
    rates.setdefault(cfg.api_host, cfg.api_rate)
    rates.setdefault(DEFAULT_FILE_HOST, cfg.file_rate)
    return dataclasses.replace(
        base,
        host_rates=rates,
        default_rate=base.default_rate if base.default_rate is not None else cfg.file_rate,
        auth=cfg.auth,
        auth_origins=(origin_of(cfg.base_url),) if cfg.auth else (),
    )


def build_plan(cfg: DanbooruConfig) -> tuple[list[Query], Labeller]:
    """The queries to run and how their posts get a class."""
    ratings = normalise_ratings(cfg.rating)
    tag_to_class: dict[str, str] | None = None
    fixed: str | None = None
    queries: list[Query] = []
    if cfg.catalog:
        catalog = load_catalog(cfg.catalog_path)
        tag_to_class = {c.danbooru_tag: c.name for c in catalog if c.danbooru_tag}
        if not cfg.tags:
            for c in catalog:
                if c.danbooru_tag:
                    queries.append(
                        build_query([c.danbooru_tag], cfg.exclude, ratings, tag_limit=cfg.tag_limit)
                    )
    elif cfg.class_name:
        catalog = load_catalog(cfg.catalog_path)
        try:
            fixed = catalog.by_name(cfg.class_name).name
        except UserError:
            fixed = cfg.class_name.strip()
            log.warning("--class %r is not in the catalog %s; using it as given", fixed, catalog.source)
    if cfg.tags:
        queries.append(build_query(cfg.tags, cfg.exclude, ratings, tag_limit=cfg.tag_limit, class_name=fixed))
    return queries, Labeller(tag_to_class=tag_to_class, class_name=fixed)


def list_query(
    client: Any,
    ledger: Ledger,
    cfg: DanbooruConfig,
    query: Query,
    labeller: Labeller,
    summary: FetchSummary,
    on_page: Any = None,
) -> int:
    """Walk one query's pages into the ledger (resumably). Returns how many posts matched this run."""
    key = f"{query.key}|{labeller.signature}|{cfg.variant}"
    cursor = Cursor.load(ledger, key)
    matched = 0
    for posts in iter_pages(client, cfg.base_url, query, cursor):
        rows = []
        stopped = False
        for post in posts:
            if post_id(post) is None:  # no usable id: nothing to plan, counted and said
                summary.add(Outcome(SKIPPED, "bad-record"))
                log.warning("skipped a post without a valid id from %s (bad-record)", cfg.base_url)
                continue
            if not query.accepts(post):
                continue
            rows.append(post_candidate(post, query, labeller, base_url=cfg.base_url, variant=cfg.variant))
            matched += 1
            if cfg.limit is not None and matched >= cfg.limit:
                # Stop inside the page: the next run resumes just past this post.
                cursor.stop_at(post_id(post))  # type: ignore[arg-type]
                stopped = True
                break
        plan_posts(ledger, rows, summary)
        cursor.save(ledger, key)
        if on_page is not None:
            on_page(len(posts), len(rows))
        if stopped:
            break
    else:
        cursor.save(ledger, key)  # the walk reached its end
    return matched


def fetch_danbooru(cfg: DanbooruConfig) -> FetchSummary:
    """List every query's posts into the ledger, then download what is pending. Resumable."""

    cfg.validate()
    queries, labeller = build_plan(cfg)
    dataset = DatasetDir.at(cfg.data).create()
    summary = FetchSummary(source=SOURCE)
    started = time.monotonic()
    failed_queries: list[str] = []
    client = PoliteClient(http_config(cfg))
    try:
        with dataset.writer_lock("fetch danbooru"), Ledger(dataset.ledger_path) as ledger:
            with _listing_progress(cfg.progress, len(queries)) as progress:
                for query in queries:
                    progress.start(query)
                    try:
                        list_query(client, ledger, cfg, query, labeller, summary, progress.page)
                    except FetchError as exc:  # this query's listing gave up; the others go on
                        failed_queries.append(f"{' '.join(query.server_terms)}: {exc.reason}")
                        summary.errors = {**(summary.errors or {}), "listing-failed": len(failed_queries)}
                        log.warning(
                            "listing %r failed (%s); rerun to resume it", " ".join(query.server_terms), exc
                        )
                if failed_queries and len(failed_queries) == len(queries):
                    raise UserError(
                        f"every Danbooru query failed ({failed_queries[0]})",
                        hint=f"check --base-url {cfg.base_url} and the network, then rerun to resume",
                    )
            with pixel_limit(cfg.max_pixels):
                download_pending(
                    ledger, dataset, client, source=SOURCE, retry_failed=cfg.retry_failed, progress=cfg.progress,
                    summary=summary, retry_quarantined=cfg.retry_quarantined,
                )  # fmt: skip
    finally:
        client.close()
    summary.seconds = time.monotonic() - started
    return summary


@dataclass(frozen=True)
class QueryEstimate:
    """One line of ``--dry-run``."""

    query: str  # what is sent, and what is filtered client-side
    posts: int | None  # posts the server query matches (an upper bound with client-side filters)
    pages: int | None  # posts.json pages of 200 to walk
    exact: bool  # False: a lower bound (the count endpoint failed and the first page was full)


def estimate_danbooru(cfg: DanbooruConfig) -> list[QueryEstimate]:
    """``--dry-run``: each query with its estimated post count (``/counts/posts.json``, else the first page)."""

    cfg.validate()
    queries, _ = build_plan(cfg)
    client = PoliteClient(http_config(cfg))
    out = []
    try:
        with _listing_progress(cfg.progress, len(queries)) as progress:
            for q in queries:
                progress.start(q)
                out.append(_estimate_one(client, cfg, q))
    finally:
        client.close()
    return out


def _estimate_one(client: Any, cfg: DanbooruConfig, q: Query) -> QueryEstimate:
    base = cfg.base_url.rstrip("/")
    tags = " ".join(q.server_terms)
    exact = True
    try:
        count: int | None = int(
            api_get(client, f"{base}/counts/posts.json", {"tags": tags}, q)["counts"]["posts"]
        )
    except (FetchError, KeyError, TypeError, ValueError, OverflowError):
        try:
            first = api_get(client, f"{base}/posts.json", {"tags": tags, "limit": PAGE_SIZE}, q)
        except FetchError as exc:
            raise UserError(
                f"Danbooru at {cfg.base_url} did not answer the query {tags!r} ({exc})",
                hint="check --base-url and the network",
            ) from None
        count = len(first) if isinstance(first, list) else None
        exact = count is not None and count < PAGE_SIZE
    if cfg.limit is not None and count is not None:
        count = min(count, cfg.limit)
    return QueryEstimate(q.text, count, estimate_pages(count), exact)


def estimate_table(rows: list[QueryEstimate]):
    """A rich Table of a dry run."""

    t = Table(title=f"poke fetch danbooru --dry-run: {len(rows)} queries (nothing downloaded)")
    t.add_column("query (server tags; client-side filters)")
    t.add_column("posts", justify="right")
    t.add_column("pages", justify="right")
    total = 0
    for r in rows:
        posts = "?" if r.posts is None else f"{r.posts}{'' if r.exact else '+'}"
        t.add_row(r.query, posts, "?" if r.pages is None else str(r.pages))
        total += r.posts or 0
    t.add_row("[bold]total[/]", str(total), "")
    return t


class _listing_progress:  # noqa: N801 (used as a context manager)
    """A rich bar over the queries: current query, pages and posts listed."""

    def __init__(self, enabled: bool, n_queries: int):
        self.enabled = enabled and n_queries > 0
        self.n = n_queries
        self.pages = self.posts = self.matched = 0
        self.started = False

    def __enter__(self) -> _listing_progress:
        if self.enabled:
            self._bar = Progress(
                TextColumn("[bold]listing[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console,
            )  # fmt: skip
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.n, stats="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            if exc[0] is None:
                self._bar.update(self._task, completed=self.n)
            self._bar.__exit__(*exc)

    def start(self, query: Query) -> None:
        if self.enabled:
            if self.started:
                self._bar.advance(self._task)
            self.started = True
            self._bar.update(self._task, description=" ".join(query.server_terms)[:40])

    def page(self, n_posts: int, n_matched: int) -> None:
        self.pages += 1
        self.posts += n_posts
        self.matched += n_matched
        if self.enabled:
            self._bar.update(
                self._task, stats=f"pages {self.pages} posts {self.posts} matched {self.matched}"
            )
