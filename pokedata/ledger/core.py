"""The ledger: a SQLite file in the dataset directory, the single truth about every candidate image.

One row of ``items`` per candidate (a Danbooru post, a search result URL, a file of an imported
folder) *per class label*. Sources only *plan* rows (status ``planned``); the downloader / importer
moves each row to ``done``, ``skipped``, ``failed`` or ``quarantined``, filling in what it learned.
Failures are rows with a status and an error, never exceptions that kill a batch.

Later stages keep their tables in the same file, declared here with the rest of the schema: ``images``
(``poke clean``: one row per clean image, keyed by ``items.id`` and frame, with dedup's marks) and
``hashes`` (the perceptual-hash cache). Their reads and writes live next door, in
:mod:`pokedata.ledger.images` (what clean and dedup write) and :mod:`pokedata.ledger.views` (what
status, the manifest, the report and the demo read, the *kept* rule among them): no SQL outside this
package.

WAL mode: readers in other processes never block the writer; every status change is its own short
transaction, so a ``kill -9`` loses at most the row being worked on, which then stays ``planned``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pokedata.errors import UserError

PLANNED, DONE, SKIPPED, FAILED, QUARANTINED = "planned", "done", "skipped", "failed", "quarantined"
STATUSES = (PLANNED, DONE, SKIPPED, FAILED, QUARANTINED)

SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS items (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,             -- danbooru | danbooru-dump | ddg | folder | ...
    source_id   TEXT NOT NULL,             -- post id, result URL, relative path
    class_name  TEXT NOT NULL DEFAULT '',  -- '' = no class (unlabelled or multi-class)
    url         TEXT,
    status      TEXT NOT NULL DEFAULT 'planned' CHECK (status IN {STATUSES!r}),
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    bytes       INTEGER,
    sha256      TEXT,
    md5         TEXT,
    path        TEXT,                      -- relative to the dataset root, forward slashes
    width       INTEGER,
    height      INTEGER,
    meta        TEXT NOT NULL DEFAULT '{{}}',  -- JSON: tags, rating, score, created_at, page_url, title...
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    UNIQUE (source, source_id, class_name)
);
CREATE INDEX IF NOT EXISTS items_status ON items (status, source);
CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256);
CREATE INDEX IF NOT EXISTS items_source_id ON items (source, source_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Written by `poke clean`: one row per clean image (a still image, or one frame of an animation).
CREATE TABLE IF NOT EXISTS images (
    id           INTEGER PRIMARY KEY,
    item_id      INTEGER NOT NULL REFERENCES items (id),
    frame        INTEGER NOT NULL DEFAULT 0,   -- frame index inside the source file (0 for stills)
    status       TEXT NOT NULL CHECK (status IN ('done', 'quarantined')),
    error        TEXT,                         -- quarantine reason
    path         TEXT,                         -- clean JPG, relative to the dataset root
    width        INTEGER,
    height       INTEGER,
    pixel_sha256 TEXT,                         -- sha256 of the decoded, composited RGB pixels + size
    params       TEXT NOT NULL DEFAULT '{{}}', -- JSON of the clean settings that produced it
    -- dedup marks (`poke clean --dedup`; cleared by `--reset-dedup`); nothing is ever deleted
    dup_of       INTEGER REFERENCES images (id),  -- survivor of this image's duplicate group
    dup_group    INTEGER,                      -- connected-component id (the survivor's images.id)
    dup_kind     TEXT,                         -- exact | near
    conflict     INTEGER NOT NULL DEFAULT 0,   -- 1: the same image is labelled with another class
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    UNIQUE (item_id, frame)
);
CREATE INDEX IF NOT EXISTS images_status ON images (status);
CREATE INDEX IF NOT EXISTS images_sha ON images (pixel_sha256);

-- Perceptual hashes of clean images, cached per method (phash, dhash, whash, ahash, colour).
CREATE TABLE IF NOT EXISTS hashes (
    image_id  INTEGER NOT NULL REFERENCES images (id),
    method    TEXT NOT NULL,
    value     INTEGER NOT NULL,                -- the 64-bit hash as a signed 64-bit integer
    at        REAL,                            -- when it was computed (NULL: by a poke from before this
                                               -- column); stale once images.updated_at is later
    PRIMARY KEY (image_id, method)
);
"""

_COLUMNS = (
    "id", "source", "source_id", "class_name", "url", "status", "error", "attempts", "bytes", "sha256",
    "md5", "path", "width", "height", "meta", "created_at", "updated_at",
)  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """What a source proposes: one image to get, under one class label ('' for none)."""

    source: str
    source_id: str
    class_name: str = ""
    url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    """One ledger row."""

    id: int
    source: str
    source_id: str
    class_name: str
    url: str | None
    status: str
    error: str | None
    attempts: int
    bytes: int | None
    sha256: str | None
    md5: str | None
    path: str | None
    width: int | None
    height: int | None
    meta: dict[str, Any]
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Item:
        values = dict(zip(_COLUMNS, row, strict=True))
        values["meta"] = json.loads(values["meta"] or "{}")
        return cls(**values)


class Ledger:
    """Thread-safe access to ``ledger.sqlite`` (one connection guarded by a lock).

    Use as a context manager or call :meth:`close`. Several processes may open the same ledger
    (WAL + busy timeout); writes are short transactions.
    """

    def __init__(self, path: Path | str, *, readonly: bool = False):
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise UserError(
                f"no ledger at {self.path}", hint="fetch something into this --data directory first"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._check_is_ledger()
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                self._conn.executescript(_SCHEMA)
                self._add_missing_columns()
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as exc:
            if _read_only(self.path) or "readonly" in str(exc).lower():
                raise UserError(
                    f"the dataset {self.path.parent} is read-only: {self.path.name} cannot be written ({exc})",
                    hint="give yourself write permission on the folder and its ledger files (ledger.sqlite, "
                    "-wal, -shm), or copy the dataset somewhere writable",
                ) from exc
            raise UserError(
                f"{self.path} is not a readable poke ledger ({exc})",
                hint="point --data at a dataset directory made by `poke fetch`",
            ) from exc
        self._lock = threading.RLock()

    def _add_missing_columns(self) -> None:
        """Bring a ledger written by an older poke up to date (columns added since; all nullable)."""
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(hashes)")}
        if "at" not in cols:
            try:
                self._conn.execute("ALTER TABLE hashes ADD COLUMN at REAL")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc).lower():
                    raise

    def _check_is_ledger(self) -> None:
        """Refuse an SQLite file that holds tables but no ``items``: another program's database, never
        to be written into (nor queried as a ledger)."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "items" not in tables:
            self._conn.close()
            shown = ", ".join(sorted(tables)[:5])
            raise UserError(
                f"{self.path} is an SQLite database but not a poke ledger (its tables: {shown})",
                hint="point --data at a dataset directory made by `poke fetch`, or at a new folder",
            )

    # -- plumbing ---------------------------------------------------------------------------------
    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """The raw connection, for the table functions of :mod:`pokedata.ledger.images` and
        :mod:`pokedata.ledger.views`. Hold :meth:`lock` (or a :meth:`transaction`) while using it."""
        return self._conn

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), under the lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Item]:
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [Item.from_row(r) for r in rows]

    # -- planning ---------------------------------------------------------------------------------
    def plan(self, candidates: Iterable[Candidate]) -> int:
        """Insert candidates as ``planned``; ones already present (any status) are left alone.

        Returns how many rows were new. Idempotent: planning the same query twice adds nothing.
        """
        now = time.time()
        new = 0
        with self.transaction() as conn:
            for c in candidates:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO items (source, source_id, class_name, url, status, meta, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, 'planned', ?, ?, ?)",
                    (c.source, str(c.source_id), c.class_name or "", c.url, _dumps(c.meta), now, now),
                )
                new += cur.rowcount
        return new

    # -- reading ----------------------------------------------------------------------------------
    def get(self, item_id: int) -> Item:
        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM items WHERE id = ?", (item_id,))
        if not rows:
            raise KeyError(item_id)
        return rows[0]

    def find(self, source: str, source_id: str, class_name: str | None = None) -> list[Item]:
        """Rows for one source id (any class, or the given one)."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM items WHERE source = ? AND source_id = ?"
        params: list[Any] = [source, str(source_id)]
        if class_name is not None:
            sql += " AND class_name = ?"
            params.append(class_name)
        return self._query(sql + " ORDER BY id", params)

    def find_done_by_sha256(self, sha256: str) -> Item | None:
        rows = self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM items WHERE sha256 = ? AND status = 'done' ORDER BY id LIMIT 1",
            (sha256,),
        )
        return rows[0] if rows else None

    def select(
        self,
        *,
        status: str | Sequence[str] | None = None,
        source: str | None = None,
        class_name: str | None = None,
        limit: int | None = None,
    ) -> list[Item]:
        """Rows filtered by status (one or several), source and class, in id order."""
        where, params = [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        if source is not None:
            where.append("source = ?")
            params.append(source)
        if class_name is not None:
            where.append("class_name = ?")
            params.append(class_name)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM items"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._query(sql, params)

    def pending(
        self,
        *,
        source: str | None = None,
        retry_failed: bool = False,
        limit: int | None = None,
        retry_quarantined: bool = False,
    ) -> list[Item]:
        """What a fetch still has to do: ``planned`` rows, plus ``failed`` ones with ``retry_failed`` and
        ``quarantined`` ones with ``retry_quarantined`` (e.g. a big image refused under a lower ``--max-pixels``)."""
        statuses = [PLANNED] + [FAILED] * retry_failed + [QUARANTINED] * retry_quarantined
        return self.select(status=statuses, source=source, limit=limit)

    def counts(
        self, by: Sequence[str] = ("source", "status"), *, source: str | None = None
    ) -> list[tuple[Any, ...]]:
        """``SELECT by..., count(*) GROUP BY by...`` (of one ``source``, when given); ``by`` drawn from
        source, class_name, status."""
        allowed = {"source", "class_name", "status"}
        if not by or not set(by) <= allowed:
            raise ValueError(f"counts by {by!r}: choose from {sorted(allowed)}")
        cols = ", ".join(by)
        where, params = ("WHERE source = ? ", (source,)) if source is not None else ("", ())
        with self._lock:
            return self._conn.execute(
                f"SELECT {cols}, count(*) FROM items {where}GROUP BY {cols} ORDER BY {cols}", params
            ).fetchall()

    def common_errors(self, n: int = 10) -> list[tuple[str, str, int]]:
        """(status, error, count) of the commonest errors."""
        with self._lock:
            return self._conn.execute(
                "SELECT status, error, count(*) AS n FROM items WHERE error IS NOT NULL AND error != ''"
                " GROUP BY status, error ORDER BY n DESC, error LIMIT ?",
                (n,),
            ).fetchall()

    # -- writing ----------------------------------------------------------------------------------
    def mark_done(
        self,
        item_id: int,
        *,
        path: str,
        sha256: str,
        md5: str,
        nbytes: int,
        width: int,
        height: int,
        meta: dict[str, Any] | None = None,
        status: str = DONE,
        error: str | None = None,
    ) -> None:
        """Record a stored file. ``status`` may be ``skipped`` for a row that reuses another row's file."""
        self._update(
            item_id,
            status=status,
            error=error,
            path=path,
            sha256=sha256,
            md5=md5,
            bytes=nbytes,
            width=width,
            height=height,
            meta=meta,
        )

    def mark(
        self, item_id: int, status: str, error: str | None = None, *, meta: dict[str, Any] | None = None
    ) -> None:
        """Set a row's status (``skipped`` / ``failed`` / ``quarantined`` / ``planned``) and error."""
        self._update(item_id, status=status, error=error, meta=meta)

    def bump_attempts(self, item_id: int) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE items SET attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (time.time(), item_id),
            )

    def mark_many(self, updates: Iterable[tuple[int, dict[str, Any]]]) -> int:
        """Apply many row updates in ONE transaction (all or none); returns how many rows.

        Each update is ``(item_id, fields)``, ``fields`` being the keywords of :meth:`mark_done` (a stored
        file; ``status`` defaults to ``done``) or of :meth:`mark` (``status``, ``error``, ``meta``). The
        downloader's group commit records a whole batch of files this way instead of a transaction per row.
        """
        n = 0
        with self.transaction() as conn:
            for item_id, fields in updates:
                cols = dict(fields)
                status = cols.pop("status", DONE)
                meta = cols.pop("meta", None)
                if "nbytes" in cols:
                    cols["bytes"] = cols.pop("nbytes")
                unknown = set(cols) - _MARKABLE
                if unknown:
                    raise ValueError(f"mark_many: unknown fields {sorted(unknown)}")
                _apply_update(conn, item_id, status=status, meta=meta, **cols)
                n += 1
        return n

    def _update(self, item_id: int, *, status: str, meta: dict[str, Any] | None = None, **cols: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r} not in {STATUSES}")
        with self.transaction() as conn:
            _apply_update(conn, item_id, status=status, meta=meta, **cols)

    # -- key/value ----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


_MARKABLE = frozenset({"error", "path", "sha256", "md5", "bytes", "width", "height"})


def _apply_update(
    conn: sqlite3.Connection, item_id: int, *, status: str, meta: dict[str, Any] | None = None, **cols: Any
) -> None:
    """One row's UPDATE inside the caller's transaction; ``meta`` is merged into the stored JSON."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} not in {STATUSES}")
    sets = ["status = ?", "updated_at = ?"]
    params: list[Any] = [status, time.time()]
    for k, v in cols.items():
        sets.append(f"{k} = ?")
        params.append(v)
    if meta:
        (old,) = conn.execute("SELECT meta FROM items WHERE id = ?", (item_id,)).fetchone()
        merged = {**json.loads(old or "{}"), **meta}
        sets.append("meta = ?")
        params.append(_dumps(merged))
    params.append(item_id)
    conn.execute(f"UPDATE items SET {', '.join(sets)} WHERE id = ?", params)


def connect_readonly(path: Path | str) -> sqlite3.Connection:
    """A read-only connection to the ledger file at ``path`` (``mode=ro``: never creates nor writes it, safe
    while another process writes). For readers that load whole tables: the manifest, the report, the demo."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Does the ledger hold table ``name``? (``images`` exists once a poke that knows it opened it for writing.)"""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def _read_only(path: Path) -> bool:
    """True when the ledger (or its folder, where SQLite keeps the -wal/-shm files) cannot be written."""
    folder_ro = not os.access(path.parent, os.W_OK)
    return folder_ro or (path.exists() and not os.access(path, os.W_OK))


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
