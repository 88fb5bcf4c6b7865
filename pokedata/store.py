"""The dataset directory: its layout, safe file names, and atomic writes.

Layout of ``DIR`` (``--data DIR``)::

    DIR/ledger.sqlite        the single truth: one row per candidate (see pokedata.ledger)
    DIR/raw/<class>/<id>.<ext>     fetched files, exactly as downloaded / copied
    DIR/clean/<class>/<id>[-f<frame>].jpg   flattened JPGs written by ``poke clean``
    DIR/reports/             dedup.json, contact sheets, stats
    DIR/tmp/                 temp files of in-flight writes (safe to delete when nothing runs)

Every file under a final name is complete: writes go to a temp file in the same directory, are
fsync'ed, then renamed (``os.replace`` is atomic on POSIX and Windows), and the directory is fsync'ed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlparse

from pokedata.errors import UserError

UNLABELLED = "_unlabelled"
"""Directory used for candidates that have no class (yet)."""

_SYMBOLS = {"♀": "_f", "♂": "_m", "é": "e", "É": "E"}
_UNSAFE = re.compile(r"[^\w.\-'+]+")
_MAX_NAME = 120


def safe_name(name: str) -> str:
    """Turn a class name, tag or id into a safe single path component.

    Unicode is NFKC-normalised, ``♀``/``♂`` become ``_f``/``_m``, accents are dropped, anything that is
    not a word character, ``.``, ``-``, ``'`` or ``+`` becomes ``_`` (so no ``/``, ``\\``, NUL or control
    characters), leading dots are stripped (no ``..`` or hidden files), and the result is capped at 120
    characters with a hash suffix so long names stay distinct.

    >>> safe_name("Nidoran♀"), safe_name("Mr. Mime"), safe_name("../etc/passwd"), safe_name("Flabébé")
    ('Nidoran_f', 'Mr._Mime', 'etc_passwd', 'Flabebe')
    """
    text = str(name)
    if _already_safe(text):  # the common case (ids, ASCII class names): what the steps below return as is
        return text
    for sym, repl in _SYMBOLS.items():
        text = text.replace(sym, repl)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = "".join(ch if ch.isprintable() else "_" for ch in text)
    text = re.sub(r"_+", "_", _UNSAFE.sub("_", text))
    text = text.lstrip("._-").rstrip("._")  # no "..", no hidden files, no trailing dot (Windows)
    if not text:
        text = "x" + hashlib.sha1(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:10]
    if len(text) > _MAX_NAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        text = f"{text[: _MAX_NAME - 11]}-{digest}"
    return text


def _already_safe(text: str) -> bool:
    """True when :func:`safe_name` would return ``text`` unchanged: printable ASCII (NFKC/NFKD leave it
    as is), only safe characters, no ``__``, nothing to strip at either end, at most 120 characters."""
    return (
        0 < len(text) <= _MAX_NAME
        and text.isascii()
        and text.isprintable()
        and _UNSAFE.search(text) is None
        and "__" not in text
        and text[0] not in "._-"
        and text[-1] not in "._"
    )


def display_text(text: str) -> str:
    """A file name that is not valid UTF-8 (held by Python as surrogate escapes) as printable, storable text
    (byte ``0xff`` -> ``\\xff``); valid names are returned as they are."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class DatasetDir:
    """Paths of a dataset directory. Creating the object touches nothing; :meth:`create` makes the dirs."""

    root: Path

    @classmethod
    def at(cls, root: Path | str) -> DatasetDir:
        return cls(Path(root).expanduser().resolve())

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def clean_dir(self) -> Path:
        return self.root / "clean"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    def create(self) -> DatasetDir:
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--data {self.root} exists and is not a directory", hint="pass a directory path")
        for d in (self.root, self.raw_dir, self.clean_dir, self.reports_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def require(self) -> DatasetDir:
        """Fail clearly when the directory holds no ledger yet."""
        if not self.ledger_path.is_file():
            raise UserError(
                f"--data {self.root} is not a dataset directory (no ledger.sqlite)",
                hint="fetch something into it first, e.g. `poke fetch folder PATH --data DIR`",
            )
        return self

    @property
    def lock_path(self) -> Path:
        return self.root / ".poke-writer.lock"

    @contextlib.contextmanager
    def writer_lock(self, what: str) -> Iterator[None]:
        """Hold the dataset's writer lock while a command writes to it (fetch, clean).

        One writer at a time: a second one stops at once with a :class:`UserError` naming the process
        that holds the lock. Readers (``poke status``, ``build-manifest``) never take it and run alongside
        (the ledger is SQLite in WAL mode). An OS lock (``flock``): a killed holder releases it. Re-entrant
        within a process (a command that calls another stage keeps the lock it has).
        """
        key = str(self.root)
        with _LOCKS_GUARD:
            held = _LOCKS.get(key)
            if held is not None:
                held[1] += 1
        if held is not None:
            try:
                yield
            finally:
                with _LOCKS_GUARD:
                    held[1] -= 1
            return
        fd = _take_lock(self.lock_path, what)
        with _LOCKS_GUARD:
            _LOCKS[key] = [fd, 1]
        try:
            yield
        finally:
            with _LOCKS_GUARD:
                _LOCKS.pop(key, None)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the lock

    def raw_path(self, class_name: str | None, item_id: str, ext: str) -> Path:
        """``raw/<class>/<id>.<ext>`` with every component made safe."""
        cls = safe_name(class_name) if class_name else UNLABELLED
        return self.raw_dir / cls / f"{safe_name(item_id)}.{ext.lstrip('.').lower()}"

    def clean_path(self, class_name: str | None, item_id: str, frame: int | None = None) -> Path:
        cls = safe_name(class_name) if class_name else UNLABELLED
        suffix = f"-f{frame:04d}" if frame is not None else ""
        return self.clean_dir / cls / f"{safe_name(item_id)}{suffix}.jpg"

    def rel(self, path: Path) -> str:
        """Path relative to the dataset root, with forward slashes (what the ledger stores)."""
        return Path(path).resolve().relative_to(self.root).as_posix()

    def abs(self, rel: str) -> Path:
        return self.root / rel


_LOCKS: dict[str, list] = {}  # dataset root -> [fd, depth] of the writer locks this process holds
_LOCKS_GUARD = threading.Lock()


def _take_lock(path: Path, what: str) -> int:
    """Open and ``flock`` the lock file (non-blocking); raise UserError naming the holder when it is taken."""
    try:
        # POSIX only (fcntl has no Windows counterpart here)
        import fcntl
    except ImportError:  # no flock (Windows): no lock, as before
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = b""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 200, 0)
        os.close(fd)
        pid, _, doing = holder.decode("utf-8", "replace").strip().partition(" ")
        who = f"process {pid} ({doing})" if pid.isdigit() else "another process"
        raise UserError(
            f"--data {path.parent} is being written by another poke {who}",
            hint="wait for it to finish or stop it, then rerun (poke status and poke build-manifest can run "
            "alongside it)",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)  # never the command line: it may hold a key
    return fd


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename in it survives a power cut (no-op where unsupported)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb", *, durable: bool = True) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path``; on success fsync and rename it into place, else remove it.

    A crash at any moment leaves either the old file, the new complete file, or a stray ``.tmp-*`` file
    (never a partial file under the final name). ``durable=False`` skips both fsyncs: for derived files
    (the report) and for writers that sync a whole batch at once (the clean workers).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name[:40]}-", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600 files: give the final file the umask's mode
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask (read by setting it and putting it back: Python has no getter)."""
    with _UMASK_GUARD:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_GUARD = threading.Lock()


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    with atomic_writer(path, "wb", durable=durable) as fh:
        fh.write(data)


def publish_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` under ``path`` atomically but not durably (the caller syncs a batch): the lean form
    of :func:`atomic_writer` for many small files (clean JPGs).

    The temp file beside ``path`` is named ``.tmp-<name>-<pid>`` (one writer per path and process:
    datasets have a writer lock) and created with the umask's mode, so it costs an open, a write, a
    close and a rename (no mkstemp name search, chmod or umask read); the parent folder is made only
    when the open finds it missing. A kill leaves the old file, the new one, or a ``.tmp-*`` file.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name[:40]}-{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temps(directory: Path) -> int:
    """Delete ``.tmp-*`` leftovers of killed writes under ``directory``; returns how many."""
    n = 0
    if not Path(directory).exists():
        return 0
    for p in Path(directory).rglob(".tmp-*"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


def file_digests(path: Path, chunk: int = 1 << 20) -> tuple[str, str, int]:
    """(sha256, md5, size) of a file in one pass."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            sha.update(block)
            md5.update(block)
            size += len(block)
    return sha.hexdigest(), md5.hexdigest(), size


def file_uri(path: Path) -> str:
    """``file://`` URI of an absolute path, whatever bytes its name holds (percent-encoded): the url local
    importers (folder, dump mirror) record for a file."""
    return "file://" + quote_from_bytes(os.fsencode(Path(path).absolute()))


def file_uri_path(uri: str) -> Path:
    """The local path of a ``file://`` URI (what local importers store as an item's url), byte for byte."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"not a file:// URI: {uri!r}")
    return Path(os.fsdecode(unquote_to_bytes(parsed.path)))
