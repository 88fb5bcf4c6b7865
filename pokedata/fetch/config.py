"""The options of the fetch commands, in a module light enough for ``poke --help`` to read their defaults
(each default is written once, here: the commands take them with ``default_of``).

Each source's config adds its validation (and the library-only hooks) on top of these fields:
:class:`pokedata.fetch.danbooru.DanbooruConfig`, :class:`pokedata.fetch.dump.DumpConfig`,
:class:`pokedata.fetch.ddg.DdgConfig` and :class:`pokedata.fetch.folder.FolderImportConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BASE_URL = "https://danbooru.donmai.us"
API_RATE = 2.0  # requests/s to the API host
FILE_RATE = 5.0  # requests/s to each file host
ANONYMOUS_TAG_LIMIT = 2


@dataclass(frozen=True)
class DanbooruOptions:
    """Options of ``poke fetch danbooru`` (live API)."""

    data: Path
    tags: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    rating: tuple[str, ...] = ()  # g/s/q/e (or general/sensitive/questionable/explicit); () = any
    variant: str = "original"  # original (file_url) | sample (large_file_url, ~850 px JPG)
    catalog: bool = False  # label posts by the catalog's character tags; no tags = every class
    catalog_path: Path | None = None  # None = the shipped catalog
    class_name: str | None = None  # give every post this class instead
    base_url: str = DEFAULT_BASE_URL
    limit: int | None = None  # at most N matching posts per query this run
    tag_limit: int = ANONYMOUS_TAG_LIMIT  # tag terms the account may send (2; Gold 6; Platinum 12)
    login: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    api_rate: float = API_RATE  # requests/s to the API host
    file_rate: float = FILE_RATE  # requests/s to each file host
    retry_failed: bool = False
    retry_quarantined: bool = False  # also retry quarantined rows (e.g. after raising --max-pixels)
    max_pixels: int | None = None  # decompression-bomb limit while verifying; None = Pillow's (~89 MP)
    file_timeout: float | None = None  # longest time for one file, all tries (None: HttpConfig's 600 s)
    max_retry_after: float | None = None  # longest Retry-After honoured (None: HttpConfig's 600 s)
    progress: bool = True


@dataclass(frozen=True)
class DumpOptions:
    """Options of dump mode. Exactly one of ``images`` (copy from a mirror) and ``rsync_list`` (write a list)."""

    metadata: Path  # the dump's metadata folder (or one metadata file)
    data: Path  # the dataset directory (--data)
    images: Path | None = None  # local mirror root holding original/ and/or 512px/
    rsync_list: Path | None = None  # write an rsync --files-from list here instead of copying
    tags: tuple[str, ...] = ()  # include_and
    any_tags: tuple[str, ...] = ()  # include_or
    exclude: tuple[str, ...] = ()  # exclude_or
    exclude_all: tuple[str, ...] = ()  # exclude_and
    rating: tuple[str, ...] = ()  # the dump's letters: s/q/e (2021+: g/s/q/e)
    variant: str = "original"  # original | sample (= the mirror's 512px JPGs)
    catalog: bool = False  # label by the catalog's character tags; no tags = every catalog class
    catalog_path: Path | None = None
    class_name: str | None = None
    link: bool = False  # hard-link from the mirror instead of copying
    limit: int | None = None  # at most N new matches this run
    retry_failed: bool = False
    progress: bool = True
    base_url: str = DEFAULT_BASE_URL  # for the page_url recorded with each post
    dry_run: bool = False  # scan and count (matches, skip reasons, classes); plan and copy nothing
    retry_quarantined: bool = False  # also retry quarantined rows (e.g. after raising --max-pixels)
    max_pixels: int | None = None  # decompression-bomb limit while verifying; None = Pillow's (~89 MP)


@dataclass
class DdgOptions:
    """Options of ``poke fetch ddg`` (the user agent, an HTTP config and the search call are added by
    :class:`pokedata.fetch.ddg.DdgConfig`)."""

    data: Path = Path("data")
    query: str | None = None  # with class_names: one query for one class
    class_names: tuple[str, ...] = ()  # with catalog: restrict to these classes
    catalog: bool = False  # one query per catalog class (its search_query)
    catalog_path: Path | None = None
    max_results: int = 100  # results per query
    safesearch: str = "moderate"
    region: str = "wt-wt"
    type_image: str | None = None
    limit: int | None = None  # download at most N images this run
    retry_failed: bool = False
    retry_quarantined: bool = False  # also retry quarantined rows (e.g. after raising --max-pixels)
    max_pixels: int | None = None  # decompression-bomb limit while verifying; None = Pillow's (~89 MP)
    file_timeout: float | None = None  # longest time for one file, all tries (None: HttpConfig's 600 s)
    max_retry_after: float | None = None  # longest Retry-After honoured (None: HttpConfig's 600 s)
    search_again: bool = False  # repeat searches that already finished
    search_retries: int = 4  # tries per query
    search_backoff: float = 2.0  # seconds; doubled per retry, with jitter
    search_interval: float = 1.0  # seconds between two searches (DuckDuckGo rate-limits bursts)
    search_timeout: int = 10
    concurrency: int = 16  # downloads in flight in all ("found by search" politeness)
    per_host: int = 2  # ... and per host
    host_rate: float | None = None  # requests/s per image host; None = no rate limit
    progress: bool = True


@dataclass(frozen=True)
class FolderOptions:
    """Options of one folder import."""

    root: Path  # the folder to import
    data: Path  # the dataset directory (--data)
    class_from: str = "dirname"  # dirname | filename | catalog
    catalog: Path | None = None  # catalog CSV; None with class_from="catalog" = the shipped one
    link: bool = False  # hard-link instead of copying (falls back to a copy across filesystems)
    retry_failed: bool = False  # also retry rows that failed before (e.g. unreadable files)
    limit: int | None = None  # import at most N files this run
    progress: bool = True
    retry_quarantined: bool = False  # also retry quarantined rows (e.g. after raising --max-pixels)
    max_pixels: int | None = None  # decompression-bomb limit while verifying; None = Pillow's (~89 MP)


__all__ = [
    "ANONYMOUS_TAG_LIMIT",
    "API_RATE",
    "DEFAULT_BASE_URL",
    "FILE_RATE",
    "DanbooruOptions",
    "DdgOptions",
    "DumpOptions",
    "FolderOptions",
]
