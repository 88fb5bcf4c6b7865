"""The one training skeleton every step runs on (nanoGPT's readable loop; stylegan2-ada's parts apart).

A step (``classify``, ``pretrain``, ``gan``, ``progan``) keeps in its own module only what is its own: how
to build its models and optimizers, one training iteration, and what happens at an epoch end or an
evaluation, over a typed state (a dataclass). Everything else lives here, once:

- :func:`start_run`, :func:`open_session`: distributed set-up (torchrun), device and seeds, the run and the
  step folder (rank 0 opens them, the other ranks follow or get the same error), ``config.toml``, the
  TensorBoard writer and the metrics log (rank 0), ``done.json`` (:meth:`Session.finish`);
- :func:`resume_epochs`: loading ``last.pt`` with the compatibility checks (checkpoint kind, manifest,
  class list, then the step's own), the optimizer, grad-scaler and RNG states, and the metrics log cut
  back to the checkpoint;
- :func:`train_epochs`: the epoch loop of steps 1 and 2, i.e. compile/DDP wrapping, gradient accumulation
  with ``no_sync``, the finite-loss check, the optimizer step on the LR schedule, TensorBoard scalars,
  checkpoint cadence, ``stop_after_steps``, the progress bar and an epoch-end hook.

Every step has one signature: ``run_<step>(cfg, run, *, resume=False) -> summary`` where ``run`` is a run
directory (a path or :class:`pokegan.runs.RunDir`); step 1 runs in a directory :func:`start_run` created.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch.utils.tensorboard import SummaryWriter  # slow to import: only when training

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_text
from pokegan import device as dev
from pokegan.checkpoint import (
    check_compatible,
    load_checkpoint,
    provenance,
    restore_training_state,
    save_checkpoint,
)
from pokegan.config import config_to_toml
from pokegan.runs import RunDir, open_run


# ---- the run and the step folder (rank 0 opens, the other ranks follow) ------------------------------------
def _on_rank0(fn):
    """``fn()`` on rank 0; its result (a picklable value) or its UserError on every rank."""
    result: tuple[str, Any] = ("ok", None)
    if dev.is_main():
        try:
            result = ("ok", fn())
        except UserError as exc:
            result = ("error", (str(exc.args[0]), exc.hint))
    kind, payload = dev.broadcast_object(result)
    if kind == "error":
        raise UserError(payload[0], hint=payload[1])
    return payload


def start_run(
    out: Path | str,
    manifest_dir: Path | str,
    *,
    resume: bool = False,
    data_root: Path | str | None = None,
    image_size: int | None = None,
) -> RunDir:
    """Create the run directory ``out`` for ``manifest_dir`` (step 1's start; ``resume``: reopen it)."""
    dev.init_distributed()

    def create() -> str:
        run = open_run(
            out,
            resume=resume,
            create=True,
            manifest_dir=manifest_dir,
            data_root=data_root or None,
            image_size=image_size,
        )
        return str(run.root)

    return RunDir(Path(_on_rank0(create)))


class MetricsLog:
    """``STEP/metrics.jsonl``: one JSON row per epoch or evaluation (rank 0 writes), rewritten atomically."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            self.rows = [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]

    def truncate(self, step: int) -> None:
        """Drop the rows logged after optimizer step ``step`` (the resumed checkpoint's): they come again."""
        keep = [r for r in self.rows if r.get("step", 0) <= step]
        if len(keep) != len(self.rows):
            self.rows = keep
            self._write()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write()

    def _write(self) -> None:
        if self.enabled:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows))

    def curves(self, *keys: str) -> dict[str, list[tuple[int, float]]]:
        return {k: [(r["step"], r[k]) for r in self.rows if r.get(k) is not None] for k in keys}


def progress(enabled: bool, *, transient: bool = False):
    """A rich progress bar on stderr (disabled off rank 0)."""
    # rich is imported here, not at the top: `poke --help` imports this module's commands' modules lazily,
    # and the progress bar is the only part of rich the trainer needs

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=transient,
    )


@dataclass
class Session:
    """One step of one run on this process: where it writes and what it writes with."""

    name: str  # the step ("classify", "pretrain", "gan", "progan")
    run: RunDir
    dir: Path  # the step folder
    device: torch.device
    main: bool  # rank 0: the one process that logs, draws and saves
    resumed: bool  # the step folder already held a started step
    metrics: MetricsLog
    writer: Any = None  # TensorBoard SummaryWriter on rank 0 (opened by :meth:`open_writer`)
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def done(self) -> bool:
        return self.run.is_done(self.name)

    def done_summary(self) -> dict:
        console.print(f"[dim]{self.name}: {self.dir} is already done (done.json); nothing to do[/]")
        return self.run.done_summary(self.name)

    def open_writer(self, purge_step: int | None = None) -> None:
        """TensorBoard under ``STEP/tb`` on rank 0 (``purge_step``: drop events past a resumed step)."""
        if self.main:
            self.writer = SummaryWriter(log_dir=str(self.dir / "tb"), purge_step=purge_step or None)

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(prefix + k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def seconds(self) -> float:
        return round(time.perf_counter() - self.t0, 1)

    def finish(self, summary: dict) -> dict:
        """``done.json`` (rank 0, last of all); every rank waits for it."""
        if self.main:
            self.run.mark_done(self.name, summary)
        dev.barrier()
        return summary


def open_session(
    name: str,
    cfg: Any,
    run: RunDir | Path | str,
    *,
    resume: bool,
    requires: tuple[str, ...] = (),
    to_toml: Callable[[Any], str] = config_to_toml,
) -> Session:
    """Join torchrun, pick the device, seed, open the step folder (rank 0) and write ``config.toml``.

    A finished step is not reopened: check :attr:`Session.done` first. ``cfg`` has ``device`` and ``seed``.
    ``requires``: the steps that must be finished first (checked before the step folder is touched).
    ``to_toml``: how the config is written (ProGAN's has its cycles table).
    """
    dev.init_distributed()
    device = dev.resolve_device(cfg.device)
    dev.setup_torch(device, cfg.seed)

    def begin() -> tuple[str, bool]:
        r = run if isinstance(run, RunDir) else open_run(run, resume=True, create=False)
        if r.is_done(name):
            return str(r.root), False
        for before in requires:
            if not r.is_done(before):
                raise UserError(
                    f"the {before} step of {r.root} is not finished",
                    hint=f"run `poke train {before}` (or --resume it) first",
                )
        return str(r.root), r.begin_step(name, resume=resume)[1]

    root, resumed = _on_rank0(begin)
    the_run = RunDir(Path(root))
    main = dev.is_main()
    step_dir = the_run.step_dir(name)
    s = Session(name, the_run, step_dir, device, main, resumed, MetricsLog(step_dir / "metrics.jsonl", main))
    if main and not s.done:
        atomic_write_text(step_dir / "config.toml", to_toml(cfg))
    return s


# ---- the epoch loop of steps 1 and 2 -----------------------------------------------------------------------
@dataclass
class EpochState:
    """What an epoch-trained step trains; a step's own state extends it (e.g. ``ClassifyState``)."""

    model: torch.nn.Module  # what is trained (DDP / compile-wrapped while the loop runs)
    opt: torch.optim.Optimizer
    sched: Any  # pokegan.schedule.WarmupCosine
    scaler: Any  # torch.amp.GradScaler (enabled only under fp16 autocast)
    classes: list[str]
    manifest_sha256: str
    step: int = 0  # optimizer steps done
    epoch: int = 0  # where the next batch starts: epoch and batch within it
    batch: int = 0
    ddp: Any = None  # the DDP wrapper while training under torchrun (for no_sync)


class LoopConfig(Protocol):
    """The fields of a step config the epoch loop reads (ClassifyConfig, PretrainConfig)."""

    epochs: int
    grad_accum: int
    grad_clip: float
    log_every: int
    checkpoint_every: int
    stop_after_steps: int
    compile: bool
    amp: bool


class EpochStep(Protocol):
    """What a step trained by :func:`train_epochs` supplies; ``st`` is its state (an :class:`EpochState`)."""

    name: str
    kind: str  # the checkpoint kind, e.g. "poke-classifier-1"

    def payload(self, st) -> dict:
        """The checkpoint's own part: ``model_args`` and the weights (and any counters of the step)."""

    def restore(self, st, state: dict, path: Path) -> None:
        """Check a checkpoint fits (beyond kind, manifest and classes) and load the step's own part."""

    def micro_batch(self, st, batch, epoch: int, i: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward one micro-batch: ``(loss, terms to log)``; the loop scales, checks and backpropagates."""

    def end_epoch(self, s: Session, st, epoch: int) -> None:
        """After epoch ``epoch`` (0-based) on every rank: evaluate, log the metrics row, draw (rank 0)."""


def checkpoint(step: EpochStep, st: EpochState, cfg: Any, *, epoch: int, batch: int) -> dict:
    """One checkpoint dict (the layout of :mod:`pokegan.checkpoint`) at position ``(epoch, batch)``."""
    return {
        "kind": step.kind,
        **step.payload(st),
        "optimizer": st.opt.state_dict(),
        "schedule": st.sched.state_dict(),
        "scaler": st.scaler.state_dict(),
        "step": st.step,
        "epoch": epoch,
        "batch_in_epoch": batch,
        **provenance(cfg, st.classes, st.manifest_sha256),
    }


def resume_epochs(s: Session, step: EpochStep, st: EpochState) -> None:
    """Continue from ``STEP/last.pt`` when there is one: checks, weights, optimizer, RNG, position, metrics."""
    path = s.dir / "last.pt"
    if not path.is_file():
        return
    state = load_checkpoint(path)
    check_compatible(state, path, manifest_sha256=st.manifest_sha256, classes=st.classes, kind=step.kind)
    for key in ("optimizer", "scaler", "rng", "step", "epoch", "batch_in_epoch"):
        if key not in state:
            raise UserError(
                f"{path} has no {key!r}: it is not a resumable {step.name} checkpoint",
                hint=f"delete {s.dir} to restart the {step.name} step",
            )
    step.restore(st, state, path)
    restore_training_state(state, st.opt, st.scaler)
    st.step, st.epoch, st.batch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
    s.metrics.truncate(st.step)
    console.print(f"{step.name}: resumed from step {st.step} (epoch {st.epoch}, batch {st.batch})")


def steps_per_epoch(loader, grad_accum: int) -> int:
    n = len(loader) // grad_accum
    if n < 1:
        raise UserError(
            f"--grad-accum {grad_accum} exceeds the {len(loader)} batches of an epoch",
            hint="lower --grad-accum or --batch-size",
        )
    return n


def _optimizer_step(st: EpochState, params, grad_clip: float) -> float:
    """One update after the accumulated backward passes: the LR of this step from the schedule, optional
    gradient-norm clipping (unscaled first), the scaler step, zeroed grads. Returns the LR used."""
    lr = st.sched.apply(st.opt, st.step)
    if grad_clip > 0:
        st.scaler.unscale_(st.opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    st.scaler.step(st.opt)
    st.scaler.update()
    st.opt.zero_grad(set_to_none=True)
    return lr


def _backward(step: EpochStep, st: EpochState, cfg: LoopConfig, batch, epoch: int, i: int, sync: bool):
    """Forward and backward of one micro-batch (gradients all-reduced only when ``sync``)."""
    no_sync = st.ddp.no_sync() if st.ddp is not None and not sync else contextlib.nullcontext()
    with no_sync:
        loss, terms = step.micro_batch(st, batch, epoch, i)
        if not torch.isfinite(loss):
            raise UserError(
                f"{step.name}: the loss became {loss.item()} at step {st.step}",
                hint="lower --lr (or raise --warmup-steps) and continue with --resume",
            )
        st.scaler.scale(loss / cfg.grad_accum).backward()
    return loss.item(), terms


def _train_epoch(s: Session, step: EpochStep, st: EpochState, cfg: LoopConfig, loader, bar, start_step: int):
    """The batches of epoch ``st.epoch`` from ``st.batch``; returns True when ``stop_after_steps`` stopped it."""
    epoch, start = st.epoch, st.batch
    n_batches = steps_per_epoch(loader, cfg.grad_accum) * cfg.grad_accum
    loader.set_epoch(epoch, start)
    task = bar.add_task(
        f"{step.name} epoch {epoch + 1}/{cfg.epochs}", total=n_batches, completed=start, info=""
    )
    st.opt.zero_grad(set_to_none=True)
    for i, batch in enumerate(loader, start=start):
        if i >= n_batches:
            break
        last_micro = (i + 1) % cfg.grad_accum == 0
        loss, terms = _backward(step, st, cfg, batch, epoch, i, sync=last_micro)
        bar.update(task, advance=1, info=f"loss {loss:.4g}")
        if not last_micro:
            continue
        lr = _optimizer_step(st, st.model.parameters(), cfg.grad_clip)
        st.step += 1
        if st.step % cfg.log_every == 0:
            s.scalars({"train/loss": loss, "train/lr": lr}, st.step)
            s.scalars(terms, st.step, prefix="loss_terms/")
        every = cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0
        stop = cfg.stop_after_steps and st.step - start_step >= cfg.stop_after_steps
        if (every or stop) and s.main:
            save_checkpoint(s.dir / "last.pt", checkpoint(step, st, cfg, epoch=epoch, batch=i + 1))
        if stop:
            bar.remove_task(task)
            return True
    bar.remove_task(task)
    return False


def train_epochs(s: Session, step: EpochStep, st: EpochState, cfg: LoopConfig, loader) -> bool:
    """Train ``st`` from its position to ``cfg.epochs``; ``last.pt`` at every epoch end (rank 0).

    Wraps ``st.model`` for compile / DDP first (it stays wrapped: unwrap it to save). Returns True when
    ``stop_after_steps`` stopped the run (``last.pt`` saved; the caller returns without finishing).
    """
    st.model, st.ddp = dev.wrap_for_training(st.model, s.device, cfg.compile)
    s.open_writer()
    start_step, stopped = st.step, False
    st.model.train()
    try:
        with progress(s.main) as bar:
            while st.epoch < cfg.epochs and not stopped:
                stopped = _train_epoch(s, step, st, cfg, loader, bar, start_step)
                if stopped:
                    break
                step.end_epoch(s, st, st.epoch)
                st.epoch, st.batch = st.epoch + 1, 0
                if s.main:
                    save_checkpoint(s.dir / "last.pt", checkpoint(step, st, cfg, epoch=st.epoch, batch=0))
    finally:
        s.close()
    dev.barrier()
    if stopped:
        console.print(
            f"{step.name}: stopped after {st.step - start_step} steps (last.pt saved); continue with --resume"
        )
    return stopped


__all__ = [
    "EpochState",
    "EpochStep",
    "MetricsLog",
    "Session",
    "checkpoint",
    "open_session",
    "progress",
    "resume_epochs",
    "start_run",
    "steps_per_epoch",
    "train_epochs",
]
