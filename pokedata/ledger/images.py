"""The ``images`` and ``hashes`` tables: what ``poke clean`` and ``poke clean --dedup`` write and read back.

Functions over an open connection. The writers run inside the caller's transaction (``with
ledger.transaction() as conn``), so a stage decides what is all-or-nothing (clean: one batch of worker
results; dedup: clearing the old marks and writing the new ones); the readers take ``ledger.conn`` under
``ledger.lock``. What a manifest keeps is not decided here: see :mod:`pokedata.ledger.views`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

DEDUP_SETTINGS_KEY = "dedup"
"""``meta`` key of the settings of the dedup run whose marks the ``images`` table holds."""

_MARKED = "dup_of IS NOT NULL OR dup_group IS NOT NULL OR dup_kind IS NOT NULL OR conflict != 0"

# -- clean ---------------------------------------------------------------------------------------------


def existing_images(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """``(item_id, id, frame, status, path, params, pixel_sha256)`` of every image, by item and frame."""
    return conn.execute(
        "SELECT item_id, id, frame, status, path, params, pixel_sha256 FROM images ORDER BY item_id, frame"
    ).fetchall()


def upsert_image(
    conn: sqlite3.Connection,
    item_id: int,
    frame: int,
    *,
    status: str,
    error: str | None,
    path: str | None,
    width: int | None,
    height: int | None,
    pixel_sha256: str | None,
    params: str,
    at: float,
) -> None:
    """Write one frame's row (a new row, or the same ``(item_id, frame)`` rewritten, dedup marks and
    ``created_at`` kept)."""
    conn.execute(
        "INSERT INTO images (item_id, frame, status, error, path, width, height, pixel_sha256, params,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (item_id, frame) DO UPDATE SET status = excluded.status, error = excluded.error,"
        " path = excluded.path, width = excluded.width, height = excluded.height,"
        " pixel_sha256 = excluded.pixel_sha256, params = excluded.params, updated_at = excluded.updated_at",
        (item_id, frame, status, error, path, width, height, pixel_sha256, params, at, at),
    )


def image_id(conn: sqlite3.Connection, item_id: int, frame: int) -> int:
    """The ``images.id`` of one frame of one item (KeyError when there is no such row)."""
    row = conn.execute("SELECT id FROM images WHERE item_id = ? AND frame = ?", (item_id, frame)).fetchone()
    if row is None:
        raise KeyError((item_id, frame))
    return int(row[0])


def delete_image(conn: sqlite3.Connection, image_id: int) -> None:
    """Remove an image row and its cached hashes (a frame a rerun no longer produces)."""
    drop_hashes(conn, image_id)
    conn.execute("DELETE FROM images WHERE id = ?", (image_id,))


# -- the hash cache ------------------------------------------------------------------------------------


def put_hashes(conn: sqlite3.Connection, rows: Iterable[tuple[int, str, int, float]]) -> None:
    """Cache ``(image_id, method, value, at)`` rows (``value`` a signed 64-bit int), replacing old ones."""
    conn.executemany("INSERT OR REPLACE INTO hashes (image_id, method, value, at) VALUES (?, ?, ?, ?)", rows)


def drop_hashes(conn: sqlite3.Connection, image_id: int) -> None:
    """Forget every cached hash of one image (its pixels changed)."""
    conn.execute("DELETE FROM hashes WHERE image_id = ?", (image_id,))


def retire_old_hashes(conn: sqlite3.Connection, method: str, version: int) -> int:
    """Forget every cached ``method`` value computed by an older version of that hash, once: the ledger's
    meta ``hashes.version.<method>`` says which version its values are (none: from before versions, so
    version 1). Call it before storing new values of ``method``; returns how many were dropped."""
    key = f"hashes.version.{method}"
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    stored = row[0] if row is not None else "1"
    dropped = 0
    if stored != str(version):
        dropped = conn.execute("DELETE FROM hashes WHERE method = ?", (method,)).rowcount
    if stored != str(version) or row is None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(version)))
    return dropped


def drop_stale_hashes(conn: sqlite3.Connection, method: str, watermark: float) -> int:
    """Forget the ``method`` hashes of images rewritten after the hash was computed (``hashes.at``, or
    ``watermark`` for a hash from before that column); returns how many."""
    return conn.execute(
        "DELETE FROM hashes WHERE method = ? AND EXISTS (SELECT 1 FROM images im"
        " WHERE im.id = hashes.image_id AND im.updated_at > COALESCE(hashes.at, ?))",
        (method, watermark),
    ).rowcount


def unhashed_images(conn: sqlite3.Connection, method: str) -> list[tuple[int, str | None]]:
    """``(id, path)`` of the done images without a cached ``method`` hash, in id order."""
    return conn.execute(
        "SELECT im.id, im.path FROM images im LEFT JOIN hashes h ON h.image_id = im.id AND h.method = ?"
        " WHERE im.status = 'done' AND h.image_id IS NULL ORDER BY im.id",
        (method,),
    ).fetchall()


def quarantine_images(conn: sqlite3.Connection, rows: Iterable[tuple[str, float, int]]) -> None:
    """Mark images ``quarantined`` from ``(error, at, image_id)`` rows (e.g. a clean JPG that cannot be
    hashed)."""
    conn.executemany("UPDATE images SET status = 'quarantined', error = ?, updated_at = ? WHERE id = ?", rows)


# -- dedup ---------------------------------------------------------------------------------------------


def dedup_candidates(conn: sqlite3.Connection, method: str, colour: str | None) -> list[tuple[Any, ...]]:
    """The done images with their cached ``method`` hash (and ``colour`` signature, unless None), in id
    order: ``(id, path, width, height, pixel_sha256, class_name, source, source_id, hash, colour)``
    (width/height 0 when unknown, colour 0 without a colour method)."""
    join = " JOIN hashes c ON c.image_id = im.id AND c.method = ?" if colour else ""
    return conn.execute(
        "SELECT im.id, im.path, COALESCE(im.width, 0), COALESCE(im.height, 0), im.pixel_sha256,"
        f" it.class_name, it.source, it.source_id, h.value, {'c.value' if colour else '0'}"
        " FROM images im JOIN items it ON it.id = im.item_id"
        f" JOIN hashes h ON h.image_id = im.id AND h.method = ?{join}"
        " WHERE im.status = 'done' ORDER BY im.id",
        (method, colour) if colour else (method,),
    ).fetchall()


def write_marks(
    conn: sqlite3.Connection,
    rows: Sequence[tuple[int | None, int | None, str | None, int, int]],
    settings: dict[str, Any],
) -> None:
    """Replace every dedup mark by ``(dup_of, dup_group, dup_kind, conflict, image_id)`` rows and record
    the run's ``settings``. Call it inside one transaction: old marks never mix with new ones."""
    clear_marks(conn)
    conn.executemany(
        "UPDATE images SET dup_of = ?, dup_group = ?, dup_kind = ?, conflict = ? WHERE id = ?", rows
    )
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (DEDUP_SETTINGS_KEY, json.dumps(settings))
    )


def clear_marks(conn: sqlite3.Connection) -> int:
    """Clear dup_of, dup_group, dup_kind and conflict everywhere; returns the rows that had a mark."""
    return conn.execute(
        f"UPDATE images SET dup_of = NULL, dup_group = NULL, dup_kind = NULL, conflict = 0 WHERE {_MARKED}"
    ).rowcount


def reset_marks(conn: sqlite3.Connection) -> int:
    """:func:`clear_marks` and forget the dedup settings (no dedup has run); returns the rows changed."""
    n = clear_marks(conn)
    conn.execute("DELETE FROM meta WHERE key = ?", (DEDUP_SETTINGS_KEY,))
    return n


def dedup_settings(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The settings of the dedup run whose marks the table holds; None when there is none."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (DEDUP_SETTINGS_KEY,)).fetchone()
    return json.loads(row[0]) if row else None
