"""The dedup stage: hash clean images (cached), group exact + near duplicates, mark the ledger.

Near means **structure and colour**: the perceptual hash within ``threshold`` bits and the colour
signature (:mod:`pokedata.dedup.colour`) within ``colour_tolerance`` (``colour=False`` turns the colour
test off). Groups are **bounded** (:func:`pokedata.dedup.groups.group_images`): leader clustering in
keep-best order, so every dropped image lies within the threshold of its own survivor, measured
between the two directly.

Marks (``images`` table) after a run:

- ``dup_of``: the survivor (a kept image of the same class) of every dropped duplicate, with
  ``dup_kind`` ``exact`` (same decoded pixels as the survivor) or ``near``;
- ``dup_group``: the survivor's ``images.id`` on the survivor and its duplicates (and, with
  ``--conflicts report``, shared by kept images of a conflict pair), so a manifest keeps them in one split;
- ``conflict = 1``: the image (or an image of its class near it) is a near-identical copy of an image
  under another class label: per pair, never whole groups (``drop``: both sides, ``keep-first``: the
  side the survivor policy ranks lower, ``report``: nothing; the pairs are listed in the report).

What a manifest keeps is the ledger's one kept rule (:data:`pokedata.ledger.views.KEPT_RULES`): a clean
image of a stored file, neither a marked duplicate nor in a label conflict.
Nothing is deleted, and every run first clears the previous marks in the same transaction as it
writes the new ones, so a run with another ``threshold`` gives the same result as a fresh one.
The hashes and colour signatures are cached in the ledger's ``hashes`` table (``method`` =
``phash`` ... or ``colour``), so a rerun decodes nothing; a ledger from before the colour signature
gets its signatures computed once, by the next run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pokedata.dedup.colour import COLOUR, colour_distance
from pokedata.dedup.config import DedupConfig
from pokedata.dedup.groups import components, group_images, pick_survivors, policy_order, source_rank
from pokedata.dedup.hashing import hamming, hash_files, hash_version, to_signed
from pokedata.dedup.report import write_report
from pokedata.ledger import Ledger, images, views
from pokedata.log import console
from pokedata.removals import removals, warning_lines
from pokedata.store import DatasetDir

_HASHED_AT = "dedup.hashed_at."  # meta key prefix: start time of the last completed hashing pass
HASH_FAILED = "hash-failed"
"""Prefix of the ``images.error`` of a clean image dedup could not read (it is quarantined)."""


@dataclass
class DedupSummary:
    images: int = 0  # done images considered
    hashed: int = 0  # perceptual hashes computed this run (the rest came from the cache)
    colour_hashed: int = 0  # colour signatures computed this run
    failed: int = 0  # clean files that could not be read (quarantined)
    exact_groups: int = 0  # groups whose members all have the same pixels as their survivor
    near_groups: int = 0  # groups with at least one near (not pixel-identical) member
    marked_duplicates: int = 0  # images with dup_of set
    max_distance: int = 0  # largest Hamming distance of a dropped image to its survivor (<= threshold)
    conflicts: int = 0  # cross-class near-identical pairs (of distinct hash/colour/class keys)
    conflict_images: int = 0  # images marked conflict = 1
    kept: int = 0  # images the ledger's kept rule keeps after the marks (pokedata.ledger.views)
    threshold: int = 0
    conflict_threshold: int = 0
    colour_tolerance: int | None = None  # None: the colour test was off
    method: str = "phash"
    conflict_mode: str = "drop"
    seconds: float = 0.0
    report: str | None = None  # DIR/reports/dedup.json
    sheets: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # "removed more than half" lines (pokedata.removals)

    def as_dict(self) -> dict:
        return asdict(self)

    def table(self) -> Table:
        colour = "colour off" if self.colour_tolerance is None else f"colour within {self.colour_tolerance}"
        t = Table(
            title=f"dedup ({self.method}, threshold {self.threshold} bits, {colour}, across classes "
            f"{self.conflict_threshold}, conflicts {self.conflict_mode})"
        )
        t.add_column("what")
        t.add_column("count", justify="right")
        rows = [
            ("images", self.images),
            ("hashed now", self.hashed),
            ("colour signatures now", self.colour_hashed),
            ("unreadable (quarantined)", self.failed),
            ("exact groups", self.exact_groups),
            ("near groups", self.near_groups),
            ("marked duplicates", self.marked_duplicates),
            ("largest distance to a survivor (bits)", self.max_distance),
            ("conflict pairs (across classes)", self.conflicts),
            ("conflict images", self.conflict_images),
            ("kept", self.kept),
        ]
        for name, value in rows:
            t.add_row(name, f"{value:,}")
        t.add_row("seconds", f"{self.seconds:.1f}")
        if self.report:
            t.add_row("report", self.report)
        return t


@dataclass
class Marks:
    """Aligned (N,) arrays of the marks to write; ``dup_of``/``dup_group`` are -1 where unset."""

    dup_of: np.ndarray
    dup_group: np.ndarray
    dup_kind: np.ndarray  # object: None | 'exact' | 'near'
    conflict: np.ndarray  # bool


def reset_dedup(data: Path) -> int:
    """Clear every dedup mark (dup_of, dup_group, dup_kind, conflict); returns the rows changed.

    The hash cache is kept (it depends only on the clean files).
    """
    ds = DatasetDir.at(data).require()
    with Ledger(ds.ledger_path) as ledger, ledger.transaction() as conn:
        return images.reset_marks(conn)


def run_dedup(cfg: DedupConfig) -> DedupSummary:
    """Hash what is missing, group duplicates, write marks, report and contact sheets."""
    cfg.validated()
    t0 = time.perf_counter()
    ds = DatasetDir.at(cfg.data).require()
    summary = DedupSummary(
        method=cfg.method,
        threshold=int(cfg.threshold),
        conflict_threshold=int(cfg.conflict_threshold),
        conflict_mode=cfg.conflicts,
        colour_tolerance=cfg.colour_tolerance if cfg.colour else None,
    )
    with Ledger(ds.ledger_path) as ledger:
        for method in cfg.cached_methods():
            hashed, failed = _hash_missing(ledger, ds.root, cfg, method)
            if method == COLOUR:
                summary.colour_hashed = hashed
            else:
                summary.hashed = hashed
            summary.failed += failed
        rows = _load(ledger, cfg.method, colour=cfg.colour)
        summary.images = len(rows["id"])
        result = _group(rows, cfg)
        marks = result.marks
        _write_marks(ledger, rows["id"], marks, cfg)
        with ledger.lock:
            summary.warnings = warning_lines(removals(ledger.conn, "dedup"))
            summary.kept = views.kept_count(ledger.conn)
    summary.exact_groups, summary.near_groups = result.exact_groups, result.near_groups
    summary.marked_duplicates = int((marks.dup_of >= 0).sum())
    dropped = marks.dup_of >= 0
    summary.max_distance = int(result.distance[dropped].max()) if dropped.any() else 0
    summary.conflicts = len(result.conflict_pairs)
    summary.conflict_images = int(marks.conflict.sum())
    summary.seconds = time.perf_counter() - t0
    report, sheets = write_report(ds, cfg, rows, result, summary)
    summary.report, summary.sheets = str(report), [str(s) for s in sheets]
    summary.seconds = time.perf_counter() - t0
    return summary


# -- hashing into the cache ----------------------------------------------------------------------------


def _hash_missing(ledger: Ledger, root: Path, cfg: DedupConfig, method: str) -> tuple[int, int]:
    """Hash every done image without a valid cached ``method`` value; returns (hashed, failed).

    A cached hash is stale when its image row was rewritten (``images.updated_at``, e.g. by
    ``poke clean --force``) after the hash was computed (``hashes.at``; for a hash from before that
    column: after the last completed hashing pass of this method began); such hashes are dropped
    first. Dedup marks never touch ``updated_at``, so marking does not invalidate. Hashes the clean
    stage stored with the row (``poke clean --dedup``) carry the row's own time, so they are valid.
    """
    started = time.time()
    key = f"{_HASHED_AT}{method}"
    watermark = ledger.get_meta(key)
    with ledger.transaction() as conn:
        images.retire_old_hashes(conn, method, hash_version(method))
        images.drop_stale_hashes(conn, method, float("inf") if watermark is None else float(watermark))
    counts = _hash_todo(ledger, root, cfg, method)
    ledger.set_meta(key, repr(started))  # only after a completed pass (a killed one resumes from the cache)
    return counts


def _hash_todo(ledger: Ledger, root: Path, cfg: DedupConfig, method: str) -> tuple[int, int]:
    started = time.time()  # each hash's ``at``: before its file is read (a rewrite during the pass is later)
    with ledger.lock:
        todo = images.unhashed_images(ledger.conn, method)
    if not todo:
        return 0, 0
    ids = [r[0] for r in todo]
    paths = [root / (r[1] or "") for r in todo]
    counts = [0, 0]

    def save(start: int, values: np.ndarray, ok: np.ndarray, errors: list[tuple[int, str]]) -> None:
        signed = to_signed(values)
        now = time.time()
        rows = [(ids[start + i], method, int(signed[i]), started) for i in np.nonzero(ok)[0]]
        bad = [(f"{HASH_FAILED}: {msg}"[:500], now, ids[i]) for i, msg in errors]
        with ledger.transaction() as conn:
            images.put_hashes(conn, rows)
            images.quarantine_images(conn, bad)
        counts[0] += len(rows)
        counts[1] += len(bad)
        if progress is not None:
            progress.advance(task, len(values))

    progress = task = None
    if cfg.progress:
        progress = Progress(
            TextColumn(f"hashing ({method})"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        )  # fmt: skip
        task = progress.add_task("hash", total=len(paths))
        progress.start()
    try:
        hash_files(paths, method, workers=cfg.workers, fast=cfg.fast, on_chunk=save)
    finally:
        if progress is not None:
            progress.stop()
    return counts[0], counts[1]


def _load(ledger: Ledger, method: str, *, colour: bool = True) -> dict[str, np.ndarray]:
    """Done images with their hash (and colour signature), class and source, in id order, as arrays."""
    with ledger.lock:
        rows = images.dedup_candidates(ledger.conn, method, COLOUR if colour else None)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 10
    return {
        "id": np.asarray(cols[0], dtype=np.int64),
        "path": np.asarray(cols[1], dtype=object),
        "width": np.asarray(cols[2], dtype=np.int64),
        "height": np.asarray(cols[3], dtype=np.int64),
        "sha": np.asarray(cols[4], dtype=object),
        "class_name": np.asarray(cols[5], dtype=object),
        "source": np.asarray(cols[6], dtype=object),
        "source_id": np.asarray(cols[7], dtype=object),
        "hash": np.asarray(cols[8], dtype=np.int64).view(np.uint64),
        "colour": np.asarray(cols[9], dtype=np.int64).view(np.uint64),
    }


# -- grouping ------------------------------------------------------------------------------------------


@dataclass
class GroupResult:
    survivor: np.ndarray  # (N,) row index of the image's survivor (itself when kept or conflict-marked)
    distance: np.ndarray  # (N,) Hamming bits to the survivor (<= threshold)
    colour_distance: np.ndarray  # (N,) colour-signature distance to the survivor (0 when colour is off)
    marks: Marks
    conflict_pairs: np.ndarray  # (m, 2) rows of the cross-class near-identical pairs
    conflict_marked: list[np.ndarray]  # (m,) rows marked because of each pair
    exact_groups: int
    near_groups: int
    pairs: int  # near pairs among distinct hash values


def _group(rows: dict[str, np.ndarray], cfg: DedupConfig) -> GroupResult:
    n = len(rows["id"])
    idx = np.arange(n)
    if n == 0:
        none = np.zeros(0, dtype=np.int64)
        marks = Marks(none, none, np.zeros(0, dtype=object), np.zeros(0, dtype=bool))
        return GroupResult(none, none, none, marks, np.zeros((0, 2), dtype=np.int64), [], 0, 0, 0)
    class_code = np.unique(rows["class_name"].astype(str), return_inverse=True)[1].reshape(-1)
    area = rows["width"] * rows["height"]
    ranks = {s: source_rank(s, cfg.source_priority) for s in set(rows["source"].tolist())}
    rank = np.asarray([ranks[s] for s in rows["source"]], dtype=np.int64)
    g = group_images(
        rows["hash"],
        rows["colour"] if cfg.colour else None,
        class_code,
        policy_order(area, rank, rows["id"]),
        threshold=int(cfg.threshold),
        conflict_threshold=int(cfg.conflict_threshold),
        colour_tolerance=int(cfg.colour_tolerance) if cfg.colour else None,
        conflicts=cfg.conflicts,
    )
    survivor = g.survivor
    is_dup = survivor != idx
    sha = rows["sha"]
    exact = is_dup & (sha == sha[survivor]) & (sha != None)  # noqa: E711
    dup_kind = np.full(n, None, dtype=object)
    dup_kind[is_dup] = np.where(exact[is_dup], "exact", "near")
    # the group key: the survivor, shared by its duplicates; kept images of a reported conflict pair
    # (nothing marked) are joined so they land in one split
    head = survivor.copy()
    if len(g.conflict_pairs):
        links = survivor[g.conflict_pairs]
        links = links[~g.conflict[links].any(axis=1)]
        if len(links):
            comp = components(n, links)
            head = pick_survivors(comp, area, rank, rows["id"])[survivor]
    grouped = np.bincount(head, minlength=n)[head] > 1
    marks = Marks(
        dup_of=np.where(is_dup, rows["id"][survivor], -1),
        dup_group=np.where(grouped, rows["id"][head], -1),
        dup_kind=dup_kind,
        conflict=g.conflict,
    )
    heads = np.unique(survivor[is_dup])
    near_heads = np.unique(survivor[is_dup & ~exact])
    colour_d = (
        colour_distance(rows["colour"], rows["colour"][survivor])
        if cfg.colour
        else np.zeros(n, dtype=np.int64)
    )
    return GroupResult(
        survivor=survivor,
        distance=hamming(rows["hash"], rows["hash"][survivor]),
        colour_distance=colour_d,
        marks=marks,
        conflict_pairs=g.conflict_pairs,
        conflict_marked=g.conflict_marked,
        exact_groups=len(heads) - len(near_heads),
        near_groups=len(near_heads),
        pairs=g.near_pairs,
    )


def _write_marks(ledger: Ledger, ids: np.ndarray, marks: Marks, cfg: DedupConfig) -> None:
    """Clear the old marks and write the new ones in one transaction (all or nothing)."""
    now = time.time()
    rows = [
        (
            int(marks.dup_of[i]) if marks.dup_of[i] >= 0 else None,
            int(marks.dup_group[i]) if marks.dup_group[i] >= 0 else None,
            marks.dup_kind[i],
            int(marks.conflict[i]),
            int(ids[i]),
        )
        for i in np.nonzero((marks.dup_group >= 0) | marks.conflict)[0]
    ]
    settings = {"method": cfg.method, "threshold": cfg.threshold, "conflict_threshold": cfg.conflict_threshold,
                "conflicts": cfg.conflicts, "at": now, "colour": cfg.colour,
                "colour_tolerance": cfg.colour_tolerance,
                "source_priority": list(cfg.source_priority)}  # fmt: skip
    with ledger.transaction() as conn:
        images.write_marks(conn, rows, settings)
