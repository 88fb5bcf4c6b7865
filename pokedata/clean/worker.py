"""One stored file -> its clean JPG(s): the per-item work of ``poke clean``, run in worker processes.

A worker reads the raw file, checks it (size, aspect, decodability), flattens each selected frame onto
the background, downscales, encodes a JPG, re-decodes it, and writes it atomically. It never touches
the ledger: it returns one :class:`FrameResult` per frame (done or quarantined with a reason) and the
parent process records them. No exception escapes :func:`clean_item`: every failure is a row.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from pokedata.clean.flatten import (
    FlattenError,
    FrameSpec,
    downscale,
    flatten_to_rgb,
    is_animated,
    iter_frames,
)
from pokedata.dedup.hashing import cache_hasher, to_signed
from pokedata.store import DatasetDir, publish_bytes

# Quarantine reason codes (the part of images.error before the first colon).
MISSING, EMPTY, UNREADABLE, TRUNCATED, BOMB = (
    "missing-file",
    "empty",
    "unreadable",
    "truncated",
    "decompression-bomb",
)
TOO_SMALL, ASPECT, UNSUPPORTED, ENCODE = "too-small", "aspect-ratio", "unsupported-mode", "encode-failed"


@dataclass(frozen=True)
class Settings:
    """The clean parameters that decide the output pixels (stored as ``images.params``)."""

    background: tuple[int, int, int] = (255, 255, 255)
    min_side: int = 64
    max_side: int = 1024
    max_aspect: float = 4.0
    frames: FrameSpec = field(default_factory=FrameSpec)
    quality: int = 95
    max_pixels: int | None = None  # decompression-bomb limit (None: Pillow's default); decides quarantines

    def as_params(self) -> dict:
        r, g, b = self.background
        params = {
            "background": f"#{r:02x}{g:02x}{b:02x}",
            "min_side": self.min_side,
            "max_side": self.max_side,
            "max_aspect": self.max_aspect,
            "frames": str(self.frames),
            "quality": self.quality,
        }
        if self.max_pixels is not None:  # recorded when set, so setting, changing or dropping it redoes
            params["max_pixels"] = self.max_pixels  # the items (their bomb quarantines included)
        return params


@dataclass(frozen=True)
class Task:
    item_id: int
    src: Path  # absolute path of the raw file
    root: Path  # the dataset directory
    class_name: str  # '' = unlabelled / multi-class
    stem: str  # file stem inside clean/<class>/
    settings: Settings
    hashes: tuple[str, ...] = ()  # hash-cache methods ('phash', 'colour', ...) to compute from the output
    weight: int = 1  # cost estimate for the scheduler (the raw file's bytes): run.plan_chunks


@dataclass(frozen=True)
class FrameResult:
    frame: int
    status: str  # done | quarantined
    error: str | None = None
    path: Path | None = None  # absolute path of the written JPG
    width: int | None = None
    height: int | None = None
    pixel_sha256: str | None = None
    hashes: tuple[tuple[str, int], ...] = ()  # (method, signed 64-bit value) of the written JPG's pixels
    # (method, prepared array) until the hashes of a whole chunk are computed in one batch per method
    prepared: tuple[tuple[str, np.ndarray], ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class ItemResult:
    item_id: int
    frames: tuple[FrameResult, ...]


def init_worker(max_pixels: int | None, parent_pid: int | None = None) -> None:
    """Process initializer: the decompression-bomb limit (``None`` keeps Pillow's default).

    In a worker process (``parent_pid`` given): Ctrl-C is left to the parent (which stops the pool), and
    the worker dies with its parent, even a ``kill -9``'ed one: a daemon thread checks twice a second that
    the parent is still there and ends the worker at once when it is gone (reparented).
    """
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels
    if parent_pid is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        first = os.getppid()
        watched = parent_pid if first == parent_pid else first  # forkserver: our parent is the server

        def watch() -> None:
            while True:
                time.sleep(0.5)
                if os.getppid() != watched:
                    os._exit(1)

        threading.Thread(target=watch, name="poke-orphan-watch", daemon=True).start()


def clean_chunk(tasks: list[Task]) -> list[ItemResult]:
    """Clean a chunk of items, then flush the written JPGs to disk once (before the parent records rows).

    Files are published by rename (complete under any kill) without one fsync each: per-file fsync
    cost 90% of the time on sprite frames; one ``os.sync`` per chunk keeps the "file before row" order
    across a power cut at a fraction of the cost.
    """
    results = finish_hashes([_clean_item(t) for t in tasks])
    if any(f.path is not None for r in results for f in r.frames) and hasattr(os, "sync"):
        os.sync()
    return results


def pixel_sha256(rgb: Image.Image) -> str:
    """sha256 of ``"<w>x<h>:"`` + the RGB bytes: equal for equal pixels whatever the source format."""
    return hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()


def quarantine(frame: int, reason: str, detail: str = "") -> FrameResult:
    return FrameResult(frame, "quarantined", f"{reason}: {detail}" if detail else reason)


class OutputError(Exception):
    """A clean JPG could not be written (disk full, permissions): the run stops, it is not the image's fault."""


def clean_item(task: Task) -> ItemResult:
    """Every selected frame of one raw file -> FrameResults (never raises for bad input).

    Raises :class:`OutputError` when the output cannot be written.
    """
    return finish_hashes([_clean_item(task)])[0]


def finish_hashes(results: list[ItemResult]) -> list[ItemResult]:
    """Hash the prepared arrays of every frame, one numpy batch per method (the per-image cost is the
    small resize done in :func:`_write_frame`); returns the results with ``hashes`` set."""

    todo: dict[str, list[tuple[int, int, np.ndarray]]] = {}
    for ri, res in enumerate(results):
        for fi, f in enumerate(res.frames):
            for method, array in f.prepared:
                todo.setdefault(method, []).append((ri, fi, array))
    if not todo:
        return results
    values: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for method, entries in todo.items():
        signed = to_signed(cache_hasher(method).hash_batch(np.stack([a for *_, a in entries])))
        for (ri, fi, _), v in zip(entries, signed.tolist(), strict=True):
            values.setdefault((ri, fi), []).append((method, v))
    return [
        replace(res, frames=tuple(
            replace(f, hashes=tuple(values.get((ri, fi), ())), prepared=()) for fi, f in enumerate(res.frames)
        ))
        for ri, res in enumerate(results)
    ]  # fmt: skip


def _clean_item(task: Task) -> ItemResult:
    try:
        frames = _clean(task)
    except OutputError:
        raise
    except Exception as exc:  # a bug-shaped failure on one file must not kill the batch
        frames = [quarantine(0, UNREADABLE, f"{type(exc).__name__}: {exc}")]
    full = str(task.src)  # error texts name the file relative to the dataset, not by its absolute path
    try:
        rel = task.src.relative_to(task.root).as_posix()
    except ValueError:
        rel = task.src.name
    frames = [replace(f, error=f.error.replace(full, rel)) if f.error else f for f in frames]
    return ItemResult(task.item_id, tuple(frames))


def _classify(exc: BaseException) -> tuple[str, str]:
    """Exception -> (reason code, detail)."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return BOMB, str(exc)
    if isinstance(exc, FlattenError):
        return exc.reason, str(exc)
    if isinstance(exc, MemoryError):
        return BOMB, "out of memory while decoding"
    text = f"{type(exc).__name__}: {exc}"
    if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
        return TRUNCATED, text
    return UNREADABLE, text


def _clean(task: Task) -> list[FrameResult]:
    s = task.settings
    src = task.src
    if not src.is_file():
        return [quarantine(0, MISSING, f"{src} does not exist")]
    if src.stat().st_size == 0:
        return [quarantine(0, EMPTY, "zero bytes")]
    results: list[FrameResult] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's complaints about odd metadata: the decode decides
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(src)
        except Exception as exc:
            return [quarantine(0, *_classify(exc))]
        with im:
            w, h = im.size
            if min(w, h) < s.min_side:
                return [quarantine(0, TOO_SMALL, f"{w}x{h} px, shorter side below --min-side {s.min_side}")]
            if max(w, h) / max(1, min(w, h)) > s.max_aspect:
                return [quarantine(0, ASPECT, f"{w}x{h} px is beyond --max-aspect {s.max_aspect:g}:1")]
            scale = min(1.0, s.max_side / max(w, h))
            if im.format == "JPEG" and scale < 1.0:
                # Decode at 1/2, 1/4 or 1/8 scale right in libjpeg, never below the target size.
                im.draft(None, (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))
            animated = is_animated(im)
            frames = iter_frames(im, s.frames)
            while True:
                try:
                    frame, img = next(frames)
                    results.append(_write_frame(task, frame, img, animated))
                except StopIteration:
                    break
                except OutputError:
                    raise
                except Exception as exc:  # decoding this frame failed: keep the earlier ones, record it
                    failed_at = getattr(exc, "frame_index", results[-1].frame + 1 if results else 0)
                    results.append(quarantine(failed_at, *_classify(exc)))
                    break
    return results


def _write_frame(task: Task, frame: int, img: Image.Image, animated: bool) -> FrameResult:
    s = task.settings
    try:
        rgb = flatten_to_rgb(img, s.background)
    except FlattenError as exc:
        return quarantine(frame, exc.reason, str(exc))
    rgb = downscale(rgb, s.max_side)
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=s.quality)
    data = buf.getvalue()
    try:  # every written JPG must decode back to the same size
        prepared = check_output(data, rgb.size, task.hashes)
    except Exception as exc:
        return quarantine(frame, ENCODE, f"{type(exc).__name__}: {exc}")
    path = DatasetDir(task.root).clean_path(task.class_name, task.stem, frame if animated else None)
    try:
        publish_bytes(path, data)  # atomic, not durable: clean_chunk syncs the batch once
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc
    return FrameResult(frame, "done", None, path, rgb.width, rgb.height, pixel_sha256(rgb), prepared=prepared)


def check_output(
    data: bytes, size: tuple[int, int], methods: tuple[str, ...]
) -> tuple[tuple[str, np.ndarray], ...]:
    """Decode an encoded clean JPG back (raises unless it is a whole JPEG of ``size``) and return the
    hash-cache inputs of ``methods`` from those pixels.

    The JPG is decoded exactly as the dedup stage's own hashing decodes the file (``Hasher.open`` with
    ``fast``, its default: libjpeg's 1/2-1/8 scale decode where the method allows it, else in full), so
    each value equals what ``poke dedup`` would compute from the written file. Methods asking for the
    same decode share it. With no method the check is one 1/8-scale grayscale decode: libjpeg still
    reads every coefficient of the stream (a truncated or corrupt JPG fails), it skips most of the IDCT.
    """
    hashers = [cache_hasher(m) for m in methods]
    decodes: dict[tuple[str, tuple[int, int]] | None, list] = {}
    for hasher in hashers:
        decodes.setdefault(hasher.draft_request(size), []).append(hasher)
    if not decodes:
        decodes[("L", (max(1, size[0] // 8), max(1, size[1] // 8)))] = []
    prepared = []
    for request, group in decodes.items():
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.size != size:
                raise ValueError(f"re-decoded {im.format} {im.size} != JPEG {size}")
            if request is not None:
                im.draft(*request)
            im.load()
            prepared.extend((h.name, h.prepare(im)) for h in group)
    order = {m: i for i, m in enumerate(methods)}
    return tuple(sorted(prepared, key=lambda mp: order[mp[0]]))
