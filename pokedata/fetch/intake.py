"""The one gate into the raw store: verify a complete temp file, dedup it, rename it into place.

Used by the HTTP downloader and by local importers (folder, Danbooru dump mirror), so every file is
accepted or quarantined for the same reasons and recorded the same way.

Two ways through the gate, with the same checks and the same outcomes:
- :func:`commit_file`: one file at a time (folder import, dump mirror copies): rename, fsync of the
  directory, one ledger transaction;
- :class:`GroupCommit`: many threads (the HTTP downloader): rename at once, then a committer thread makes
  each batch durable with one sync and records its rows in one transaction (see its docstring).

Duplicate handling (by sha256 of the file bytes, across sources and queries):
- same bytes already stored *for the same class*: the row becomes ``skipped`` with
  ``error='duplicate-of:<id>'`` and points at the stored file (nothing written twice);
- same bytes stored *under another class*: the row becomes ``done`` and shares the stored file
  (``meta.shares_file_with``), so the clean/dedup stage can see the label conflict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from pokedata.ledger import DONE, QUARANTINED, SKIPPED, Item, Ledger
from pokedata.store import DatasetDir, display_text, file_digests, file_uri_path, fsync_dir, safe_name
from pokedata.verify import ImageInfo, VerificationError, verify_image_file

# Only API posts are stored as "<post id>": dump copies are "danbooru-dump-<id>" (a post may come from
# both, as different bytes: a sample and an original), so the names never collide.
_DANBOORU_SOURCES = ("danbooru",)
_MD5 = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class Outcome:
    status: str  # done | skipped | quarantined
    error: str | None = None
    path: str | None = None
    nbytes: int = 0


@dataclass(frozen=True)
class Checked:
    """A complete file that passed :func:`check_file`: its digests and what Pillow saw."""

    sha256: str
    md5: str
    size: int
    info: ImageInfo


def check_file(
    path: Path,
    *,
    expected_md5: str | None = None,
    digests: tuple[str, str, int] | None = None,
    source: str | None = None,
) -> Checked:
    """Verify a complete file: the source's md5 (when it gave one), magic bytes, a full Pillow decode.

    ``digests`` = ``(sha256, md5, size)`` computed while the file was written (the downloader hashes as it
    streams), which saves reading the file again. Raises :class:`VerificationError` (``md5-mismatch``,
    ``empty``, ``not-an-image``, ``truncated``, ``undecodable``, ``decompression-bomb``).
    """
    if expected_md5 and not (isinstance(expected_md5, str) and _MD5.fullmatch(expected_md5)):
        # A row planned before records were validated may hold a bad md5 (e.g. the number 12345): the
        # file cannot be checked against it, so it is quarantined, never a crash that blocks every run.
        raise VerificationError(
            "bad-record", f"the source's md5 {str(expected_md5)[:40]!r} is not 32 hex digits"
        )
    sha256, md5, size = digests if digests is not None else file_digests(path)
    if expected_md5 and md5 != expected_md5.lower():
        raise VerificationError("md5-mismatch", f"expected {expected_md5}, got {md5}")
    return Checked(sha256, md5, size, verify_image_file(path, shown_as=source))


def source_label(item: Item) -> str:
    """How a row's file is named in messages: its URL (a file URI becomes its path), else its source id."""
    url = item.url or ""
    if url.startswith("file://"):
        return display_text(str(file_uri_path(url)))
    return url or f"{item.source}:{item.source_id}"


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
    One file, one directory fsync and one ledger transaction per call: for many files from many threads,
    :class:`GroupCommit` records them in batches.
    """
    tmp = Path(tmp)
    try:
        try:
            checked = check_file(tmp, expected_md5=expected_md5, source=source_label(item))
        except VerificationError as exc:
            return _quarantine(ledger, item, str(exc), meta)
        existing = ledger.find_done_by_sha256(checked.sha256)
        if existing is not None and existing.id != item.id and existing.path:
            return _link(ledger, item, existing, meta)
        final = final_path(dataset, item, checked)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        rel = dataset.rel(final)
        ledger.mark_done(item.id, **done_fields(rel, checked, meta))
        return Outcome(DONE, None, rel, checked.size)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def final_path(dataset: DatasetDir, item: Item, checked: Checked) -> Path:
    """``raw/<class>/<stem>.<ext>``, or ``<stem>-<sha256[:10]>`` when another file already has that name."""
    final = dataset.raw_path(item.class_name, item_stem(item), checked.info.ext)
    if final.exists() and file_digests(final)[0] != checked.sha256:
        # Another file already has this name (e.g. the same post id from the API and from a dump, as
        # different variants): never overwrite it, take a name of our own.
        final = dataset.raw_path(
            item.class_name, f"{item_stem(item)}-{checked.sha256[:10]}", checked.info.ext
        )
    return final


def done_fields(rel: str, checked: Checked, meta: dict | None) -> dict[str, Any]:
    """The :meth:`Ledger.mark_done` keywords of a stored file."""
    info = checked.info
    return {
        "path": rel,
        "sha256": checked.sha256,
        "md5": checked.md5,
        "nbytes": checked.size,
        "width": info.width,
        "height": info.height,
        "meta": {**(meta or {}), "format": info.format, "n_frames": info.n_frames},
        "status": DONE,
        "error": None,
    }


def _quarantine(ledger: Ledger, item: Item, reason: str, meta: dict | None) -> Outcome:
    ledger.mark(item.id, QUARANTINED, reason, meta=meta)
    return Outcome(QUARANTINED, reason)


def link_fields(item: Item, stored: Item, meta: dict | None = None) -> tuple[dict[str, Any], Outcome]:
    """The :meth:`Ledger.mark_done` keywords and the outcome of a row that reuses ``stored``'s file."""
    same_class = stored.class_name == item.class_name
    status = SKIPPED if same_class else DONE
    error = f"duplicate-of:{stored.id}" if same_class else None
    fields = {
        "path": stored.path or "",
        "sha256": stored.sha256 or "",
        "md5": stored.md5 or "",
        "nbytes": 0,
        "width": stored.width or 0,
        "height": stored.height or 0,
        "meta": {**(meta or {}), "shares_file_with": stored.id},
        "status": status,
        "error": error,
    }
    return fields, Outcome(status, error, stored.path, 0)


def _link(ledger: Ledger, item: Item, stored: Item, meta: dict | None = None) -> Outcome:
    fields, outcome = link_fields(item, stored, meta)
    ledger.mark_done(item.id, **fields)
    return outcome


@dataclass
class _Entry:
    """One queued ledger update of a :class:`GroupCommit` batch."""

    item_id: int
    fields: dict[str, Any]
    outcome: Outcome
    sha256: str | None = None  # set for a stored file: forgotten by the pending map once recorded
    path: Path | None = None  # set for a stored file: made durable before the batch is recorded


class GroupCommit:
    """Group commit into ``raw/`` for many worker threads: store at once, make durable and record in batches.

    Workers hand in verified files (:meth:`store`, :meth:`adopt`) and rows that reuse a stored file
    (:meth:`link`). Under one lock, a file is deduplicated by sha256 against the ledger *and* against the
    files stored but not yet recorded, renamed into its final name (atomic: a ``kill -9`` never leaves a
    partial file under a final name), and queued. A committer thread takes the queue in batches (up to
    ``batch_size`` rows, or what arrived within ``max_wait`` seconds of the first), makes the batch's files
    and directory entries durable (one ``syncfs`` of their filesystem on Linux; elsewhere an fsync per file
    and per directory), and only then records all the batch's rows in ONE ledger transaction and reports
    their outcomes through ``on_outcome``. So a row is ``done`` only once its file is durable, and a
    duplicate's row is never recorded before the row of the file it points at.

    Killed between a rename and its batch's transaction, a file is under its final name while its row is
    still ``planned``: the next run adopts it (verified again through this gate, not downloaded again).
    After a power cut in that window the orphan may be empty or short; re-verification then rejects it and
    it is downloaded again.

    Use as a context manager (or :meth:`start` / :meth:`close`); :meth:`flush` records what is queued now
    instead of waiting for a full batch. Errors of the committer go to ``on_error`` and stop it.
    """

    def __init__(
        self,
        ledger: Ledger,
        dataset: DatasetDir,
        on_outcome: Callable[[Outcome], None],
        on_error: Callable[[BaseException], None],
        *,
        batch_size: int = 64,
        max_wait: float = 0.5,
    ):
        if batch_size < 1 or max_wait < 0:
            raise ValueError("batch_size must be >= 1 and max_wait >= 0")
        self.ledger, self.dataset = ledger, dataset
        self.on_outcome, self.on_error = on_outcome, on_error
        self.batch_size, self.max_wait = batch_size, max_wait
        self.batches = 0  # how many batches were recorded
        self._lock = threading.Lock()
        self._pending: dict[str, Item] = {}  # sha256 -> stored row whose batch is not recorded yet
        self._dirs: set[Path] = set()  # class directories known to exist
        # Queued rows, taken by the committer. It is woken by the first row of a batch and by the row that
        # fills it (or by flush / close), not by every row: one wake of the committer per batch, not per file.
        self._cond = threading.Condition(threading.Lock())
        self._entries: list[_Entry] = []
        self._flushing = self._stopping = False
        self._thread = threading.Thread(target=self._run, name="poke-commit", daemon=True)
        self._failed = False

    def __enter__(self) -> GroupCommit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> GroupCommit:
        self._thread.start()
        return self

    def flush(self) -> None:
        """Record what is queued now (e.g. when the workers are done) instead of waiting for a batch."""
        with self._cond:
            self._flushing = True
            self._cond.notify()

    def close(self) -> None:
        """Record everything queued, then stop the committer."""
        if self._thread.is_alive():
            with self._cond:
                self._stopping = True
                self._cond.notify()
            self._thread.join()

    # -- worker side --------------------------------------------------------------------------------
    def store(self, item: Item, tmp: Path, checked: Checked, meta: dict | None = None) -> Item:
        """Store the verified temp file ``tmp`` (consumed: renamed or deleted) for ``item``.

        Returns the stored row it points at (itself, or the original it duplicates), which rows sharing
        its URL link to.
        """
        try:
            with self._lock:
                dup = self._duplicate_of(item, checked.sha256)
                if dup is not None:
                    self._put_link(item, dup, meta)
                    return dup
                final = final_path(self.dataset, item, checked)
                if final.parent not in self._dirs:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    self._dirs.add(final.parent)
                os.replace(tmp, final)
                return self._put_stored(item, final, checked, meta)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def adopt(self, item: Item, path: Path, checked: Checked) -> Item:
        """Record ``path``, a verified file already under ``item``'s final name (a lost ledger update)."""
        with self._lock:
            dup = self._duplicate_of(item, checked.sha256)
            if dup is not None:
                if dup.path != path.relative_to(self.dataset.root).as_posix():
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()  # the same bytes are stored already: drop the unreferenced copy
                self._put_link(item, dup, {"adopted": True})
                return dup
            return self._put_stored(item, path, checked, {"adopted": True})

    def link(self, item: Item, stored: Item, meta: dict | None = None) -> None:
        """Record ``item`` as reusing ``stored``'s file (recorded in the same batch as it, or later)."""
        with self._lock:
            self._put_link(item, stored, meta)

    def _duplicate_of(self, item: Item, sha256: str) -> Item | None:
        found = self._pending.get(sha256) or self.ledger.find_done_by_sha256(sha256)
        if found is not None and found.id != item.id and found.path:
            return found
        return None

    def _put_stored(self, item: Item, final: Path, checked: Checked, meta: dict | None) -> Item:
        rel = final.relative_to(self.dataset.root).as_posix()  # final is built from the (resolved) root
        fields = done_fields(rel, checked, meta)
        stored = dataclasses.replace(
            item,
            status=DONE,
            error=None,
            path=rel,
            sha256=checked.sha256,
            md5=checked.md5,
            bytes=checked.size,
            width=checked.info.width,
            height=checked.info.height,
        )
        self._pending[checked.sha256] = stored
        self._enqueue(_Entry(item.id, fields, Outcome(DONE, None, rel, checked.size), checked.sha256, final))
        return stored

    def _put_link(self, item: Item, stored: Item, meta: dict | None) -> None:
        fields, outcome = link_fields(item, stored, meta)
        self._enqueue(_Entry(item.id, fields, outcome))

    def _enqueue(self, entry: _Entry) -> None:
        with self._cond:
            self._entries.append(entry)
            if len(self._entries) == 1 or len(self._entries) >= self.batch_size:
                self._cond.notify()

    # -- committer side -----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch and not self._failed:
                try:
                    self._record(batch)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
                    self._failed = True
                    self.on_error(exc)
            if stop:
                return

    def _next_batch(self) -> tuple[list[_Entry], bool]:
        """Up to ``batch_size`` queued rows, once the batch is full, ``max_wait`` has passed since the
        committer saw its first row, or a flush / close asks; and whether to stop after recording them."""
        with self._cond:
            while not (self._entries or self._flushing or self._stopping):
                self._cond.wait()
            deadline = time.monotonic() + self.max_wait
            while len(self._entries) < self.batch_size and not (self._flushing or self._stopping):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = self._entries[: self.batch_size]
            del self._entries[: self.batch_size]
            if not self._entries:
                self._flushing = False  # everything queued before the flush is in this batch
            return batch, self._stopping and not self._entries

    def _record(self, batch: list[_Entry]) -> None:
        sync_paths(e.path for e in batch if e.path is not None)
        self.ledger.mark_many((e.item_id, e.fields) for e in batch)
        self.batches += 1
        with self._lock:
            for e in batch:
                if e.sha256 is not None and (held := self._pending.get(e.sha256)) and held.id == e.item_id:
                    del self._pending[e.sha256]
        for e in batch:
            self.on_outcome(e.outcome)


def sync_paths(paths: Iterable[Path]) -> None:
    """Make files durable, their data and their names: one ``syncfs`` per filesystem on Linux (where a
    batch of small files costs about one fsync), else an fsync of each file and of each directory."""
    files = list(paths)
    if not files:
        return
    dirs = {p.parent for p in files}
    dirs |= {d.parent for d in dirs}  # a class directory created by this batch is an entry of raw/
    by_device: dict[int, Path] = {}
    for d in dirs:
        with contextlib.suppress(OSError):
            by_device.setdefault(os.stat(d).st_dev, d)
    if by_device and all(_syncfs(d) for d in by_device.values()):
        return
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for d in dirs:
        fsync_dir(d)


def _syncfs(directory: Path) -> bool:
    """``syncfs(2)`` of the filesystem holding ``directory``; False where unavailable or failed."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        return False
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return False
    try:
        return syncfs(fd) == 0
    finally:
        os.close(fd)


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Linux only: syncfs through libc
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


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
