"""The downloader shared by every HTTP source: drain ``planned`` ledger rows into verified files.

For each pending row, in this order:

1. :func:`~pokedata.fetch.intake.reuse_existing`: the same source id is already stored -> no request;
2. a complete file already under the row's final name (a run killed between the rename and the ledger
   update) is adopted through the intake gate -> no request;
3. rows sharing one URL are fetched once: the first downloads, the others share its result;
4. the body is streamed into ``DIR/tmp/.tmp-*`` with the size cap enforced while streaming, the
   Content-Type and the magic bytes of the first chunk checked (an HTML page served as ``.jpg`` is
   quarantined before the rest is read) and sha256 + md5 computed on the way; then
   :func:`~pokedata.fetch.intake.check_file` (md5, Pillow full decode) and
   :class:`~pokedata.fetch.intake.GroupCommit` (sha256 dedup, atomic rename at once; a committer thread
   syncs each batch of files once and then records the batch's rows in one ledger transaction).

Outcomes: ``done`` / ``skipped`` (reused or duplicate) / ``quarantined`` (bad bytes: not an image,
too large, md5 mismatch, undecodable) / ``failed`` (the network gave up after the client's retries; the
attempt counter is bumped and ``--retry-failed`` tries again). Nothing partial is ever under ``raw/``,
and a row is ``done`` only once its file is durable.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path

import urllib3
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pokedata.fetch.http import FetchError, PoliteClient, body_error, host_of
from pokedata.fetch.intake import (
    FetchSummary,
    GroupCommit,
    Outcome,
    _link,
    check_file,
    item_stem,
    reuse_existing,
    source_label,
    temp_path,
)
from pokedata.ledger import DONE, FAILED, QUARANTINED, SKIPPED, Item, Ledger
from pokedata.log import console
from pokedata.store import UNLABELLED, DatasetDir, remove_stale_temps, safe_name
from pokedata.verify import SNIFF_BYTES, VerificationError, looks_like_html, sniff_image_type

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
QUARANTINE_REASONS = frozenset({"too-large", "bad-content-type", "not-an-image", "empty"})
"""Download errors about the bytes themselves: the row is quarantined, not failed."""

BATCH_SIZE = 64
"""Rows per group commit (one sync of the files, then one ledger transaction)."""
BATCH_WAIT = 0.5
"""Seconds a group commit waits for more rows after its first one."""

_HEX = frozenset("0123456789abcdefABCDEF")
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "application/javascript")


@dataclass(frozen=True)
class Streamed:
    """What :func:`stream_to_file` learned about a body it stored."""

    nbytes: int
    content_type: str
    final_url: str
    sha256: str = ""
    md5: str = ""

    @property
    def digests(self) -> tuple[str, str, int]:
        """``(sha256, md5, size)``, as :func:`pokedata.store.file_digests` gives them."""
        return self.sha256, self.md5, self.nbytes


@dataclass(frozen=True)
class _Failure:
    """An exception of a worker or of the committer, passed to the main thread to re-raise."""

    exc: BaseException


def download_pending(
    ledger: Ledger,
    dataset: DatasetDir,
    client: PoliteClient,
    *,
    source: str | None = None,
    retry_failed: bool = False,
    limit: int | None = None,
    progress: bool = True,
    summary: FetchSummary | None = None,
    retry_quarantined: bool = False,
) -> FetchSummary:
    """Download every pending row of ``source`` (all sources when None); returns the updated summary."""
    summary = summary if summary is not None else FetchSummary(source=source or "all")
    started = time.monotonic()
    stale = remove_stale_temps(dataset.tmp_dir)
    if stale:
        log.info("removed %d temp files left by an interrupted run", stale)
    items = ledger.pending(
        source=source, retry_failed=retry_failed, limit=limit, retry_quarantined=retry_quarantined
    )
    if not items:
        return summary
    groups = _schedule(items)
    results: queue.SimpleQueue = queue.SimpleQueue()  # Outcome | _Failure, from workers and committer
    store = GroupCommit(
        ledger,
        dataset,
        results.put,
        lambda exc: results.put(_Failure(exc)),
        batch_size=BATCH_SIZE,
        max_wait=BATCH_WAIT,
    )
    job = _Job(ledger, dataset, client, _orphans(dataset, items), store, results.put)

    left = [len(groups)]
    left_lock = threading.Lock()

    def group_done(fut: Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            results.put(_Failure(fut.exception()))
        with left_lock:
            left[0] -= 1
            if left[0] == 0:
                store.flush()  # the workers are done: record the last rows now

    with _progress_bar(progress, len(items), summary.source) as bar:
        store.start()
        pool = ThreadPoolExecutor(max_workers=client.cfg.global_concurrency, thread_name_prefix="poke-dl")
        try:
            for group in groups:
                pool.submit(job.run_group, group).add_done_callback(group_done)
            remaining = len(items)
            while remaining:
                with contextlib.suppress(queue.Empty):
                    got = results.get(timeout=0.5)
                    if isinstance(got, _Failure):
                        raise got.exc
                    summary.add(got)
                    bar(got, summary)
                    remaining -= 1
        except BaseException:
            client.close()  # wake every sleeping retry so the workers end at once
            pool.shutdown(wait=True, cancel_futures=True)
            store.close()  # record what was stored before the error (or leave it to orphan adoption)
            raise
        pool.shutdown(wait=True)
        store.close()
    summary.seconds += time.monotonic() - started
    return summary


class _Job:
    """State shared by the worker threads of one :func:`download_pending` call."""

    def __init__(
        self,
        ledger: Ledger,
        dataset: DatasetDir,
        client: PoliteClient,
        orphans: dict[Path, Path],
        store: GroupCommit,
        emit: Callable[[Outcome], None],
    ):
        self.ledger, self.dataset, self.client, self.orphans = ledger, dataset, client, orphans
        self.store, self.emit = store, emit

    def run_group(self, group: list[Item]) -> None:
        """Rows sharing one URL: fetch for the first, let the others share its result.

        Outcomes already recorded are emitted here; rows queued on the group commit are emitted by it.
        """
        first, rest = group[0], group[1:]
        result = self.run_one(first)
        if isinstance(result, Outcome):
            self.emit(result)
        for item in rest:
            reused = reuse_existing(self.ledger, item)
            if reused is not None:
                self.emit(reused)
            elif isinstance(result, Outcome):
                self.emit(self._share(item, first, result))
            else:  # the first row's file is queued: link to the row it is stored as
                self.store.link(item, result, {"same_url_as": first.id})

    def _share(self, item: Item, first: Item, outcome: Outcome) -> Outcome:
        if outcome.status in (DONE, SKIPPED) and outcome.path:
            stored = self.ledger.get(first.id)
            if stored.sha256 and stored.status in (DONE, SKIPPED):
                if stored.status == SKIPPED:  # the first row itself reused another row's file
                    stored = self.ledger.find_done_by_sha256(stored.sha256) or stored
                return _link(self.ledger, item, stored, {"same_url_as": first.id})
        if outcome.status == FAILED:
            self.ledger.bump_attempts(item.id)
        self.ledger.mark(item.id, outcome.status, outcome.error, meta={"same_url_as": first.id})
        return Outcome(outcome.status, outcome.error)

    def run_one(self, item: Item) -> Outcome | Item:
        """A recorded :class:`Outcome`, or the stored row (queued on the group commit) the item points at."""
        reused = reuse_existing(self.ledger, item)
        if reused is not None:
            return reused
        orphan = self.orphans.get(_stem_key(self.dataset, item))
        if orphan is not None:
            adopted = self._adopt(item, orphan)
            if adopted is not None:
                return adopted
        if not item.url:
            return self._fail(item, "no-url: the source gave no file URL")
        md5 = item.meta.get("md5")
        if md5 and not (isinstance(md5, str) and len(md5) == 32 and all(c in _HEX for c in md5)):
            # planned by an older version that did not validate records: skipped, never a crash
            self.ledger.mark(item.id, SKIPPED, "bad-record:md5")
            return Outcome(SKIPPED, "bad-record:md5")
        tmp = temp_path(self.dataset, item)
        meta: dict[str, object] = {}
        try:
            got = stream_to_file(self.client, item.url, tmp)
            meta["content_type"] = got.content_type
            if got.final_url != item.url:
                meta["final_url"] = got.final_url
            checked = check_file(
                tmp, expected_md5=item.meta.get("md5"), digests=got.digests, source=source_label(item)
            )
            return self.store.store(item, tmp, checked, meta)
        except FetchError as exc:
            if self.client.closed:  # stopped (Ctrl-C, an error elsewhere): the row stays planned
                raise
            if exc.reason in QUARANTINE_REASONS:
                self.ledger.mark(item.id, QUARANTINED, str(exc))
                return Outcome(QUARANTINED, str(exc))
            return self._fail(item, str(exc))
        except VerificationError as exc:
            self.ledger.mark(item.id, QUARANTINED, str(exc), meta=meta)
            return Outcome(QUARANTINED, str(exc))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _fail(self, item: Item, error: str) -> Outcome:
        self.ledger.bump_attempts(item.id)
        self.ledger.mark(item.id, FAILED, error)
        return Outcome(FAILED, error)

    def _adopt(self, item: Item, path: Path) -> Item | None:
        """Record a complete file already under the row's final name (its ledger update was lost)."""
        try:
            checked = check_file(path, expected_md5=item.meta.get("md5"))
        except VerificationError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # not a good copy (e.g. cut short by a power cut): download it again
            return None
        except OSError:
            return None
        return self.store.adopt(item, path, checked)


def stream_to_file(client: PoliteClient, url: str, dest: Path) -> Streamed:
    """Stream ``url`` into ``dest`` (created or truncated), hashing it; raise :class:`FetchError`.

    The size cap (``client.cfg.max_bytes``) is checked against Content-Length and while streaming; the
    Content-Type and the first bytes must say "image". A body cut short or stalled is retried (the
    whole request), sharing the client's ``retries`` budget. From the first answer on, the file has
    ``client.cfg.file_deadline`` seconds in all (a watchdog cuts a dripping body): else ``timeout``. ``dest`` is closed but not fsync'ed: the
    group commit makes a whole batch of files durable at once before it records them.
    """
    cfg = client.cfg
    deadline: float | None = None  # from the first answer on (time waiting for a host slot is not counted)
    last: FetchError | None = None
    for attempt in range(cfg.retries):
        if attempt:
            client.wait_backoff(attempt - 1)
        if deadline is not None and time.monotonic() >= deadline:
            raise _deadline_error(cfg.file_deadline)
        with client.request(url) as resp:
            if deadline is None and cfg.file_deadline:
                deadline = time.monotonic() + cfg.file_deadline
            watch = client.watch(resp, deadline) if deadline is not None else contextlib.nullcontext()
            with watch:
                try:
                    got = _write_body(resp, dest, cfg.max_bytes)
                except FetchError as exc:
                    if getattr(watch, "expired", False):
                        raise _deadline_error(cfg.file_deadline) from exc
                    if not exc.retryable:
                        raise
                    last = exc
                    continue
                if getattr(watch, "expired", False) or client.closed:  # cut short: the end is not the end
                    raise _deadline_error(cfg.file_deadline) if not client.closed else FetchError("cancelled")
                return got
    assert last is not None
    raise FetchError(last.reason, f"{last.detail} (gave up after {cfg.retries} tries)")


def _deadline_error(seconds: float | None) -> FetchError:
    return FetchError("timeout", f"the file did not arrive within --file-timeout {seconds:g}s")


def _write_body(resp, dest: Path, max_bytes: int) -> Streamed:
    content_type = (resp.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise FetchError("too-large", f"Content-Length {length} over the {max_bytes}-byte cap")
    if content_type.startswith(_TEXT_TYPES) or content_type.endswith(("+json", "+xml")):
        raise FetchError("bad-content-type", f"served as {content_type}, not an image")
    nbytes = 0
    head = b""
    checked = False
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    try:
        with open(dest, "wb") as fh:
            chunks = resp.iter_content(CHUNK)
            for chunk in chunks:
                if not checked:
                    head += chunk[: SNIFF_BYTES - len(head)]
                    if len(head) >= SNIFF_BYTES:
                        _check_head(head, content_type)
                        checked = True
                nbytes += len(chunk)
                if nbytes > max_bytes:
                    raise FetchError("too-large", f"body over the {max_bytes}-byte cap")
                fh.write(chunk)
                sha256.update(chunk)
                md5.update(chunk)
            if not checked:
                if not head:
                    raise FetchError("empty", "the server sent zero bytes")
                _check_head(head, content_type)
    except urllib3.exceptions.HTTPError as exc:
        raise body_error(exc) from exc  # truncated, reset or stalled; local disk errors propagate
    return Streamed(nbytes, content_type, resp.url, sha256.hexdigest(), md5.hexdigest())


def _check_head(head: bytes, content_type: str) -> None:
    if sniff_image_type(head) is None:
        what = "an HTML/text page" if looks_like_html(head) else f"unknown bytes {head[:8]!r}"
        raise FetchError("not-an-image", f"{what} (Content-Type {content_type or 'missing'})")


def _stem_key(dataset: DatasetDir, item: Item) -> Path:
    cls_dir = safe_name(item.class_name) if item.class_name else UNLABELLED
    return dataset.raw_dir / cls_dir / item_stem(item)


def _orphans(dataset: DatasetDir, items: list[Item]) -> dict[Path, Path]:
    """Files under ``raw/`` named like a pending row (renamed in place, ledger update lost to a kill)."""
    wanted = {_stem_key(dataset, it) for it in items}
    found: dict[Path, Path] = {}
    for cls_dir in {k.parent for k in wanted}:
        if not cls_dir.is_dir():
            continue
        for entry in os.scandir(cls_dir):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            key = cls_dir / entry.name.rsplit(".", 1)[0]
            if key in wanted:
                found[key] = Path(entry.path)
    return found


def _schedule(items: list[Item]) -> list[list[Item]]:
    """Group rows by URL, then interleave the groups across hosts so no host hogs the workers."""
    by_url: dict[str, list[Item]] = {}
    for it in items:
        by_url.setdefault(it.url or f"\0no-url-{it.id}", []).append(it)
    by_host: dict[str, list[list[Item]]] = defaultdict(list)
    for url, group in by_url.items():
        by_host[host_of(url)].append(group)
    rounds = zip_longest(*by_host.values())
    return [g for g in chain.from_iterable(rounds) if g is not None]


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, source: str) -> Iterator:
    """A rich bar: done / skipped / failed / quarantined, files/s and MB/s. Yields ``advance(outcome, s)``."""
    if not enabled:
        yield lambda outcome, summary: None
        return

    started = time.monotonic()
    progress = Progress(
        TextColumn(f"[bold]fetch {source}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} done[/] {task.fields[skipped]} skipped "
                   "[red]{task.fields[failed]} failed[/] [yellow]{task.fields[quarantined]} quarantined[/]"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )  # fmt: skip
    counts = {"done": 0, "skipped": 0, "failed": 0, "quarantined": 0}
    nbytes = [0]
    with progress:
        task = progress.add_task("download", total=total, rate="", **counts)

        def advance(outcome: Outcome, summary: FetchSummary) -> None:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            nbytes[0] += outcome.nbytes
            secs = max(time.monotonic() - started, 1e-6)
            rate = f"{sum(counts.values()) / secs:.1f} files/s {nbytes[0] / secs / 1e6:.2f} MB/s"
            progress.update(task, advance=1, rate=rate, **counts)

        yield advance
