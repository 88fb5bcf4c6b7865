"""``poke classes resolve``: map each catalog class to its canonical Danbooru character tag, with post counts.

For each class, starting from its current ``danbooru_tag`` (the catalog's best guess, e.g. ``mr._mime``):

1. ``/tags.json?search[name_matches]=<guess>*&search[category]=4&search[order]=count&limit=20`` lists the
   character tags starting with the guess, most used first;
2. the guess itself with posts -> resolved ``exact``; else ``<guess>_(pokemon)`` (Danbooru's qualifier for
   names that are also common words, e.g. ``mew_(pokemon)``) -> ``qualified``;
3. else ``/tag_aliases.json?search[antecedent_name]=<guess>&search[status]=active`` -> the alias target
   (with its post count from ``tags.json``) -> ``alias``;
4. else the class is reported unresolved, with the closest candidates as suggestions, and keeps its tag.

The result is written as a catalog CSV (``danbooru_tag`` updated, ``post_count`` and ``resolved_by``
columns added; :func:`pokedata.catalog.read_catalog_csv` ignores extra columns). Answers are cached in
``<out>.resolve-cache.json`` while it runs, so a killed run resumes without asking again.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pokedata.catalog import (
    Catalog,
    PokemonClass,
    danbooru_tag_for,
    default_catalog_path,
    load_catalog,
    validate,
)
from pokedata.errors import UserError
from pokedata.fetch.config import API_RATE, DEFAULT_BASE_URL
from pokedata.fetch.danbooru import api_get, check_base_url
from pokedata.fetch.http import FetchError, HttpConfig, PoliteClient, origin_of
from pokedata.log import console
from pokedata.store import atomic_write_text

log = logging.getLogger(__name__)

CHARACTER = 4
CANDIDATES = 20  # tags.json rows per lookup
_CACHE_EVERY = 20


@dataclass(frozen=True)
class ResolveConfig:
    """Options of ``poke classes resolve``."""

    catalog: Path | None = None  # input catalog (None = the shipped one)
    out: Path | None = None  # output catalog CSV (None = rewrite --catalog in place)
    base_url: str = DEFAULT_BASE_URL
    limit: int | None = None  # resolve only the first N classes (a quick trial)
    api_rate: float = API_RATE
    login: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    progress: bool = True
    http: Any = None  # a pokedata.fetch.http.HttpConfig to start from (tests)

    @property
    def out_path(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        if self.catalog is None:
            raise UserError(
                "no --out given and the catalog is the shipped one",
                hint="pass --out my-catalog.csv (the shipped catalog is not rewritten)",
            )
        return Path(self.catalog)

    def validate(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit {self.limit} must be at least 1")
        if bool(self.login) != bool(self.api_key):
            raise UserError(
                "Danbooru credentials need both a login and an API key", hint="pass both or neither"
            )
        check_base_url(self.base_url)
        if self.out_path.resolve() == default_catalog_path().resolve():
            raise UserError(
                "--out points at the shipped catalog", hint="write to another file, e.g. --out mine.csv"
            )


@dataclass(frozen=True)
class Resolution:
    """What Danbooru says about one class."""

    name: str
    guess: str
    tag: str | None  # the canonical character tag, None when unresolved
    post_count: int | None
    how: str  # exact | qualified | alias | unresolved | conflict
    suggestions: tuple[str, ...] = ()


def _tags(client: Any, base: str, pattern: str, *, category: int | None = CHARACTER) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"search[name_matches]": pattern, "search[order]": "count", "limit": CANDIDATES}
    if category is not None:
        params["search[category]"] = category
    rows = api_get(client, f"{base}/tags.json", params)
    if not isinstance(rows, list):
        return []
    good = [r for r in rows if isinstance(r, dict) and isinstance(r.get("name"), str) and r["name"]]
    if len(good) < len(rows):
        log.warning("%s: skipped %d tag rows without a name (bad-record)", pattern, len(rows) - len(good))
    return good


def post_count(row: dict[str, Any]) -> int:
    """A tag row's ``post_count`` as an int; anything else (``"lots"``, ``1e400``, a list) counts as 0."""
    v = row.get("post_count")
    if isinstance(v, bool):
        return 0
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 18:
        return int(v)
    if isinstance(v, int) and 0 <= v < 2**63:
        return v
    if v not in (None, "", 0):
        log.warning(
            "tag %r: post_count %r is not a count (bad-record); counted as 0", row.get("name"), str(v)[:40]
        )
    return 0


def resolve_one(client: Any, base_url: str, cls: PokemonClass) -> Resolution:
    """Ask Danbooru about one class (1-3 requests)."""

    base = base_url.rstrip("/")
    guess = (cls.danbooru_tag or danbooru_tag_for(cls.name)).strip().lower()
    rows = _tags(client, base, f"{guess}*")
    counts = {r["name"]: post_count(r) for r in rows}
    if counts.get(guess, 0) > 0:
        return Resolution(cls.name, guess, guess, counts[guess], "exact")
    qualified = f"{guess}_(pokemon)"
    if counts.get(qualified, 0) > 0:
        return Resolution(cls.name, guess, qualified, counts[qualified], "qualified")
    aliases = api_get(
        client, f"{base}/tag_aliases.json",
        {"search[antecedent_name]": guess, "search[status]": "active", "limit": 5},
    )  # fmt: skip
    for alias in aliases if isinstance(aliases, list) else []:
        target = alias.get("consequent_name") if isinstance(alias, dict) else None
        target = target.strip() if isinstance(target, str) else ""
        if target:
            found = {r["name"]: post_count(r) for r in _tags(client, base, target, category=None)}
            return Resolution(cls.name, guess, target, found.get(target), "alias")
    suggestions = tuple(name for name in counts if counts[name] > 0)[:3]
    return Resolution(cls.name, guess, None, None, "unresolved", suggestions)


def resolve_catalog(cfg: ResolveConfig) -> tuple[Path, list[Resolution]]:
    """Resolve every class (or the first ``limit``), write the catalog, return (path, resolutions)."""

    cfg.validate()
    catalog = load_catalog(cfg.catalog)
    out = cfg.out_path
    cache_path = out.with_name(out.name + ".resolve-cache.json")
    cache: dict[str, dict[str, Any]] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    host = (cfg.base_url.split("://", 1)[-1].split("/", 1)[0]).split(":")[0]
    base_http = cfg.http or HttpConfig()
    http = type(base_http)(**{
        **{f.name: getattr(base_http, f.name) for f in fields(base_http)},
        "host_rates": {host: cfg.api_rate, **base_http.host_rates},
        "auth": (cfg.login, cfg.api_key) if cfg.login else None,
        "auth_origins": (origin_of(cfg.base_url),) if cfg.login else (),
    })  # fmt: skip
    todo = list(catalog)[: cfg.limit] if cfg.limit else list(catalog)
    results: list[Resolution] = []
    client = PoliteClient(http)
    try:
        with _progress(cfg.progress, len(todo)) as advance:
            for i, cls in enumerate(todo, 1):
                key = f"{cfg.base_url}|{cls.name}|{cls.danbooru_tag}"
                if key in cache:
                    res = Resolution(**{**cache[key], "suggestions": tuple(cache[key]["suggestions"])})
                else:
                    try:
                        res = resolve_one(client, cfg.base_url, cls)
                    except FetchError as exc:
                        raise UserError(
                            f"Danbooru at {cfg.base_url} did not answer about {cls.name!r} ({exc}); "
                            f"{len(results)} classes done so far are kept for the next run",
                            hint="check --base-url and the network, then rerun to resume",
                        ) from None
                    cache[key] = asdict(res)
                    if i % _CACHE_EVERY == 0:
                        atomic_write_text(cache_path, json.dumps(cache))
                results.append(res)
                advance()
    finally:
        client.close()
        if cache:
            atomic_write_text(cache_path, json.dumps(cache))
    results = _settle_conflicts(catalog, results)
    write_resolved_catalog(catalog, results, out)
    cache_path.unlink(missing_ok=True)
    return out, results


def _settle_conflicts(catalog: Catalog, results: list[Resolution]) -> list[Resolution]:
    """Two classes may not share a tag: a class whose new tag is taken keeps its old one (``conflict``).

    Tags of classes that keep theirs (unresolved, or beyond ``--limit``) are reserved first; resolved tags
    are then claimed exact matches first, then aliases, then ``_(pokemon)`` qualifications, each in catalog
    order.
    """
    resolved = {r.name: r for r in results if r.tag}
    taken = {c.danbooru_tag: c.name for c in catalog if c.name not in resolved}
    settled: dict[str, Resolution] = {}
    rank = {"exact": 0, "alias": 1, "qualified": 2}
    order = sorted(
        (c for c in catalog if c.name in resolved), key=lambda c: rank.get(resolved[c.name].how, 3)
    )
    for c in order:
        r = resolved[c.name]
        owner = taken.get(r.tag or "")
        if owner is not None and owner != c.name:
            settled[c.name] = Resolution(
                r.name, r.guess, None, r.post_count, "conflict", (f"{r.tag} (also {owner})",)
            )
            taken.setdefault(c.danbooru_tag, c.name)
        else:
            taken[r.tag or ""] = c.name
    return [settled.get(r.name, r) for r in results]


def write_resolved_catalog(catalog: Catalog, results: list[Resolution], out: Path) -> None:
    """The catalog with resolved tags, plus ``post_count`` and ``resolved_by`` columns; validated, atomic."""
    by_name = {r.name: r for r in results}
    classes = []
    for c in catalog:
        r = by_name.get(c.name)
        classes.append(PokemonClass(**{**asdict(c), "danbooru_tag": r.tag}) if r and r.tag else c)
    validate(Catalog(tuple(classes), source=str(out)))
    names = [f.name for f in fields(PokemonClass)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*names, "post_count", "resolved_by"])
    for c in classes:
        r = by_name.get(c.name)
        count = "" if r is None or r.post_count is None else str(r.post_count)
        writer.writerow([*(str(getattr(c, n)) for n in names), count, r.how if r else ""])
    atomic_write_text(out, buf.getvalue())


def resolution_table(results: list[Resolution]):
    """Rich tables: counts by outcome, then every class that was not resolved."""

    t = Table(title=f"classes resolve: {len(results)} classes")
    for col in ("outcome", "classes"):
        t.add_column(col)
    for how in ("exact", "qualified", "alias", "unresolved", "conflict"):
        t.add_row(how, str(sum(r.how == how for r in results)))
    bad = [r for r in results if r.how in ("unresolved", "conflict")]
    if not bad:
        return t, None
    u = Table(title=f"{len(bad)} names not resolved (their tags are left as they were)")
    for col in ("class", "guess", "outcome", "suggestions"):
        u.add_column(col)
    for r in bad:
        u.add_row(r.name, r.guess, r.how, ", ".join(r.suggestions) or "-")
    return t, u


class _progress:  # noqa: N801 (a context manager)
    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda: None

        self._bar = Progress(TextColumn("[bold]resolving"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             console=console)  # fmt: skip
        self._bar.__enter__()
        task = self._bar.add_task("resolve", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)
