"""What the read-only consumers take from the ledger: status, the manifest, the report and the demo.

**The kept rule** is declared once, here (:data:`KEPT_RULES`): an image is *kept* when none of the rules
holds, and the first rule that holds is the reason it is left out. The manifest counts its drops by these
reasons (then applies its own class rules), ``poke status`` and the demo count :func:`kept_count`, the
report marks every image with the ``kept`` column of :func:`report_images`, and the dedup stage reports
the count after writing its marks.

Every function takes an open connection (``ledger.conn`` under ``ledger.lock``, or a
:func:`pokedata.ledger.core.connect_readonly` one); the ones that return a whole table as a DataFrame
import pandas when called (it is heavy: ``poke status`` and ``poke --help`` need none of it).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

KEPT_RULES: tuple[tuple[str, str], ...] = (
    ("quarantined", "im.status != 'done'"),  # clean could not make a usable image of it
    ("item-not-done", "it.status != 'done'"),  # its file is no longer a stored one
    ("duplicate", "im.dup_of IS NOT NULL"),  # dedup folded it into a survivor
    ("label-conflict", "coalesce(im.conflict, 0) != 0"),  # the same image under another class
)
"""(reason, SQL condition over ``images im JOIN items it``) in order: an image is left out for the first
condition that holds, and kept when none does."""
KEPT_REASONS = tuple(reason for reason, _ in KEPT_RULES)

UNKEPT_REASON_SQL = "CASE " + " ".join(f"WHEN {cond} THEN '{r}'" for r, cond in KEPT_RULES) + " END"
"""SQL: the reason an image is left out (NULL when it is kept)."""
KEPT_SQL = f"({UNKEPT_REASON_SQL}) IS NULL"
"""SQL: 1 for a kept image of ``images im JOIN items it``, else 0."""

_FROM_IMAGES = "FROM images im JOIN items it ON it.id = im.item_id"


def kept_count(conn: sqlite3.Connection) -> int:
    """How many images are kept (before the manifest's class rules)."""
    return int(conn.execute(f"SELECT count(*) {_FROM_IMAGES} WHERE {KEPT_SQL}").fetchone()[0])


# -- poke build-manifest -------------------------------------------------------------------------------

_MANIFEST_ROWS = f"""
SELECT im.id AS image_id, im.path, im.width, im.height, im.pixel_sha256 AS sha256, im.frame,
       im.dup_group, it.class_name, it.source, it.source_id, it.url, it.meta,
       CASE WHEN h.value IS NULL THEN '' ELSE printf('%016x', h.value) END AS phash,
       {UNKEPT_REASON_SQL} AS unkept
{_FROM_IMAGES}
LEFT JOIN hashes h ON h.image_id = im.id AND h.method = 'phash'
ORDER BY im.id
"""


def manifest_rows(conn: sqlite3.Connection) -> pd.DataFrame:
    """Every image with its item, cached phash (16 hex digits, '' when none) and ``unkept``: the
    :data:`KEPT_RULES` reason it is left out, None when it is kept."""
    import pandas as pd

    return pd.read_sql_query(_MANIFEST_ROWS, conn)


# -- poke report ---------------------------------------------------------------------------------------

REPORT_IMAGE_COLUMNS = (
    "id", "item_id", "frame", "status", "error", "path", "width", "height", "dup_of", "dup_group", "dup_kind",
    "conflict", "class_name", "source", "source_id", "url", "meta", "raw_path", "item_status", "kept",
)  # fmt: skip
_REPORT_IMAGES = f"""
SELECT im.id, im.item_id, im.frame, im.status, coalesce(im.error, '') AS error, im.path, im.width, im.height,
       im.dup_of, im.dup_group, coalesce(im.dup_kind, '') AS dup_kind, coalesce(im.conflict, 0) AS conflict,
       it.class_name, it.source, it.source_id, it.url, it.meta, it.path AS raw_path, it.status AS item_status,
       {KEPT_SQL} AS kept
{_FROM_IMAGES} ORDER BY im.id
"""
_QUARANTINED_ITEMS = """
SELECT id AS item_id, class_name, source, source_id, url, meta, path AS raw_path, coalesce(error, '') AS error
FROM items WHERE status = 'quarantined' ORDER BY id
"""


def report_images(conn: sqlite3.Connection) -> pd.DataFrame:
    """One row per image (columns :data:`REPORT_IMAGE_COLUMNS`; ``kept`` 1 or 0 by the kept rule)."""
    import pandas as pd

    return pd.read_sql_query(_REPORT_IMAGES, conn)


def quarantined_items(conn: sqlite3.Connection) -> pd.DataFrame:
    """Items quarantined at fetch (no clean image exists for them)."""
    import pandas as pd

    return pd.read_sql_query(_QUARANTINED_ITEMS, conn)


def hash_values(conn: sqlite3.Connection, method: str) -> dict[int, int]:
    """image_id -> cached ``method`` hash (signed 64-bit); {} when the ledger has no hash table."""
    try:
        return dict(conn.execute("SELECT image_id, value FROM hashes WHERE method = ?", (method,)).fetchall())
    except sqlite3.DatabaseError:
        return {}


def last_change(conn: sqlite3.Connection, *, images: bool) -> float:
    """The newest ``updated_at`` of the items (and, with ``images``, of the images: dedup marks touch
    only those rows)."""
    tables = ("items", "images") if images else ("items",)
    return max(
        float(conn.execute(f"SELECT coalesce(max(updated_at), 0) FROM {t}").fetchone()[0]) for t in tables
    )


# -- poke status ---------------------------------------------------------------------------------------


def stored_files(conn: sqlite3.Connection) -> tuple[int, int]:
    """(distinct stored files, their bytes) of the done items."""
    files, nbytes = conn.execute(
        "SELECT count(DISTINCT path), coalesce(sum(bytes), 0) FROM items WHERE status = 'done' AND path"
        " IS NOT NULL"
    ).fetchone()
    return int(files), int(nbytes)


def error_reasons(conn: sqlite3.Connection, top: int) -> list[tuple[str, str, int, str]]:
    """The ``top`` commonest (status, reason code, count, one full error) of the items; the reason code
    is the error up to its first ':'."""
    return conn.execute(
        "SELECT status, CASE WHEN instr(error, ':') > 0 THEN substr(error, 1, instr(error, ':') - 1)"
        " ELSE error END AS reason, count(*) AS n, max(error) FROM items"
        " WHERE error IS NOT NULL AND error != '' GROUP BY status, reason ORDER BY n DESC, reason"
        " LIMIT ?",
        (top,),
    ).fetchall()


def retried_items(conn: sqlite3.Connection) -> int:
    """Items that needed more than one attempt."""
    return int(conn.execute("SELECT count(*) FROM items WHERE attempts > 1").fetchone()[0])


def image_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Clean images by status."""
    return dict(conn.execute("SELECT status, count(*) FROM images GROUP BY status").fetchall())


# -- heavy-removal warnings (pokedata.removals) --------------------------------------------------------


def clean_outcomes(conn: sqlite3.Connection) -> list[tuple[str, int, str | None, str | None]]:
    """Per cleaned item: (class_name, 1 when a frame is done else 0, its first quarantine error, params)."""
    return conn.execute(
        "SELECT it.class_name, max(im.status = 'done'),"
        " min(CASE WHEN im.status = 'quarantined' THEN im.error END), min(im.params)"
        f" {_FROM_IMAGES} GROUP BY im.item_id"
    ).fetchall()


def dedup_outcomes(conn: sqlite3.Connection) -> list[tuple[str, int, int, int]]:
    """Per class, over its done images: (class_name, images, marked duplicates, conflict-marked others)."""
    return conn.execute(
        "SELECT it.class_name, count(*), sum(im.dup_of IS NOT NULL), sum(im.dup_of IS NULL AND im.conflict != 0)"
        f" {_FROM_IMAGES} WHERE im.status = 'done' GROUP BY it.class_name"
    ).fetchall()


# -- poke demo -----------------------------------------------------------------------------------------


def source_items(conn: sqlite3.Connection, source: str) -> list[tuple[str, str | None, str]]:
    """(status, error, class_name) of every item of one source."""
    return conn.execute("SELECT status, error, class_name FROM items WHERE source = ?", (source,)).fetchall()


def image_outcomes(conn: sqlite3.Connection) -> list[tuple[str, str | None]]:
    """(status, error) of every clean image."""
    return conn.execute("SELECT status, error FROM images").fetchall()


def first_frames(conn: sqlite3.Connection, source: str) -> dict[str, dict[str, Any]]:
    """source_id -> its item and first-frame image (status, error, dedup marks) for one source; the image
    fields are None where clean made no image."""
    sql = """
        SELECT it.source_id, it.id, it.status, it.error, im.id, im.status, im.error, im.dup_of, im.dup_group,
               im.dup_kind, im.conflict
        FROM items it LEFT JOIN images im ON im.item_id = it.id AND im.frame = 0
        WHERE it.source = ?
    """
    out: dict[str, dict[str, Any]] = {}
    for sid, item, st, err, iid, ist, ierr, dup_of, group, kind, conflict in conn.execute(sql, (source,)):
        out[sid] = {
            "item": item, "item_status": st, "item_error": err, "image": iid, "image_status": ist, "image_error": ierr,
            "dup_of": dup_of, "dup_group": group, "dup_kind": kind, "conflict": bool(conflict),
        }  # fmt: skip
    return out
