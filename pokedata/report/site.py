"""The output folder, written incrementally: only files whose content (or inputs) changed are written.

``OUT/.poke-report.json`` maps every file the report wrote to a fingerprint (the text's hash for pages,
the inputs' hash for sprite sheets and copied pictures). A rerun compares, writes what differs, and
removes the files of the last build that this one no longer makes (a class that vanished). Files are
written to a temp name and renamed, so a killed build leaves complete files; the state file is written
last, so a killed build is simply redone where needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from pokedata.errors import UserError
from pokedata.report.sprites import SheetSpec, fingerprint, render_many
from pokedata.store import atomic_write_bytes, atomic_write_text

STATE_NAME = ".poke-report.json"
STATE_VERSION = 1


@dataclass
class Counts:
    written: int = 0
    unchanged: int = 0
    sheets_rendered: int = 0
    sheets_reused: int = 0
    removed: int = 0


@dataclass
class Site:
    out: Path
    spec: SheetSpec
    force: bool = False
    counts: Counts = field(default_factory=Counts)
    _old: dict[str, str] = field(default_factory=dict)  # what the last build wrote ({} with force)
    _prev: list[str] = field(default_factory=list)  # its files, to remove those this build does not make
    _new: dict[str, str] = field(default_factory=dict)
    _sheets: list[tuple[str, list[str | None], str]] = field(default_factory=list)

    def open(self) -> Site:
        out = self.out
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file", hint="pass a folder for the report, e.g. --out report")
        if out.is_dir() and any(out.iterdir()) and not (out / STATE_NAME).is_file():
            raise UserError(
                f"--out {out} already holds files that are not a poke report",
                hint="choose an empty or new folder (the report removes files it no longer needs)",
            )
        out.mkdir(parents=True, exist_ok=True)
        if not (out / STATE_NAME).is_file():
            self._save({})  # marks the folder as a report from the start: a killed first build can resume
        with contextlib.suppress(OSError, json.JSONDecodeError):
            state = json.loads((out / STATE_NAME).read_text(encoding="utf-8"))
            files = dict(state.get("files") or {})
            self._prev = list(files)
            if state.get("version") == STATE_VERSION and not self.force:
                self._old = files
        return self

    def _fresh(self, rel: str, fp: str) -> bool:
        self._new[rel] = fp
        return self._old.get(rel) == fp and (self.out / rel).is_file()

    def text(self, rel: str, text: str) -> None:
        """Write a page (or asset) unless the same text is already there."""
        data = text.encode("utf-8")
        if self._fresh(rel, hashlib.sha1(data).hexdigest()):
            self.counts.unchanged += 1
            return
        atomic_write_bytes(self.out / rel, data, durable=False)  # derived data: no fsync
        self.counts.written += 1

    def copy(self, rel: str, src: Path) -> None:
        """Copy a picture (a run's grid) unless the same version was copied before."""
        st = src.stat()
        if self._fresh(rel, f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}"):
            self.counts.unchanged += 1
            return
        atomic_write_bytes(self.out / rel, src.read_bytes(), durable=False)
        self.counts.written += 1

    def sheet(self, rel: str, files: list[str | None]) -> None:
        """Queue a sprite sheet; rendered in :meth:`finish` unless its inputs are unchanged."""
        fp = fingerprint(files, self.spec)
        if self._fresh(rel, fp):
            self.counts.sheets_reused += 1
        else:
            self._sheets.append((rel, files, fp))

    def finish(self, workers: int) -> Counts:
        """Render the queued sheets, remove what the last build made and this one did not, save the state."""
        self._save_progress(0)
        for start in range(0, len(self._sheets), 64):  # batches: a kill loses at most one batch's work
            batch = self._sheets[start : start + 64]
            for (rel, _files, _fp), data in zip(
                batch, render_many([(f, self.spec) for _rel, f, _fp in batch], workers), strict=True
            ):
                atomic_write_bytes(self.out / rel, data, durable=False)  # derived data: no fsync
            self.counts.sheets_rendered += len(batch)
            self._save_progress(start + len(batch))
        for rel in set(self._prev) - set(self._new):
            path = (self.out / rel).resolve()
            if path.is_relative_to(self.out.resolve()) and path.is_file():
                path.unlink()
                self.counts.removed += 1
        self._save(self._new)
        return self.counts

    def _save_progress(self, sheets_done: int) -> None:
        """The state while sheets are drawn: a kill now keeps what is on disk already."""
        pending = {rel for rel, _files, _fp in self._sheets[sheets_done:]}
        written = {rel: fp for rel, fp in self._new.items() if rel not in pending}
        known = {rel: "" for rel in self._prev}  # still tracked (for removal), never taken as fresh
        self._save({**known, **self._old, **written})

    def _save(self, files: dict[str, str]) -> None:
        state = {"version": STATE_VERSION, "files": dict(sorted(files.items()))}
        atomic_write_text(self.out / STATE_NAME, json.dumps(state, indent=0) + "\n")
