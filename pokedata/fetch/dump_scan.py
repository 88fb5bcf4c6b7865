"""Reading Danbooru20xx metadata: formats, exact-match tag filters and the streaming scan.

Used by :mod:`pokedata.fetch.dump` (dump mode of ``poke fetch danbooru``); see there for the whole story.
Files are read line by line (``*.json``, ``*.jsonl``, the extension-less ``2019000000000000``-style
files, optionally ``.gz`` / ``.xz`` / ``.zst``), never whole. Both formats are normalised to
:class:`DumpPost`: 2019/2020 (``tags`` a list of ``{"id", "name", "category"}``, values often strings,
category ``"4"`` = character) and 2021 (API-shaped ``tag_string`` / ``tag_string_character``).

Filters (:class:`TagFilter`) use exact tag matching, never substring matching; a byte-level pre-check
(:meth:`TagFilter.may_match`) skips lines that cannot pass before any JSON is parsed.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import lzma
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pokedata.errors import UserError
from pokedata.fetch.danbooru import NON_IMAGE_EXTS, post_id, valid_ext, valid_md5

log = logging.getLogger(__name__)

DUMP_VARIANTS = {"original": "original", "sample": "512px", "512px": "512px"}
_SUFFIXES = (".json", ".jsonl", ".ndjson")
_COMPRESSED = (".gz", ".xz", ".zst")
_DIGITS = re.compile(r"^\d+$")
_RATING_RE = re.compile(rb'"rating"\s*:\s*"([a-z])"')
_TAG_STRING_RE = re.compile(rb'"tag_string"\s*:\s*"([^"]*)"')
_NAME_RE = re.compile(rb'"name"\s*:\s*"([^"]*)"')
_TOKEN_THRESHOLD = 12  # more substring needles than this: pull the line's tag names out instead


# -- filters -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagFilter:
    """Exact-match tag filters in the Danbooru-Dataset-Maker's vocabulary, plus ratings."""

    include_and: frozenset[str] = frozenset()  # every one must be present
    include_or: frozenset[str] = frozenset()  # at least one must be present (when not empty)
    exclude_or: frozenset[str] = frozenset()  # none may be present
    exclude_and: frozenset[str] = frozenset()  # not all of these together
    ratings: frozenset[str] = frozenset()  # the dump's own letters (s/q/e; 2021+: g/s/q/e); empty = any

    def __post_init__(self) -> None:
        # JSON-escaped forms of the tags a line must mention, for the byte-level pre-check.
        object.__setattr__(self, "_and_bytes", [_needles(t) for t in self.include_and])
        object.__setattr__(self, "_or_bytes", [n for t in self.include_or for n in _needles(t)])
        # Raw UTF-8 tag names, for the token pre-check (many tags, e.g. a whole catalog).
        object.__setattr__(self, "_and_tok", frozenset(t.encode() for t in self.include_and))
        object.__setattr__(self, "_or_tok", frozenset(t.encode() for t in self.include_or))
        object.__setattr__(self, "_excl_tok", frozenset(t.encode() for t in self.exclude_or))
        n_needles = len(self._or_bytes) + sum(len(n) for n in self._and_bytes)  # type: ignore[attr-defined]
        object.__setattr__(self, "_use_tokens", n_needles > _TOKEN_THRESHOLD)

    def accepts(self, tags: set[str] | frozenset[str], rating: str) -> bool:
        if not self.include_and <= tags:
            return False
        if self.include_or and self.include_or.isdisjoint(tags):
            return False
        if not self.exclude_or.isdisjoint(tags):
            return False
        if self.exclude_and and self.exclude_and <= tags:
            return False
        return not self.ratings or rating in self.ratings

    def may_match(self, line: bytes) -> bool:
        """False only when the raw line cannot pass; no JSON is parsed. True means: parse it and check.

        Few include tags: each must occur in the bytes (substring search, ASCII-escaped or raw). Many
        (a whole catalog): the line's tag names are pulled out with a regex and checked as a set, excludes
        too (lines holding a backslash escape fall back to the substring search). Then the ``"rating"``.
        """
        tokens = line_tags(line) if self._use_tokens else None  # type: ignore[attr-defined]
        if tokens is not None:
            if not self._and_tok <= tokens:  # type: ignore[attr-defined]
                return False
            if self._or_tok and self._or_tok.isdisjoint(tokens):  # type: ignore[attr-defined]
                return False
            if not self._excl_tok.isdisjoint(tokens):  # type: ignore[attr-defined]
                return False
        else:
            for needles in self._and_bytes:  # type: ignore[attr-defined]
                if not any(n in line for n in needles):
                    return False
            ors = self._or_bytes  # type: ignore[attr-defined]
            if ors and not any(n in line for n in ors):
                return False
        if self.ratings:
            m = _RATING_RE.search(line)
            if m is not None and m.group(1).decode() not in self.ratings:
                return False
        return True

    @property
    def key(self) -> str:
        return json.dumps([sorted(s) for s in (self.include_and, self.include_or, self.exclude_or,
                                                self.exclude_and, self.ratings)], separators=(",", ":"))  # fmt: skip


def line_tags(line: bytes) -> frozenset[bytes] | None:
    """Tag names of a raw metadata line without parsing it: ``tag_string`` (2021) or every ``"name"``
    (2019/2020, where only tags have names). None when unsure (an escape in the line, or neither found)."""
    if b"\\" in line:
        return None
    if b'"tag_string"' in line:
        m = _TAG_STRING_RE.search(line)
        if m is not None:
            return frozenset(m.group(1).split())
    names = _NAME_RE.findall(line)
    return frozenset(names) if names else None


def _needles(tag: str) -> tuple[bytes, ...]:
    """The bytes a JSON line holding ``tag`` must contain (ASCII-escaped or raw UTF-8)."""
    escaped = json.dumps(tag)[1:-1]
    raw = json.dumps(tag, ensure_ascii=False)[1:-1]
    return tuple({escaped.encode(), raw.encode("utf-8")})


# -- records -----------------------------------------------------------------------------------------
@dataclass
class DumpPost:
    """One metadata record, whatever the dump's format."""

    id: int
    md5: str
    ext: str
    rating: str
    tags: set[str]
    characters: list[str]
    raw: dict[str, Any] = field(repr=False)

    @property
    def skip_reason(self) -> str | None:
        if _truthy(self.raw.get("is_deleted")):
            return "deleted"
        if _truthy(self.raw.get("is_banned")):
            return "banned"
        if self.ext in NON_IMAGE_EXTS:
            return f"not-an-image:{self.ext}"
        if not self.md5:
            return "hidden"
        return None


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() in ("true", "t", "1")) or v == 1


class BadRecord(ValueError):
    """A metadata line that parses as JSON but is not a post we can trust (bad id, md5 or file_ext)."""


def parse_record(rec: dict[str, Any]) -> DumpPost:
    """Normalise a 2019/2020 (``tags`` list of dicts) or 2021 (``tag_string_*``) record.

    Validated before any path is built from it: the id a positive integer, ``md5`` empty or 32 hex
    digits, ``file_ext`` a known extension (no ``../``, no newline can reach an rsync list or a path);
    anything else raises :class:`BadRecord` and the line is counted as bad.
    """

    if not isinstance(rec, dict):
        raise BadRecord("not a JSON object")
    pid = post_id(rec)
    if pid is None:
        raise BadRecord(f"bad id {str(rec.get('id'))[:30]!r}")
    md5 = rec.get("md5")
    if md5 not in (None, "") and not valid_md5(md5):
        raise BadRecord(f"post {pid}: bad md5")
    ext = rec.get("file_ext")
    if ext not in (None, "") and not valid_ext(ext):
        raise BadRecord(f"post {pid}: bad file_ext")
    if md5 and not ext:
        raise BadRecord(f"post {pid}: md5 without a file_ext")
    tags_field = rec.get("tags")
    if "tag_string" in rec:
        tags = set(_text(rec.get("tag_string")).split())
        characters = _text(rec.get("tag_string_character")).split()
    elif isinstance(tags_field, list):
        tags, characters = set(), []
        for t in tags_field:
            name = t.get("name") if isinstance(t, dict) else t
            if not isinstance(name, str) or not name:
                continue
            tags.add(name)
            if isinstance(t, dict) and str(t.get("category")) == "4":
                characters.append(name)
    else:
        tags, characters = set(_text(tags_field).split()), []
    return DumpPost(
        id=pid,
        md5=str(md5 or "").lower(),
        ext=str(ext or "").lower(),
        rating=_text(rec.get("rating")),
        tags=tags,
        characters=characters,
        raw=rec,
    )


def _text(v: Any) -> str:
    """A string field (``None`` -> ''); anything else is a bad record."""
    if v is None:
        return ""
    if not isinstance(v, str):
        raise BadRecord(f"{type(v).__name__} where a string belongs")
    return v


def mirror_relpath(post_id: int, ext: str, variant: str) -> str:
    """``original/0123/4560123.png`` or ``512px/0123/4560123.jpg`` (the mirror's layout)."""

    if not isinstance(post_id, int) or isinstance(post_id, bool) or post_id < 1 or not valid_ext(ext):
        raise BadRecord(f"no mirror path for post {post_id!r} with extension {str(ext)[:20]!r}")
    folder = DUMP_VARIANTS[variant]
    return f"{folder}/{post_id % 1000:04d}/{post_id}.{'jpg' if folder == '512px' else ext}"


# -- reading -----------------------------------------------------------------------------------------
def metadata_files(root: Path) -> list[Path]:
    """Metadata files under ``root`` (a file or a directory), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise UserError(f"--dump {root} does not exist", hint="pass the dump's metadata folder (or one file)")
    found = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        name = p.name.lower()
        for comp in _COMPRESSED:
            name = name.removesuffix(comp)
        if name.endswith(_SUFFIXES) or _DIGITS.match(name):
            found.append(p)
    if not found:
        raise UserError(
            f"--dump {root} holds no metadata files (*.json, *.jsonl, 2019000000000000-style; .gz/.xz/.zst)",
            hint="point --dump at the dump's metadata folder",
        )
    return found


def open_metadata(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(decompressed line stream, raw file for progress by compressed bytes)."""
    raw = open(path, "rb")  # noqa: SIM115 (closed by the caller)
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw), raw  # type: ignore[return-value]
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw), raw  # type: ignore[return-value]
    if name.endswith(".zst"):
        try:
            # optional: only .zst dumps need it
            import zstandard
        except ImportError as exc:
            raw.close()
            raise UserError(
                f"{path} is zstd-compressed but the zstandard package is not installed",
                hint="pip install zstandard, or decompress it with `zstd -d`",
            ) from exc
        stream = zstandard.ZstdDecompressor().stream_reader(raw)
        return io.BufferedReader(stream, 1 << 20), raw  # type: ignore[arg-type,return-value]
    return raw, raw


@dataclass
class ScanStats:
    files: int = 0
    files_skipped: int = 0  # already scanned by an earlier run with the same filters
    lines: int = 0
    bad_lines: int = 0
    matched: int = 0
    nbytes: int = 0


def _check_encoding(path: Path, first_line: bytes) -> None:
    """Dumps are UTF-8 JSON lines: a UTF-16/32 file (BOM or NUL bytes) would match nothing, silently."""
    if first_line.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in first_line:
        raise UserError(
            f"metadata file {path} is not UTF-8 (it looks like UTF-16/32: a byte-order mark or NUL bytes)",
            hint=f"convert it, e.g. iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8.json",
        )


def scan_file(path: Path, flt: TagFilter, stats: ScanStats, on_bytes: Any = None) -> Iterator[DumpPost]:
    """Yield the records of one metadata file that pass ``flt``; bad lines are counted, not fatal."""
    stream, raw = open_metadata(path)
    last = 0
    try:
        for n, line in enumerate(stream, 1):
            stats.lines += 1
            if n == 1:
                _check_encoding(path, line)
            if on_bytes is not None and n % 4096 == 0:
                pos = raw.tell()
                on_bytes(pos - last)
                last = pos
            if not flt.may_match(line):
                continue
            try:
                post = parse_record(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError):
                if line.strip():
                    stats.bad_lines += 1
                continue
            if flt.accepts(post.tags, post.rating):
                stats.matched += 1
                yield post
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise UserError(
            f"cannot read metadata file {path}: {exc}", hint="re-download or decompress it"
        ) from exc
    finally:
        if on_bytes is not None:
            on_bytes(path.stat().st_size - last)
        stream.close()
        raw.close()
