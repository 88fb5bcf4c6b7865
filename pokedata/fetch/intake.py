"""The one gate into the raw store: verify a complete temp file, dedup it, rename it into place.

Used by the HTTP downloader and by local importers (folder, Danbooru dump mirror), so every file is
accepted or quarantined for the same reasons and recorded the same way.

Duplicate handling (by sha256 of the file bytes, across sources and queries):
- same bytes already stored *for the same class*: the row becomes ``skipped`` with
  ``error='duplicate-of:<id>'`` and points at the stored file (nothing written twice);
- same bytes stored *under another class*: the row becomes ``done`` and shares the stored file
  (``meta.shares_file_with``), so the clean/dedup stage can see the label conflict.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pokedata.ledger import DONE, QUARANTINED, SKIPPED, Item, Ledger
from pokedata.store import DatasetDir, file_digests, fsync_dir, safe_name
from pokedata.verify import VerificationError, verify_image_file

# Only API posts are stored as "<post id>": dump copies are "danbooru-dump-<id>" (a post may come from
# both, as different bytes: a sample and an original), so the names never collide.
_DANBOORU_SOURCES = ("danbooru",)


@dataclass(frozen=True)
class Outcome:
    status: str  # done | skipped | quarantined
    error: str | None = None
    path: str | None = None
    nbytes: int = 0


def item_stem(item: Item) -> str:
    """File stem under ``raw/<class>/``: the post id for Danbooru, else ``<source>-<id or hash>``."""
    if item.source in _DANBOORU_SOURCES:
        return safe_name(item.source_id)
    sid = item.source_id
    if len(sid) <= 80 and "://" not in sid:
        return f"{item.source}-{safe_name(sid)}"
    return f"{item.source}-{hashlib.sha1(sid.encode('utf-8')).hexdigest()[:16]}"


def reuse_existing(ledger: Ledger, item: Item) -> Outcome | None:
    """If the same source id is already stored (under any class), record this row without fetching."""
    for other in ledger.find(item.source, item.source_id):
        if other.id != item.id and other.status == DONE and other.path:
            return _link(ledger, item, other)
    return None


def commit_file(
    ledger: Ledger,
    dataset: DatasetDir,
    item: Item,
    tmp: Path,
    *,
    expected_md5: str | None = None,
    meta: dict | None = None,
) -> Outcome:
    """Verify ``tmp`` (a complete file inside the dataset dir), then store or reject it.

    ``tmp`` is always consumed: renamed into ``raw/`` or deleted. The ledger row is updated in all cases.
    """
    tmp = Path(tmp)
    try:
        sha256, md5, size = file_digests(tmp)
        if expected_md5 and md5 != expected_md5.lower():
            return _quarantine(ledger, item, f"md5-mismatch: expected {expected_md5}, got {md5}", meta)
        try:
            info = verify_image_file(tmp)
        except VerificationError as exc:
            return _quarantine(ledger, item, str(exc), meta)
        existing = ledger.find_done_by_sha256(sha256)
        if existing is not None and existing.id != item.id and existing.path:
            return _link(ledger, item, existing, meta)
        final = dataset.raw_path(item.class_name, item_stem(item), info.ext)
        if final.exists() and file_digests(final)[0] != sha256:
            # Another file already has this name (e.g. the same post id from the API and from a dump, as
            # different variants): never overwrite it, take a name of our own.
            final = dataset.raw_path(item.class_name, f"{item_stem(item)}-{sha256[:10]}", info.ext)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        rel = dataset.rel(final)
        ledger.mark_done(
            item.id,
            path=rel,
            sha256=sha256,
            md5=md5,
            nbytes=size,
            width=info.width,
            height=info.height,
            meta={**(meta or {}), "format": info.format, "n_frames": info.n_frames},
        )
        return Outcome(DONE, None, rel, size)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _quarantine(ledger: Ledger, item: Item, reason: str, meta: dict | None) -> Outcome:
    ledger.mark(item.id, QUARANTINED, reason, meta=meta)
    return Outcome(QUARANTINED, reason)


def _link(ledger: Ledger, item: Item, stored: Item, meta: dict | None = None) -> Outcome:
    same_class = stored.class_name == item.class_name
    status = SKIPPED if same_class else DONE
    error = f"duplicate-of:{stored.id}" if same_class else None
    extra = {**(meta or {}), "shares_file_with": stored.id}
    ledger.mark_done(
        item.id,
        path=stored.path or "",
        sha256=stored.sha256 or "",
        md5=stored.md5 or "",
        nbytes=0,
        width=stored.width or 0,
        height=stored.height or 0,
        meta=extra,
        status=status,
        error=error,
    )
    return Outcome(status, error, stored.path, 0)


def temp_path(dataset: DatasetDir, item: Item) -> Path:
    """A fresh temp file path for ``item`` in ``DIR/tmp`` (same filesystem as ``raw/``, so rename is atomic)."""
    dataset.tmp_dir.mkdir(parents=True, exist_ok=True)
    return dataset.tmp_dir / f".tmp-{item.id}-{os.getpid()}-{os.urandom(4).hex()}"


@dataclass
class FetchSummary:
    """Counts of one fetch run, by outcome status; printed as a table at the end of every fetch."""

    source: str
    planned: int = 0  # new rows planned by this run
    done: int = 0
    skipped: int = 0
    failed: int = 0
    quarantined: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    errors: dict[str, int] | None = None  # error text (reason code) -> count

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        self.nbytes += outcome.nbytes
        if outcome.error:
            self.errors = self.errors or {}
            key = outcome.error.split(":", 1)[0]
            self.errors[key] = self.errors.get(key, 0) + 1

    def add_failure(self, reason: str) -> None:
        self.add(Outcome("failed", reason))

    def table(self):
        """A rich Table of the counts and the commonest reasons."""
        from rich.table import Table

        t = Table(title=f"fetch {self.source}: summary")
        t.add_column("what")
        t.add_column("count", justify="right")
        for key in ("planned", "done", "skipped", "failed", "quarantined"):
            t.add_row(key, str(getattr(self, key)))
        t.add_row("MB", f"{self.nbytes / 1e6:.1f}")
        rate = (self.done / self.seconds) if self.seconds else 0.0
        t.add_row("files/s", f"{rate:.1f}")
        for reason, n in sorted((self.errors or {}).items(), key=lambda kv: -kv[1])[:8]:
            t.add_row(f"  reason: {reason}", str(n))
        return t
