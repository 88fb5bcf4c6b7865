"""Training steps: classify (1), embed, pretrain (2), gmm and gan (3); each writes one folder of a run.

Shared plumbing of steps 1 and 2 lives here: opening the run and the step folder on rank 0 only (other
ranks wait and follow), the TensorBoard writer (rank 0), a per-epoch metrics log that is truncated back to
the checkpoint on resume, and the progress bar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pokedata.errors import UserError
from pokedata.store import atomic_write_text


@dataclass
class StepPlace:
    run: Any  # pokegan.runs.RunDir
    dir: Path
    resumed: bool  # the step folder already held a started step (resumed with --resume)


def prepare_step(
    name: str,
    *,
    resume: bool,
    out: Path | str | None = None,
    run_dir: Path | str | None = None,
    manifest_dir: Path | str | None = None,
    data_root: str = "",
    image_size: int | None = None,
) -> StepPlace:
    """Open (``out``: create) the run and the step folder on rank 0; other ranks get the same or its error."""
    from pokegan import device as dev
    from pokegan.runs import RunDir, open_run

    result: tuple[str, Any] = ("ok", None)
    if dev.is_main():
        try:
            if out is not None:
                run = open_run(
                    out,
                    resume=resume,
                    create=True,
                    manifest_dir=manifest_dir,
                    data_root=data_root or None,
                    image_size=image_size,
                )
            else:
                run = open_run(run_dir, resume=True, create=False)
            if run.is_done(name):
                result = ("done", str(run.root))
            else:
                d, started = run.begin_step(name, resume=resume)
                result = ("ok", (str(run.root), started))
        except UserError as exc:
            result = ("error", (str(exc.args[0]), exc.hint))
    kind, payload = dev.broadcast_object(result)
    if kind == "error":
        raise UserError(payload[0], hint=payload[1])
    if kind == "done":
        run = RunDir(Path(payload))
        return StepPlace(run, run.step_dir(name), resumed=False)
    run = RunDir(Path(payload[0]))
    return StepPlace(run, run.step_dir(name), resumed=bool(payload[1]))


def tb_writer(step_dir: Path):
    """A TensorBoard writer under ``STEP/tb`` on rank 0; ``None`` elsewhere."""
    from pokegan import device as dev

    if not dev.is_main():
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(step_dir / "tb"))


class MetricsLog:
    """``STEP/metrics.jsonl``: one JSON row per epoch (rank 0 writes); rows past a resumed checkpoint are dropped."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            self.rows = [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]

    def truncate(self, epoch: int) -> None:
        """Keep rows of epochs before ``epoch`` (the resumed checkpoint's)."""
        self.rows = [r for r in self.rows if r.get("epoch", 0) < epoch]
        self._write()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write()

    def _write(self) -> None:
        if self.enabled:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows))

    def curves(self, *keys: str) -> dict[str, list[tuple[int, float]]]:
        return {k: [(r["step"], r[k]) for r in self.rows if r.get(k) is not None] for k in keys}


def progress(enabled: bool):
    """A rich progress bar on stderr (disabled off rank 0)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from pokedata.log import console

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def write_config(step_dir: Path, cfg: Any) -> None:
    from pokegan import device as dev
    from pokegan.config import config_to_toml

    if dev.is_main():
        atomic_write_text(step_dir / "config.toml", config_to_toml(cfg))


def param_groups(model, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv / linear weights only (not on biases or norm scales)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def optimizer_step(opt, scaler, sched, params, step: int, grad_clip: float) -> float:
    """One optimizer update after the accumulated backward passes: the LR for ``step`` from the schedule,
    optional gradient-norm clipping (unscaled first), the scaler step, zeroed grads. Returns the LR used."""
    import torch

    lr = sched.apply(opt, step)
    if grad_clip > 0:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    return lr


__all__ = [
    "MetricsLog",
    "optimizer_step",
    "StepPlace",
    "param_groups",
    "prepare_step",
    "progress",
    "tb_writer",
    "write_config",
]
