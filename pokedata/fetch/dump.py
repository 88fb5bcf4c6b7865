"""Danbooru20xx dumps as a source: ``poke fetch danbooru --dump METADATA_DIR [--images MIRROR | --rsync-list F]``.

Streams the dump's metadata JSON lines (never a whole file in memory): ``*.json``, ``*.jsonl``, the
extension-less ``2019000000000000``-style files, each optionally ``.gz`` / ``.xz`` / ``.zst`` (zstd only
when the ``zstandard`` package is installed). Both formats are read:

- 2019/2020: ``tags`` is a list of ``{"id", "name", "category"}`` (values often strings; category ``"4"``
  = character), ``id``/``score`` as strings, ``rating`` s/q/e;
- 2021: API-shaped, ``tag_string`` and ``tag_string_character``.

Filters work like the Danbooru-Dataset-Maker's (``include_and``, ``include_or``, ``exclude_or``,
``exclude_and``, ``rating``) but with EXACT tag matching, never substring matching (``pikachu`` does not
match ``pikachu_(cosplay)``). A cheap byte-level pre-check skips lines that cannot contain the required tags
before any JSON is parsed, which is what makes a 1M-line scan take seconds (``bench/dump_scan.py``).

Matches are either copied from a local mirror laid out as ``{original,512px}/<id % 1000 as 4 digits>/
<id>.<ext>`` (512px files are .jpg) into the store, through the same intake gate as downloads (rows
``danbooru-dump``, md5 verified for originals), or written as an ``rsync --files-from`` list. Scanned
metadata files are remembered in the ledger, so a rerun skips them; a killed copy resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pokedata.catalog import load_catalog
from pokedata.errors import UserError
from pokedata.fetch.config import DumpOptions
from pokedata.fetch.danbooru import Labeller, check_base_url, check_tag, plan_posts
from pokedata.fetch.dump_scan import (
    DUMP_VARIANTS,
    DumpPost,
    ScanStats,
    TagFilter,
    metadata_files,
    mirror_relpath,
    parse_record,
    scan_file,
)
from pokedata.fetch.folder import import_local_items
from pokedata.fetch.intake import FetchSummary
from pokedata.ledger import Candidate, Ledger
from pokedata.log import console
from pokedata.store import DatasetDir, atomic_writer, file_uri, file_uri_path, remove_stale_temps
from pokedata.verify import check_max_pixels, pixel_limit

log = logging.getLogger(__name__)

SOURCE = "danbooru-dump"
DUMP_RATINGS = ("g", "s", "q", "e")
_PLAN_BATCH = 2000
__all__ = [
    "DumpConfig",
    "DumpResult",
    "TagFilter",
    "fetch_dump",
    "metadata_files",
    "mirror_relpath",
    "parse_record",
]


# -- the run -----------------------------------------------------------------------------------------
_RATING_WORDS = {"general": "g", "sensitive": "s", "safe": "s", "questionable": "q", "explicit": "e"}


@dataclass(frozen=True)
class DumpConfig(DumpOptions):
    """Options of dump mode: the fields of :class:`DumpOptions` (their defaults are the command's).
    Exactly one of ``images`` (copy from a mirror) and ``rsync_list`` (write a list)."""

    def validate(self) -> None:
        check_base_url(self.base_url)
        check_max_pixels(self.max_pixels)
        if self.dry_run and (self.images is not None or self.rsync_list is not None):
            raise UserError("--dry-run only scans", hint="drop --images / --rsync-list, or drop --dry-run")
        if not self.dry_run and (self.images is None) == (self.rsync_list is None):
            raise UserError(
                "dump mode needs exactly one of --images MIRROR_DIR and --rsync-list FILE",
                hint="--images copies matches from a local mirror; --rsync-list writes the paths to fetch",
            )
        if self.variant not in DUMP_VARIANTS:
            raise UserError(f"--variant {self.variant!r} is not one of original, sample (512px)")
        if self.catalog and self.class_name:
            raise UserError("--catalog and --class both set", hint="label by the catalog or by one class")
        if not (self.tags or self.any_tags or self.catalog):
            raise UserError(
                "no --tags given for the dump", hint="pass --tags TAG, --any-tag TAG, or --catalog"
            )
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit {self.limit} must be at least 1")
        for t in (*self.tags, *self.any_tags, *self.exclude, *self.exclude_all):
            check_tag(t)
        dump_ratings(self.rating)
        if self.images is not None:
            sub = Path(self.images) / DUMP_VARIANTS[self.variant]
            if not sub.is_dir():
                raise UserError(
                    f"--images {self.images} has no {DUMP_VARIANTS[self.variant]}/ folder",
                    hint="a mirror is laid out as original/<id % 1000 as 4 digits>/<id>.<ext> (and 512px/)",
                )


def dump_ratings(ratings: tuple[str, ...]) -> frozenset[str]:
    out = set()
    for part in (p.strip().lower() for r in ratings for p in str(r).split(",")):
        if part:
            code = _RATING_WORDS.get(part, part)
            if code not in DUMP_RATINGS:
                raise UserError(
                    f"--rating {part!r} is not a dump rating", hint="use s, q, e (2021+ dumps: g too)"
                )
            out.add(code)
    return frozenset(out)


def build_filter(cfg: DumpConfig) -> tuple[TagFilter, Labeller]:
    tag_to_class = None
    fixed = None
    any_tags = set(cfg.any_tags)
    if cfg.catalog:
        catalog = load_catalog(cfg.catalog_path)
        tag_to_class = {c.danbooru_tag: c.name for c in catalog if c.danbooru_tag}
        if not cfg.tags and not cfg.any_tags:
            any_tags = set(tag_to_class)
    elif cfg.class_name:
        try:
            fixed = load_catalog(cfg.catalog_path).by_name(cfg.class_name).name
        except UserError:
            fixed = cfg.class_name.strip()
    flt = TagFilter(
        include_and=frozenset(cfg.tags),
        include_or=frozenset(any_tags),
        exclude_or=frozenset(t.lstrip("-") for t in cfg.exclude),
        exclude_and=frozenset(t.lstrip("-") for t in cfg.exclude_all),
        ratings=dump_ratings(cfg.rating),
    )
    return flt, Labeller(tag_to_class=tag_to_class, class_name=fixed)


def dump_candidate(
    post: DumpPost, cfg: DumpConfig, labeller: Labeller, dump_file: str
) -> tuple[Candidate, str | None]:
    rel = mirror_relpath(post.id, post.ext, cfg.variant)
    url = file_uri(Path(cfg.images).resolve() / rel) if cfg.images is not None else None
    class_name, extra, label_skip = labeller.label({"tag_string_character": " ".join(post.characters)})
    raw = post.raw
    meta = {
        "tags": " ".join(sorted(post.tags)),
        "characters": " ".join(post.characters),
        "rating": post.rating,
        "score": raw.get("score"),
        "created_at": raw.get("created_at"),
        "page_url": f"{cfg.base_url.rstrip('/')}/posts/{post.id}",
        "file_ext": post.ext,
        "width": raw.get("image_width"),
        "height": raw.get("image_height"),
        "dump_file": dump_file,
        "mirror_path": rel,
        ("md5" if cfg.variant == "original" else "post_md5"): post.md5,
        **extra,
    }
    meta = {k: v for k, v in meta.items() if v not in (None, "")}
    return Candidate(SOURCE, str(post.id), class_name, url, meta), post.skip_reason or label_skip


@dataclass
class DumpResult:
    stats: ScanStats
    summary: FetchSummary | None = None  # copy mode
    rsync_list: Path | None = None  # list mode
    rsync_entries: int = 0
    reasons: dict[str, int] | None = None  # dry run: matches by skip reason or class label

    def table(self):
        t = Table(title="danbooru dump scan")
        t.add_column("what")
        t.add_column("count", justify="right")
        s = self.stats
        for label, value in (("metadata files scanned", s.files), ("files already scanned", s.files_skipped),
                             ("lines", s.lines), ("bad lines", s.bad_lines), ("matching posts", s.matched)):  # fmt: skip
            t.add_row(label, str(value))
        if self.rsync_list is not None:
            t.add_row(f"rsync list {self.rsync_list}", str(self.rsync_entries))
        for key, n in sorted((self.reasons or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:20]:
            t.add_row(f"  {key}", str(n))
        return t


def fetch_dump(cfg: DumpConfig) -> DumpResult:
    """Scan the dump's metadata; copy matches from the mirror into the store, or write an rsync list."""
    cfg.validate()
    flt, labeller = build_filter(cfg)
    files = metadata_files(cfg.metadata)
    if cfg.dry_run:
        return _dry_run(cfg, flt, labeller, files)
    if cfg.rsync_list is not None:
        return _write_rsync_list(cfg, flt, files)
    dataset = DatasetDir.at(cfg.data).create()
    with dataset.writer_lock("fetch danbooru --dump"):
        return _copy_from_mirror(cfg, dataset, flt, labeller, files)


def _copy_from_mirror(
    cfg: DumpConfig, dataset: DatasetDir, flt: TagFilter, labeller: Labeller, files: list[Path]
) -> DumpResult:
    started = time.monotonic()
    remove_stale_temps(dataset.tmp_dir)
    result = DumpResult(ScanStats(), FetchSummary(source=SOURCE))
    summary = result.summary
    assert summary is not None
    mirror_uri = file_uri(Path(cfg.images).resolve()).rstrip("/") + "/"  # type: ignore[arg-type]
    label_key = json.dumps([sorted((labeller.tag_to_class or {}).items()), labeller.class_name])
    with Ledger(dataset.ledger_path) as ledger:
        with _bytes_progress(cfg.progress, files) as advance:
            for path in files:
                st = path.stat()
                key = f"dump.scanned:{flt.key}:{hash_text(label_key)}:{cfg.variant}:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
                if ledger.get_meta(key):
                    result.stats.files_skipped += 1
                    advance(st.st_size)
                    continue
                result.stats.files += 1
                finished = _plan_file(ledger, cfg, flt, labeller, path, result.stats, summary, advance)
                if not finished:
                    break
                ledger.set_meta(key, "done")
        pending = [
            it
            for it in ledger.pending(
                source=SOURCE, retry_failed=cfg.retry_failed, retry_quarantined=cfg.retry_quarantined
            )
            if (it.url or "").startswith(mirror_uri)
        ]
        with pixel_limit(cfg.max_pixels):
            import_local_items(
                ledger, dataset, pending, path_of=lambda it: file_uri_path(it.url or ""), link=cfg.link,
                summary=summary, progress=cfg.progress, label="copying from mirror",
            )  # fmt: skip
    summary.seconds = time.monotonic() - started
    return result


def hash_text(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _plan_file(
    ledger: Ledger,
    cfg: DumpConfig,
    flt: TagFilter,
    labeller: Labeller,
    path: Path,
    stats: ScanStats,
    summary: FetchSummary,
    advance: Any,
) -> bool:
    """Plan one metadata file's matches. False when --limit stopped it part-way."""
    batch: list[tuple[Candidate, str | None]] = []

    def flush() -> None:
        plan_posts(ledger, batch, summary)
        batch.clear()

    for post in scan_file(path, flt, stats, advance):
        batch.append(dump_candidate(post, cfg, labeller, path.name))
        if len(batch) >= _PLAN_BATCH:
            flush()
        if cfg.limit is not None and summary.planned + len(batch) >= cfg.limit:
            flush()
            if summary.planned >= cfg.limit:
                return False
    flush()
    return True


def _dry_run(cfg: DumpConfig, flt: TagFilter, labeller: Labeller, files: list[Path]) -> DumpResult:
    """Scan only: how many posts match, and what would become of them (class, or skip reason)."""
    result = DumpResult(ScanStats(), reasons={})
    reasons = result.reasons
    assert reasons is not None
    with _bytes_progress(cfg.progress, files) as advance:
        for path in files:
            result.stats.files += 1
            for post in scan_file(path, flt, result.stats, advance):
                cand, reason = dump_candidate(post, cfg, labeller, path.name)
                key = (
                    f"skipped: {reason}" if reason else f"class: {cand.class_name or '(none / multi-class)'}"
                )
                reasons[key] = reasons.get(key, 0) + 1
    return result


def _write_rsync_list(cfg: DumpConfig, flt: TagFilter, files: list[Path]) -> DumpResult:
    result = DumpResult(ScanStats(), rsync_list=Path(cfg.rsync_list))  # type: ignore[arg-type]
    seen: set[int] = set()
    with atomic_writer(Path(cfg.rsync_list), "wb") as fh, _bytes_progress(cfg.progress, files) as advance:
        for path in files:
            result.stats.files += 1
            for post in scan_file(path, flt, result.stats, advance):
                if post.skip_reason or post.id in seen:
                    continue
                seen.add(post.id)
                fh.write(mirror_relpath(post.id, post.ext, cfg.variant).encode() + b"\n")
                result.rsync_entries += 1
                if cfg.limit is not None and result.rsync_entries >= cfg.limit:
                    break
            if cfg.limit is not None and result.rsync_entries >= cfg.limit:
                break
    return result


class _bytes_progress:  # noqa: N801 (a context manager)
    """A rich bar over the metadata bytes read (compressed bytes for compressed files)."""

    def __init__(self, enabled: bool, files: list[Path]):
        self.enabled = enabled
        self.total = sum(p.stat().st_size for p in files)

    def __enter__(self):
        if not self.enabled:
            return lambda n: None

        self._bar = Progress(TextColumn("[bold]scanning dump"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                             TimeRemainingColumn(), console=console)  # fmt: skip
        self._bar.__enter__()
        task = self._bar.add_task("scan", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)
