"""DuckDuckGo image search as a fetch source: queries -> ``planned`` rows -> the shared downloader.

One query per class (``--catalog``: each class's ``search_query``; or ``--query Q --class NAME``). Result
image URLs are deduped per class and planned as source ``ddg`` with the URL as source id and the title,
source page, size and query in the metadata; the same URL found for two classes is downloaded once and
shared (the clean/dedup stage sees the label conflict). Search errors (``DDGSException``, including its
rate-limit and timeout subclasses) are retried with backoff, then recorded and the run goes on.

A finished search is remembered in the ledger (``meta`` table), so a rerun after a crash goes straight
to the downloads; ``search_again`` repeats the searches (new results are added, old rows kept).

The search call is injectable (``DdgConfig.search``): tests swap in a local function while the images
still come over real HTTP.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from pokedata.catalog import load_catalog
from pokedata.errors import UserError
from pokedata.fetch.config import DdgOptions
from pokedata.fetch.download import download_pending
from pokedata.fetch.http import DEFAULT_USER_AGENT, HttpConfig, PoliteClient, with_limits
from pokedata.fetch.intake import FetchSummary
from pokedata.ledger import Candidate, Ledger
from pokedata.store import DatasetDir
from pokedata.verify import check_max_pixels, pixel_limit

log = logging.getLogger(__name__)

SOURCE = "ddg"
SAFESEARCH = ("on", "moderate", "off")
TYPE_IMAGES = ("photo", "clipart", "gif", "transparent", "line")
PAGE_SIZE = 100  # results per DuckDuckGo images page


@dataclass(frozen=True)
class SearchQuery:
    text: str
    class_name: str  # '' = unlabelled


SearchFn = Callable[[str, "DdgConfig"], list[dict[str, Any]]]


@dataclass
class DdgConfig(DdgOptions):
    """Everything ``poke fetch ddg`` needs: the fields of :class:`DdgOptions` (their defaults are the
    command's), the user agent, and the hooks tests use; :meth:`validate` checks it before anything runs."""

    user_agent: str = DEFAULT_USER_AGENT
    http: HttpConfig | None = None  # an HttpConfig to start from (tests: fast backoff)
    search: SearchFn | None = None  # None: DuckDuckGo through ddgs

    def validate(self) -> DdgConfig:
        check_max_pixels(self.max_pixels)
        if self.catalog and self.query:
            raise UserError("--query and --catalog exclude each other", hint="pass one of them")
        if not self.catalog and not self.query:
            raise UserError(
                "nothing to search for", hint="pass --query 'pikachu pokemon' --class Pikachu, or --catalog"
            )
        if self.query is not None and not self.query.strip():
            raise UserError("--query is empty", hint="pass the words to search for")
        if self.query and len(self.class_names) != 1:
            raise UserError(
                "--query needs exactly one --class (the label of the images it finds)",
                hint="e.g. --query 'pikachu pokemon' --class Pikachu",
            )
        if self.safesearch not in SAFESEARCH:
            raise UserError(f"--safesearch {self.safesearch!r} is not one of {', '.join(SAFESEARCH)}")
        if self.type_image is not None and self.type_image not in TYPE_IMAGES:
            raise UserError(f"--type-image {self.type_image!r} is not one of {', '.join(TYPE_IMAGES)}")
        if self.max_results < 1:
            raise UserError("--max-results must be >= 1")
        if self.limit is not None and self.limit < 0:
            raise UserError("--limit must be >= 0")
        if self.concurrency < 1 or self.per_host < 1:
            raise UserError("--concurrency and --per-host must be >= 1")
        if self.host_rate is not None and not (math.isfinite(self.host_rate) and self.host_rate > 0):
            raise UserError("--rate must be > 0 requests/s (leave it out for no rate limit)")
        return self

    def http_config(self) -> HttpConfig:
        """The "found by search" politeness: 16 in flight in all, 2 per host, optional per-host rate."""

        base = with_limits(self.http or HttpConfig(), self.file_timeout, self.max_retry_after)
        return dataclasses.replace(
            base,
            user_agent=self.user_agent if self.user_agent != DEFAULT_USER_AGENT else base.user_agent,
            global_concurrency=self.concurrency,
            per_host_concurrency=self.per_host,
            default_rate=self.host_rate if self.host_rate is not None else base.default_rate,
            auth=None,
            auth_origins=(),
        )


def build_queries(cfg: DdgConfig) -> list[SearchQuery]:
    """The searches to run, in catalog order."""

    if cfg.query:
        name = cfg.class_names[0].strip()
        try:
            name = load_catalog(cfg.catalog_path).by_name(name).name
        except UserError:
            log.warning("--class %r is not in the catalog; using it as given", name)
        return [SearchQuery(cfg.query.strip(), name)]
    catalog = load_catalog(cfg.catalog_path)
    classes = [catalog.by_name(n) for n in cfg.class_names] if cfg.class_names else list(catalog)
    return [SearchQuery(c.search_query or f"{c.name} pokemon", c.name) for c in classes]


def ddgs_search(query: str, cfg: DdgConfig) -> list[dict[str, Any]]:
    """DuckDuckGo images through ``ddgs`` (its duckduckgo backend), paging until ``max_results``."""
    # ddgs lazily: the package is needed only to search (pokegan and the other sources work without it)
    from ddgs import DDGS
    from ddgs.exceptions import DDGSException

    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    client = DDGS(timeout=cfg.search_timeout)
    page = 1
    while len(results) < cfg.max_results:
        try:
            batch = client.images(
                query, region=cfg.region, safesearch=cfg.safesearch, max_results=cfg.max_results,
                type_image=cfg.type_image, backend="duckduckgo", page=page,
            )  # fmt: skip
        except DDGSException as exc:
            if page > 1 and "no results" in str(exc).lower():
                break  # past the last page
            raise
        fresh = [r for r in batch if r.get("image") and r["image"] not in seen]
        if not fresh:
            break
        seen.update(r["image"] for r in fresh)
        results += fresh
        page += 1
        if len(batch) < PAGE_SIZE // 2:
            break
    return results[: cfg.max_results]


def candidates(results: list[dict[str, Any]], query: SearchQuery) -> list[Candidate]:
    """Search results -> candidates; non-http(s) URLs dropped, duplicates kept once (first wins)."""
    out: dict[str, Candidate] = {}
    for r in results:
        url = str(r.get("image") or "").strip()
        if not url.lower().startswith(("http://", "https://")) or url in out:
            continue
        meta = {
            "title": r.get("title") or "",
            "page_url": r.get("url") or "",
            "width": _int(r.get("width")),
            "height": _int(r.get("height")),
            "query": query.text,
        }
        if r.get("source"):
            meta["engine_source"] = r["source"]
        out[url] = Candidate(SOURCE, url, query.class_name, url, meta)
    return list(out.values())


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def search_key(cfg: DdgConfig, q: SearchQuery) -> str:
    return "ddg-search|" + json.dumps(
        [q.text, q.class_name, cfg.region, cfg.safesearch, cfg.type_image, cfg.max_results]
    )


def search_with_retries(search: SearchFn, q: SearchQuery, cfg: DdgConfig) -> list[dict[str, Any]]:
    """Call ``search`` with retries on DDGS errors (exponential backoff with jitter); re-raise the last."""
    from ddgs.exceptions import DDGSException

    for attempt in range(cfg.search_retries):
        try:
            return search(q.text, cfg)
        except DDGSException as exc:
            if attempt + 1 >= cfg.search_retries:
                raise
            wait = cfg.search_backoff * 2**attempt * (0.5 + random.random() / 2)
            log.info("search %r failed (%s); retry in %.1fs", q.text, type(exc).__name__, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def plan_searches(cfg: DdgConfig, ledger: Ledger, summary: FetchSummary) -> list[str]:
    """Run every query not searched yet and plan its results. Returns the queries that failed."""
    from ddgs.exceptions import DDGSException

    search = cfg.search or ddgs_search
    failed: list[str] = []
    last_search = 0.0
    queries = build_queries(cfg)
    todo = [q for q in queries if cfg.search_again or ledger.get_meta(search_key(cfg, q)) is None]
    if len(todo) < len(queries):
        log.info("%d of %d queries were searched before; resuming their downloads", len(queries) - len(todo),
                 len(queries))  # fmt: skip
    for q in todo:
        wait = last_search + cfg.search_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        last_search = time.monotonic()
        try:
            results = search_with_retries(search, q, cfg)
        except DDGSException as exc:
            reason = f"search-failed: {type(exc).__name__}: {str(exc)[:200]}"
            log.warning("query %r: %s (the other queries go on; rerun to try it again)", q.text, reason)
            ledger.set_meta(search_key(cfg, q) + "|error", reason)
            summary.errors = summary.errors or {}
            summary.errors["search-failed"] = summary.errors.get("search-failed", 0) + 1
            failed.append(q.text)
            continue
        summary.planned += ledger.plan(candidates(results, q))
        ledger.set_meta(search_key(cfg, q), json.dumps({"results": len(results), "at": time.time()}))
    return failed


def fetch_ddg(cfg: DdgConfig) -> FetchSummary:
    """Search, plan, download. Resumable: rerunning the same command continues where it stopped."""

    cfg.validate()
    http = cfg.http_config().validate()
    dataset = DatasetDir.at(cfg.data).create()
    summary = FetchSummary(source=SOURCE)
    started = time.monotonic()
    with dataset.writer_lock("fetch ddg"), Ledger(dataset.ledger_path) as ledger:
        plan_searches(cfg, ledger, summary)
        with PoliteClient(http) as client, pixel_limit(cfg.max_pixels):
            download_pending(
                ledger, dataset, client, source=SOURCE, retry_failed=cfg.retry_failed, limit=cfg.limit,
                progress=cfg.progress, summary=summary, retry_quarantined=cfg.retry_quarantined,
            )  # fmt: skip
    summary.seconds = time.monotonic() - started
    return summary


@dataclass(frozen=True)
class DryRunRow:
    query: str
    class_name: str
    searched: bool  # a finished search is on record (a run would not search it again)
    in_ledger: dict[str, int]  # status -> rows of this class from ddg


def dry_run(cfg: DdgConfig) -> list[DryRunRow]:
    """What a run would do, without searching or downloading: the queries and what the ledger holds."""
    cfg.validate()
    queries = build_queries(cfg)
    dataset = DatasetDir.at(cfg.data)
    counts: dict[str, dict[str, int]] = {}
    searched: set[str] = set()
    if dataset.ledger_path.is_file():
        with Ledger(dataset.ledger_path, readonly=True) as ledger:
            for cls, status, n in ledger.counts(("class_name", "status"), source=SOURCE):
                counts.setdefault(cls, {})[status] = n
            searched = {
                search_key(cfg, q) for q in queries if ledger.get_meta(search_key(cfg, q)) is not None
            }
    return [
        DryRunRow(q.text, q.class_name, search_key(cfg, q) in searched, counts.get(q.class_name, {}))
        for q in queries
    ]


def dry_run_table(cfg: DdgConfig, rows: list[DryRunRow]):
    t = Table(title=f"poke fetch ddg --dry-run: {len(rows)} queries, up to {cfg.max_results} results each "
                    "(nothing searched or downloaded)")  # fmt: skip
    for col in ("query", "class", "searched before", "planned", "done", "failed/quarantined"):
        t.add_column(col, justify="right" if col in ("planned", "done", "failed/quarantined") else "left")
    for r in rows:
        bad = r.in_ledger.get("failed", 0) + r.in_ledger.get("quarantined", 0)
        t.add_row(r.query, r.class_name, "yes" if r.searched else "no", str(r.in_ledger.get("planned", 0)),
                  str(r.in_ledger.get("done", 0)), str(bad))  # fmt: skip
    return t
