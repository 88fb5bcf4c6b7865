"""Import an existing image folder into the dataset store: ``poke fetch folder PATH``.

Every image file under ``PATH`` becomes one ledger row (source ``folder``, source id = its path relative
to ``PATH`` with forward slashes, url = its ``file://`` URI), then is copied (or hard-linked with
``link=True``) into ``DIR/tmp`` and handed to :func:`pokedata.fetch.intake.commit_file`, the one gate into
``raw/`` (verify, dedup by sha256, atomic rename, ledger update). Rows are planned first and drained
from the ledger, so a killed import resumes and a rerun adds nothing.

Where the class comes from (``class_from``):

- ``dirname``: the first folder below ``PATH`` (``PATH/Pikachu/001.png`` -> ``Pikachu``); files directly in
  ``PATH`` are unlabelled;
- ``filename``: the file stem (``PATH/pikachu.png`` -> ``pikachu``, the Kaggle one-PNG-per-species layout);
- ``catalog``: the folder name for files in sub-folders, else the file stem, matched against the catalog
  (case-, accent- and punctuation-insensitively; also its Danbooru tag; a trailing ``-2``/``_03`` copy
  number and a ``-f``/``-m`` sex suffix are ignored when the name does not match as it is). With a catalog (``catalog`` mode, or ``--catalog`` in the other modes) the class is the
  catalog's name, and files whose name matches no class are recorded ``skipped`` with the reason
  ``no-catalog-match:<name>``.

Library use (the demo and tests call this, not the CLI)::

    from pokedata.fetch.folder import FolderImportConfig, import_folder
    summary = import_folder(FolderImportConfig(root=Path("sprites"), data=Path("data")))
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pokedata.catalog import Catalog, PokemonClass, load_catalog, name_key
from pokedata.errors import UserError
from pokedata.fetch.config import FolderOptions
from pokedata.fetch.intake import FetchSummary, Outcome, commit_file, reuse_existing, temp_path
from pokedata.ledger import FAILED, SKIPPED, Candidate, Item, Ledger
from pokedata.log import console
from pokedata.store import DatasetDir, display_text, file_uri, file_uri_path, remove_stale_temps
from pokedata.verify import IMAGE_EXTENSIONS, check_max_pixels, pixel_limit

log = logging.getLogger(__name__)

SOURCE = "folder"
CLASS_FROM = ("dirname", "filename", "catalog")
_PLAN_BATCH = 2000


@dataclass(frozen=True)
class FolderImportConfig(FolderOptions):
    """Options of one folder import: the fields of :class:`FolderOptions` (their defaults are the
    command's), validated by :meth:`validate`."""

    def validate(self) -> None:
        check_max_pixels(self.max_pixels)
        if self.class_from not in CLASS_FROM:
            raise UserError(
                f"--class-from {self.class_from!r} is not one of {', '.join(CLASS_FROM)}",
                hint="use --class-from dirname, filename or catalog",
            )
        root = Path(self.root)
        if not root.is_dir():
            raise UserError(
                f"folder {root} does not exist or is not a directory", hint="pass an image folder"
            )
        data = Path(self.data).expanduser().resolve()
        if data == root.resolve() or root.resolve() in data.parents:
            raise UserError(
                f"--data {data} lies inside the imported folder {root}",
                hint="put the dataset directory outside the folder you import",
            )
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit {self.limit} must be at least 1")


# -- class names ------------------------------------------------------------------------------------
_COPY_SUFFIX = re.compile(r"[\s_\-.]*\(?\d+\)?$")
_SEX_SUFFIX = re.compile(r"(?<=\w)[\s_\-.]+(f|m|female|male)$|[♀♂]$", re.IGNORECASE)  # nidoran-f -> nidoran


def loose_key(name: str) -> str:
    """Letters and digits of :func:`name_key` only: ``Mr. Mime``, ``mr-mime``, ``mr._mime`` -> ``mrmime``."""
    return re.sub(r"[\W_]+", "", name_key(name))


class CatalogMatcher:
    """Match file and folder names to catalog classes, forgivingly but never ambiguously."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._index: dict[str, PokemonClass | None] = {}
        for c in catalog:
            for key in {loose_key(c.name), loose_key(c.danbooru_tag)}:
                if not key:
                    continue
                # Two classes with the same loose key: that key is ambiguous, never guessed.
                self._index[key] = None if key in self._index and self._index[key] != c else c

    def match(self, name: str) -> PokemonClass | None:
        bare = _COPY_SUFFIX.sub("", name)
        for candidate in (name, bare, _SEX_SUFFIX.sub("", bare)):
            key = loose_key(candidate)
            if key and self._index.get(key) is not None:
                return self._index[key]
        return None


def raw_label(rel: str, class_from: str) -> str:
    """The class name a file's relative path suggests ('' when there is none)."""
    parts = rel.split("/")
    stem = Path(parts[-1]).stem
    if class_from == "filename":
        return stem
    if class_from == "dirname":
        return parts[0] if len(parts) > 1 else ""
    return parts[0] if len(parts) > 1 else stem


# -- scanning ---------------------------------------------------------------------------------------
def iter_image_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, absolute path) of image files under ``root``, sorted, hidden entries skipped.

    The path is the entry's own path under ``root`` (a symlink is not resolved: its row's URL stays under
    the root, so it is imported like any file; see :func:`not_regular_reason` for what is refused).
    """
    root = Path(root).absolute()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            if Path(fname).suffix.lower().lstrip(".") not in IMAGE_EXTENSIONS:
                continue
            path = Path(dirpath) / fname
            yield path.relative_to(root).as_posix(), path


def not_regular_reason(path: Path) -> str | None:
    """Why ``path`` (symlinks followed) is not a regular file to import, or None when it is one.

    A FIFO named ``.png`` would hang the import on open, a device would stream forever, a symlink loop or a
    dangling link cannot be read: they are skipped with a reason, never opened.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink-loop"
        return f"unreadable:{errno.errorcode.get(exc.errno or 0, 'error').lower()}"
    if stat.S_ISREG(st.st_mode):
        return None
    kind = "fifo" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
    return f"not-a-regular-file:{kind}"


def plan_folder(ledger: Ledger, cfg: FolderImportConfig, catalog: Catalog | None) -> tuple[int, int, int]:
    """Plan one row per image file; returns (files seen, new rows, new rows skipped as unmatched)."""
    matcher = CatalogMatcher(catalog) if catalog is not None else None
    seen = new = 0
    batch: list[Candidate] = []
    unmatched: list[tuple[str, str]] = []  # (source_id, name)
    refused: list[tuple[str, str]] = []  # (source_id, reason): not a regular file
    clashes: list[str] = []  # relative paths already taken by a file of another folder
    root = Path(cfg.root).resolve()
    for raw_rel, path in iter_image_files(root):
        seen += 1
        rel = display_text(raw_rel)
        label = raw_label(rel, cfg.class_from)
        meta = {"root": display_text(str(root)), "rel_path": rel, "label_from": cfg.class_from}
        if rel != raw_rel:
            meta["name_not_utf8"] = True
        reason = not_regular_reason(path)
        if reason is not None:
            refused.append((rel, reason))
        if matcher is not None and label:
            cls = matcher.match(label)
            if cls is None:
                unmatched.append((rel, label))
                label = ""
            else:
                meta["label_raw"] = label
                label = cls.name
        batch.append(Candidate(SOURCE, rel, label, file_uri(path), meta))
        if len(batch) >= _PLAN_BATCH:
            new += _plan_batch(ledger, batch, clashes)
            batch.clear()
    new += _plan_batch(ledger, batch, clashes)
    if clashes:
        log.warning(
            "%d file(s) (e.g. %s) have the same relative path and class as files imported earlier from another "
            "folder and were left out; import that folder into another --data directory, or rename them",
            len(clashes), clashes[0],
        )  # fmt: skip
    skipped = 0
    for rel, name in unmatched:
        for item in ledger.find(SOURCE, rel, ""):
            if item.status == "planned":
                ledger.mark(item.id, SKIPPED, f"no-catalog-match:{name}")
                skipped += 1
    for rel, reason in refused:
        for item in ledger.find(SOURCE, rel):
            if item.status in ("planned", FAILED):
                ledger.mark(item.id, SKIPPED, reason)
                skipped += 1
    if refused:
        log.warning(
            "%d entries are not regular files and were skipped (e.g. %s: %s)", len(refused), *refused[0]
        )
    return seen, new, skipped


def _plan_batch(ledger: Ledger, batch: list[Candidate], clashes: list[str]) -> int:
    new = ledger.plan(batch)
    if new < len(batch):  # some rows existed: from this folder (a rerun) or from another one?
        for c in batch:
            rows = ledger.find(SOURCE, c.source_id, c.class_name)
            if rows and rows[0].url != c.url:
                clashes.append(c.source_id)
    return new


# -- copying local files into the store (shared with the dump mirror import) --------------------------
class NotRegularFile(OSError):
    """A source path that is not a regular file (FIFO, device, socket, symlink loop)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def stage_local_file(src: Path, tmp: Path, *, link: bool) -> bool:
    """Put ``src`` at ``tmp`` (hard link or fsync'ed copy). Returns whether it was linked.

    Only a regular file is read (symlinks followed): anything else raises :class:`NotRegularFile`, checked
    on the open descriptor too, so a FIFO swapped in after planning cannot hang the import.
    """
    reason = not_regular_reason(src)
    if reason is not None and not reason.startswith("unreadable"):  # missing/unreadable: the open says
        raise NotRegularFile(reason)
    if link:
        try:
            os.link(src, tmp)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            log.debug("cannot hard-link %s (%s); copying instead", src, exc)
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile("not-a-regular-file")
    with os.fdopen(fd, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    return False


def import_local_items(
    ledger: Ledger,
    dataset: DatasetDir,
    items: Sequence[Item],
    *,
    path_of: Callable[[Item], Path],
    link: bool = False,
    summary: FetchSummary,
    progress: bool = True,
    label: str = "importing",
) -> FetchSummary:
    """Copy (or hard-link) each item's local file into the store through the intake gate.

    A missing or unreadable file makes the row ``failed`` (retryable), bad bytes ``quarantined``; the
    batch always goes on.
    """
    with _progress_bar(progress, label, len(items)) as advance:
        for item in items:
            outcome = reuse_existing(ledger, item)
            if outcome is None:
                outcome = _import_one(ledger, dataset, item, path_of, link)
            summary.add(outcome)
            advance(outcome)
    return summary


def _import_one(
    ledger: Ledger, dataset: DatasetDir, item: Item, path_of: Callable[[Item], Path], link: bool
) -> Outcome:
    ledger.bump_attempts(item.id)
    try:
        src = path_of(item)
    except (ValueError, KeyError) as exc:
        ledger.mark(item.id, FAILED, f"bad-source-path: {exc}")
        return Outcome(FAILED, "bad-source-path")
    tmp = temp_path(dataset, item)
    try:
        linked = stage_local_file(src, tmp, link=link)
    except NotRegularFile as exc:
        ledger.mark(item.id, SKIPPED, exc.reason)
        return Outcome(SKIPPED, exc.reason)
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        ledger.mark(item.id, FAILED, f"missing-file: {display_text(str(src))}")
        return Outcome(FAILED, "missing-file")
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        ledger.mark(item.id, FAILED, f"unreadable: {exc.strerror or exc}")
        return Outcome(FAILED, "unreadable")
    return commit_file(ledger, dataset, item, tmp, expected_md5=item.meta.get("md5"), meta={"linked": linked})


@contextlib.contextmanager
def _progress_bar(enabled: bool, label: str, total: int) -> Iterator[Callable[[Outcome], None]]:
    if not enabled or total == 0:
        yield lambda outcome: None
        return

    counts = {"done": 0, "skipped": 0, "failed": 0, "quarantined": 0}
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=total, counts="")

        def advance(outcome: Outcome) -> None:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            text = " ".join(f"{k} {v}" for k, v in counts.items() if v)
            bar.update(task, advance=1, counts=text)

        yield advance


# -- the command's one call ---------------------------------------------------------------------------
def import_folder(cfg: FolderImportConfig) -> FetchSummary:
    """Plan every image file under ``cfg.root``, then copy the pending ones into the store."""
    cfg.validate()
    catalog = load_catalog(cfg.catalog) if (cfg.catalog or cfg.class_from == "catalog") else None
    dataset = DatasetDir.at(cfg.data).create()
    with dataset.writer_lock("fetch folder"):
        return _import_folder(cfg, dataset, catalog)


def _import_folder(cfg: FolderImportConfig, dataset: DatasetDir, catalog: Catalog | None) -> FetchSummary:
    remove_stale_temps(dataset.tmp_dir)
    started = time.monotonic()
    summary = FetchSummary(source=SOURCE)
    root_uri = file_uri(Path(cfg.root).resolve()).rstrip("/") + "/"
    with Ledger(dataset.ledger_path) as ledger:
        seen, summary.planned, unmatched = plan_folder(ledger, cfg, catalog)
        for _ in range(unmatched):
            summary.add(Outcome(SKIPPED, "no-catalog-match"))
        if seen == 0:
            raise UserError(
                f"folder {cfg.root} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})",
                hint="point PATH at a folder of images",
            )
        pending = [
            it
            for it in ledger.pending(
                source=SOURCE, retry_failed=cfg.retry_failed, retry_quarantined=cfg.retry_quarantined
            )
            if (it.url or "").startswith(root_uri)
        ]
        if cfg.limit is not None:
            pending = pending[: cfg.limit]
        with pixel_limit(cfg.max_pixels):
            import_local_items(
                ledger,
                dataset,
                pending,
                path_of=lambda it: file_uri_path(it.url or ""),
                link=cfg.link,
                summary=summary,
                progress=cfg.progress,
                label=f"folder {Path(cfg.root).name}",
            )
    summary.seconds = time.monotonic() - started
    return summary
