"""The clean stage (``poke clean``): every stored file of the ledger -> rows of the ``images`` table.

Reads ``items`` with status ``done`` (each row under its own class: a file shared by two classes is
cleaned once per class, which is how dedup sees the label conflict; ``skipped`` rows produce nothing),
farms the files out to worker processes in chunks (:mod:`pokedata.clean.worker`), and records one
``images`` row per frame in the parent (one short transaction per chunk).

Idempotent and resumable: an item whose rows carry the current parameters (``images.params``) and whose
JPGs exist is not touched again; a killed run leaves at most ``.tmp-*`` files (removed at the next start)
and JPGs without rows (rewritten). Changed parameters or ``force`` redo an item; rows of frames a new run
no longer produces are removed with their files. When a rerun changes or removes images that dedup had
already marked, the stale dedup marks are cleared (run ``--dedup`` again).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pokedata.clean.config import PARAMS_VERSION, CleanConfig
from pokedata.clean.worker import ItemResult, OutputError, Settings, Task, clean_chunk, init_worker
from pokedata.dedup.hashing import hash_version
from pokedata.dedup.run import reset_dedup
from pokedata.errors import UserError
from pokedata.ledger import DONE, Item, Ledger, images
from pokedata.log import console
from pokedata.removals import removals, warning_lines
from pokedata.store import DatasetDir, remove_stale_temps, safe_name
from pokedata.verify import pixel_limit


@dataclass
class CleanSummary:
    items: int = 0  # items considered (status done, with a class unless include_multiclass)
    up_to_date: int = 0  # items left alone (rows with the current params and files present)
    processed: int = 0  # items cleaned by this run
    images: int = 0  # clean JPGs written by this run
    quarantined: int = 0  # rows quarantined by this run
    removed: int = 0  # stale rows (frames no longer selected) removed
    multiclass_left_out: int = 0
    reasons: Counter = field(default_factory=Counter)  # quarantine reason -> count (this run)
    dedup_marks_cleared: int = 0
    workers: int = 1
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # "removed more than half" lines (pokedata.removals)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["reasons"] = dict(self.reasons)
        return d

    def table(self) -> Table:
        t = Table(title="clean: summary")
        t.add_column("what")
        t.add_column("count", justify="right")
        for label, value in (
            ("items", self.items),
            ("up to date (left alone)", self.up_to_date),
            ("cleaned now", self.processed),
            ("JPGs written", self.images),
            ("quarantined", self.quarantined),
            ("stale rows removed", self.removed),
            ("multi-class rows left out", self.multiclass_left_out),
        ):
            t.add_row(label, f"{value:,}")
        for reason, n in self.reasons.most_common(8):
            t.add_row(f"  reason: {reason}", f"{n:,}")
        if self.dedup_marks_cleared:
            t.add_row("dedup marks cleared (rerun --dedup)", f"{self.dedup_marks_cleared:,}")
        rate = self.processed / self.seconds if self.seconds else 0.0
        t.add_row("items/s", f"{rate:.1f} ({self.workers} workers)")
        return t


@dataclass(frozen=True)
class _Existing:
    id: int
    frame: int
    status: str
    path: str | None
    params: str
    pixel_sha256: str | None


def run_clean(cfg: CleanConfig) -> CleanSummary:
    """Clean every done item that is not up to date; returns the summary."""
    settings = cfg.settings()
    t0 = time.perf_counter()
    ds = DatasetDir.at(cfg.data).require()
    with ds.writer_lock("clean"):
        return _run_clean(cfg, ds, settings, t0)


def _run_clean(cfg: CleanConfig, ds: DatasetDir, settings: Settings, t0: float) -> CleanSummary:
    ds.clean_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(ds.clean_dir)
    summary = CleanSummary(workers=cfg.workers or os.cpu_count() or 1)
    with Ledger(ds.ledger_path) as ledger:
        items, summary.multiclass_left_out = _select_items(ledger, cfg.include_multiclass)
        summary.items = len(items)
        existing = _existing_rows(ledger)
        stems = assign_stems(items)
        todo: list[Task] = []
        params_of: dict[int, str] = {}
        for item in items:
            params = _params_json(settings, item)
            if not cfg.force and _up_to_date(ds, existing.get(item.id, ()), params):
                summary.up_to_date += 1
                continue
            params_of[item.id] = params
            todo.append(
                Task(
                    item.id,
                    ds.abs(item.path or ""),
                    ds.root,
                    item.class_name,
                    stems[item.id],
                    settings,
                    tuple(cfg.hashes),
                    _weight(ds, item),
                )
            )
        recorder = _Recorder(ledger, ds, existing, params_of, summary)
        try:
            for results in _run_workers(todo, cfg, summary.workers):
                recorder.record(results)
        except OutputError as exc:
            raise UserError(
                f"clean stopped: {exc}",
                hint=f"free disk space or fix permissions under {ds.clean_dir}, then rerun",
            ) from exc
        summary.warnings = _warnings(ledger, "clean")
    summary.seconds = time.perf_counter() - t0
    return summary


def _warnings(ledger: Ledger, stage: str) -> list[str]:
    with ledger.lock:
        return warning_lines(removals(ledger.conn, stage))


def _select_items(ledger: Ledger, include_multiclass: bool) -> tuple[list[Item], int]:
    items = [it for it in ledger.select(status=DONE) if it.path]
    multi = [it for it in items if not it.class_name]
    if include_multiclass:
        return items, 0
    return [it for it in items if it.class_name], len(multi)


def _existing_rows(ledger: Ledger) -> dict[int, list[_Existing]]:
    with ledger.lock:
        rows = images.existing_images(ledger.conn)
    out: dict[int, list[_Existing]] = {}
    for item_id, *rest in rows:
        out.setdefault(item_id, []).append(_Existing(*rest))
    return out


def _params_json(settings: Settings, item: Item) -> str:
    params = {**settings.as_params(), "version": PARAMS_VERSION, "src_sha256": item.sha256 or ""}
    return json.dumps(params, sort_keys=True)


def _weight(ds: DatasetDir, item: Item) -> int:
    """The scheduler's cost estimate of an item: its raw file's bytes (from the ledger, else a stat)."""
    if item.bytes:
        return int(item.bytes)
    try:
        return ds.abs(item.path or "").stat().st_size
    except OSError:
        return 1  # missing: quarantined at once by the worker


def _up_to_date(ds: DatasetDir, rows: Sequence[_Existing], params: str) -> bool:
    if not rows:
        return False
    for r in rows:
        if r.params != params:
            return False
        if r.status == "done" and not _nonempty_file(ds.abs(r.path) if r.path else None):
            return False
    return True


def _nonempty_file(path: Path | None) -> bool:
    try:
        return path is not None and path.stat().st_size > 0
    except OSError:
        return False


def assign_stems(items: Sequence[Item]) -> dict[int, str]:
    """Item id -> clean file stem: the raw file's stem, with ``-i<id>`` where two items would clash.

    Deterministic (items in id order), so reruns reuse the same names. A row sharing another class's
    file keeps that file's stem under its own class folder.
    """

    taken: dict[tuple[str, str], int] = {}
    stems: dict[int, str] = {}
    for item in sorted(items, key=lambda it: it.id):
        stem = safe_name(PurePosixPath(item.path or f"item-{item.id}").stem)
        key = (safe_name(item.class_name) if item.class_name else "", stem.lower())
        if key in taken and taken[key] != item.id:
            stem = f"{stem}-i{item.id}"
        taken.setdefault(key, item.id)
        stems[item.id] = stem
    return stems


# -- running the workers -------------------------------------------------------------------------------


def _chunks(tasks: list[Task], size: int) -> Iterator[list[Task]]:
    for i in range(0, len(tasks), size):
        yield tasks[i : i + size]


def plan_chunks(weights: Sequence[int], workers: int, max_items: int) -> list[list[int]]:
    """Indices of the items, grouped into the chunks sent to ``workers`` processes, in dispatch order.

    Heaviest first (``weights``: the raw files' bytes, a cost estimate), each chunk closed once it
    holds ``1 / (2 * workers)`` of the weight still unplanned or ``max_items`` items: chunks shrink as
    the work runs out, so the last ones are single items and every worker stays busy to the end
    (chunks are taken by whichever worker is free). Every index appears exactly once.
    """
    share = 2 * max(1, workers)
    order = sorted(range(len(weights)), key=lambda i: (-max(1, weights[i]), i))
    remaining = sum(max(1, w) for w in weights)
    chunks: list[list[int]] = []
    current: list[int] = []
    current_weight = 0
    for i in order:
        current.append(i)
        current_weight += max(1, weights[i])
        if len(current) >= max_items or current_weight * share >= remaining:
            chunks.append(current)
            remaining -= current_weight
            current, current_weight = [], 0
    if current:
        chunks.append(current)
    return chunks


def _run_workers(tasks: list[Task], cfg: CleanConfig, workers: int) -> Iterator[list[ItemResult]]:
    """Yield result batches as they finish, with a rich progress bar over items."""
    with _progress(cfg.progress, len(tasks)) as advance:
        if workers <= 1 or len(tasks) <= 1:
            with pixel_limit(cfg.max_pixels):  # in this process: restored afterwards
                for chunk in _chunks(tasks, cfg.chunk_size):
                    results = clean_chunk(chunk)
                    advance(len(results))
                    yield results
            return
        plan = plan_chunks([t.weight for t in tasks], workers, cfg.chunk_size)
        pending = iter([[tasks[i] for i in chunk] for chunk in plan])
        in_flight: set[Future] = set()
        pool = ProcessPoolExecutor(
            max_workers=workers, initializer=init_worker, initargs=(cfg.max_pixels, os.getpid())
        )
        try:
            for chunk in pending:  # fill the pipeline: a few chunks per worker, not the whole list
                in_flight.add(pool.submit(clean_chunk, chunk))
                if len(in_flight) >= workers * 3:
                    break
            while in_flight:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in done:
                    results = fut.result()
                    advance(len(results))
                    yield results
                    nxt = next(pending, None)
                    if nxt is not None:
                        in_flight.add(pool.submit(clean_chunk, nxt))
        except BaseException:
            # Ctrl-C or an error: stop now. Chunks in flight are dropped (their JPGs were published
            # atomically; without rows they are rewritten by the next run), what was recorded stays.
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """End a worker pool at once: cancel what has not started, terminate the workers."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(timeout=5)


@contextlib.contextmanager
def _progress(enabled: bool, total: int):
    if not enabled or total == 0:
        yield lambda n: None
        return

    with Progress(
        TextColumn("cleaning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("clean", total=total)
        yield lambda n: bar.advance(task, n)


# -- recording results ---------------------------------------------------------------------------------


class _Recorder:
    """Writes worker results to the ledger (parent process only), one transaction per batch."""

    def __init__(
        self,
        ledger: Ledger,
        ds: DatasetDir,
        existing: dict[int, list[_Existing]],
        params_of: dict[int, str],
        summary: CleanSummary,
    ):
        self.ledger, self.ds, self.existing, self.params_of, self.summary = (
            ledger,
            ds,
            existing,
            params_of,
            summary,
        )
        self.marks_cleared = False
        self.versions_checked: set[str] = set()

    def record(self, results: list[ItemResult]) -> None:
        stale_files: list[Path] = []
        now = time.time()
        invalidates = any(self._invalidates(r) for r in results)
        if invalidates and not self.marks_cleared:
            self.summary.dedup_marks_cleared = reset_dedup(self.ds.root)
            self.marks_cleared = True
        with self.ledger.transaction() as conn:
            for res in results:
                old = {r.frame: r for r in self.existing.get(res.item_id, ())}
                new_frames = {f.frame for f in res.frames}
                params = self.params_of[res.item_id]
                for f in res.frames:
                    rel = self.ds.rel(f.path) if f.path else None
                    prev = old.get(f.frame)
                    if prev is not None and (
                        prev.pixel_sha256 != f.pixel_sha256 or prev.status != f.status or f.hashes
                    ):
                        images.drop_hashes(conn, prev.id)
                    if prev is not None and prev.path and prev.path != rel:
                        stale_files.append(self.ds.abs(prev.path))
                    images.upsert_image(
                        conn, res.item_id, f.frame, status=f.status, error=f.error, path=rel, width=f.width,
                        height=f.height, pixel_sha256=f.pixel_sha256, params=params, at=now,
                    )  # fmt: skip
                    if f.hashes:  # computed by the worker from the written JPG: dedup finds them cached
                        for method, _ in f.hashes:
                            if method not in self.versions_checked:  # older values go, once per run
                                images.retire_old_hashes(conn, method, hash_version(method))
                                self.versions_checked.add(method)
                        image_id = images.image_id(conn, res.item_id, f.frame)
                        images.put_hashes(
                            conn, [(image_id, method, value, now) for method, value in f.hashes]
                        )
                    if f.status == "done":
                        self.summary.images += 1
                    else:
                        self.summary.quarantined += 1
                        self.summary.reasons[(f.error or "unknown").split(":", 1)[0]] += 1
                for frame, prev in old.items():
                    if frame in new_frames:
                        continue
                    images.delete_image(conn, prev.id)
                    if prev.path:
                        stale_files.append(self.ds.abs(prev.path))
                    self.summary.removed += 1
                self.summary.processed += 1
        for p in stale_files:  # after the commit: a crash before it leaves the old state intact
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def _invalidates(self, res: ItemResult) -> bool:
        """True when the result changes or removes an image that dedup may have marked."""
        old = {r.frame: r for r in self.existing.get(res.item_id, ())}
        if not old:
            return False
        new = {f.frame: f for f in res.frames}
        if set(old) - set(new):
            return True
        return any(
            old[k].pixel_sha256 != f.pixel_sha256 or old[k].status != f.status
            for k, f in new.items()
            if k in old
        )
