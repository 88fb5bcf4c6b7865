"""Run directories: ``runs/NAME/`` with one folder per step and ``run.json`` recording the manifest.

::

    runs/NAME/run.json        {"manifest_dir", "data_root", "image_size", "created", ...}
    runs/NAME/classifier/     step 1 (config.toml, last.pt, final.pt, tb/, per_class_accuracy.csv, done.json)
    runs/NAME/embeddings/     embeddings.npy, index.parquet, done.json
    runs/NAME/pretrain/       step 2 (last.pt, final.pt, recon/, tb/, done.json)
    runs/NAME/gmm/ gan/ progan/

A step folder with ``done.json`` is finished (it is written last, atomically); one without it resumes from
its last checkpoint. ``open_run(out, resume=False, create=True)`` refuses an existing run directory: run
directories are never silently reused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pokedata.errors import UserError
from pokedata.store import atomic_write_text
from pokegan.config import read_config_file

STEP_DIRS = {
    "classify": "classifier",
    "classifier": "classifier",
    "embed": "embeddings",
    "embeddings": "embeddings",
    "pretrain": "pretrain",
}
"""Step names -> folder names (other names map to themselves: gmm, gan, progan)."""


@dataclass
class RunDir:
    root: Path

    @property
    def meta_path(self) -> Path:
        return self.root / "run.json"

    @property
    def meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{self.meta_path} is corrupt ({exc})", hint="restore it or start a new run"
            ) from None

    def update_meta(self, **values: Any) -> dict[str, Any]:
        meta = self.meta
        meta.update(values)
        atomic_write_text(self.meta_path, json.dumps(meta, indent=2, default=str) + "\n")
        return meta

    @property
    def manifest_dir(self) -> Path:
        m = self.meta.get("manifest_dir")
        if not m:
            raise UserError(
                f"{self.meta_path} records no manifest",
                hint="start the run with `poke train classify --manifest DIR`",
            )
        return Path(m)

    @property
    def data_root(self) -> Path | None:
        d = self.meta.get("data_root")
        return Path(d) if d else None

    @property
    def image_size(self) -> int:
        return int(self.meta.get("image_size") or 0)

    def step_config(self, name: str) -> dict[str, Any]:
        """The resolved config a step wrote (``STEP/config.toml``) as sections, ``{}`` when absent."""

        path = self.step_dir(name) / "config.toml"
        return read_config_file(path) if path.is_file() else {}

    def step_dir(self, name: str) -> Path:
        """The folder of a step (``classify`` -> ``classifier``, ``embed`` -> ``embeddings``); not created."""
        return self.root / STEP_DIRS.get(name, name)

    def is_done(self, name: str) -> bool:
        return (self.step_dir(name) / "done.json").is_file()

    def done_summary(self, name: str) -> dict[str, Any]:
        path = self.step_dir(name) / "done.json"
        if not path.is_file():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def mark_done(self, name: str, summary: dict[str, Any]) -> Path:
        """Write ``STEP/done.json`` (last, atomically): the step is finished."""
        path = self.step_dir(name) / "done.json"
        payload = {"step": name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **summary}
        atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
        return path

    def begin_step(self, name: str, *, resume: bool) -> tuple[Path, bool]:
        """(step folder, resuming?) for a step about to run; refuses a started step without ``--resume``.

        A finished step (``done.json``) is not started again: callers check :meth:`is_done` first.
        """
        d = self.step_dir(name)
        started = d.is_dir() and any(d.iterdir())
        if started and not resume:
            raise UserError(
                f"{d} already holds a started {name} step",
                hint="pass --resume to continue it, or start a new run with another --out",
            )
        d.mkdir(parents=True, exist_ok=True)
        return d, started


def open_run(
    out: Path | str,
    *,
    resume: bool,
    create: bool,
    manifest_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    image_size: int | None = None,
) -> RunDir:
    """Open (or create) a run directory.

    ``create=True`` (step 1): a new directory is made and ``run.json`` records ``manifest_dir`` (and the
    ``--data-root`` override and image size) so later steps need only ``--run``; an existing, non-empty
    directory is refused unless ``resume``. ``create=False`` (later steps): the directory must exist.
    """
    root = Path(out)
    run = RunDir(root)
    exists = root.is_dir() and any(root.iterdir())
    if not create:
        if not run.meta_path.is_file():
            raise UserError(
                f"--run {root} is not a run directory (no run.json)",
                hint="start one with `poke train classify --manifest manifests/NAME --out runs/NAME`",
            )
        return run
    if exists and not resume:
        raise UserError(
            f"--out {root} already exists",
            hint="run directories are never reused: choose a new --out, or pass --resume to continue that run",
        )
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root} is a file", hint="choose a directory path for --out")
    root.mkdir(parents=True, exist_ok=True)
    meta = run.meta
    values: dict[str, Any] = {}
    if manifest_dir is not None:
        mdir = str(Path(manifest_dir).resolve())
        if meta.get("manifest_dir") and meta["manifest_dir"] != mdir:
            raise UserError(
                f"--out {root} was started on manifest {meta['manifest_dir']}, not {mdir}",
                hint="resume with the same --manifest, or choose a new --out",
            )
        values["manifest_dir"] = mdir
    if data_root is not None:
        values["data_root"] = str(Path(data_root).resolve())
    if image_size:
        values["image_size"] = int(image_size)
    if not meta:
        values["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if values:
        run.update_meta(**values)
    return run


__all__ = ["STEP_DIRS", "RunDir", "open_run"]
