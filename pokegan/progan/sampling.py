"""``poke sample --step progan``: images from a progressive-DCGAN run, by class when it is conditional.

Works from the run directory alone: the generator (its EMA copy when the run kept one) is rebuilt from a
checkpoint of ``RUN/progan/`` (``final.pt`` by default, else ``last.pt``; or ``stage_<S>px.pt``). An
unconditional generator draws ``z ~ N(0, I)``; a conditional one draws, for each ``--class`` asked for,
``n`` images of that class (one grid row per class), or without ``--class`` labels in proportion to the
train split's class frequencies (what ``poke eval --step progan`` judges).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from pokedata.errors import UserError
from pokedata.log import console
from pokegan.device import resolve_device
from pokegan.progan.evaluate import progan_sampler
from pokegan.progan.state import load_generator
from pokegan.sampling import save_pngs
from pokegan.viz import save_image_grid


@dataclass
class ProGANSampleConfig:
    run: Path
    n: int = 64  # images in all; with classes: per class
    classes: list[str] = field(default_factory=list)  # class names (conditional runs); empty: the prior
    grid: Path | None = None  # default: RUN/samples/progan-seed<S>.png when neither grid nor out is given
    out: Path | None = None  # a folder of individual PNGs
    seed: int = 0
    checkpoint: str = "final"  # final (falls back to last) | last | stage_<S>px
    device: str = "auto"

    def validate(self) -> ProGANSampleConfig:
        if self.n < 1:
            raise UserError(f"--n {self.n} must be >= 1", hint="e.g. --n 64")
        if not Path(self.run).is_dir():
            raise UserError(
                f"--run {self.run} is not a directory",
                hint="pass a run directory made by `poke train progan`",
            )
        return self


def progan_checkpoint_path(run_dir: Path, which: str = "final") -> Path:
    """``RUN/progan/<which>.pt``; ``final`` falls back to ``last`` (a run still training)."""
    step = Path(run_dir) / "progan"
    order = ["final.pt", "last.pt"] if which == "final" else [f"{which}.pt"]
    for name in order:
        if (step / name).is_file():
            return step / name
    found = sorted(p.stem for p in step.glob("*.pt"))
    raise UserError(
        f"no progan checkpoint {' or '.join(order)} in {step}",
        hint=f"use --checkpoint with one of {', '.join(found)}"
        if found
        else "train it first: `poke train progan --run RUN`",
    )


def class_index(name: str, classes: list[str], present: list[int]) -> int:
    """The index of class ``name`` (exact, else case-insensitive); a clear error naming close matches."""
    if name in classes:
        idx = classes.index(name)
    else:
        folded = [c.casefold() for c in classes]
        if name.casefold() not in folded:
            close = difflib.get_close_matches(name, classes, n=3, cutoff=0.6)
            raise UserError(
                f"--class {name!r} is not a class of this run",
                hint=f"did you mean {', '.join(close)}?" if close else "see the manifest's classes.json",
            )
        idx = folded.index(name.casefold())
    if not present[idx]:
        raise UserError(
            f"--class {classes[idx]!r} has no train images in this run's manifest: the generator never saw it",
            hint="pick a class with train images",
        )
    return idx


def sample_progan(cfg: ProGANSampleConfig) -> dict[str, object]:
    """Write a grid and/or PNGs from a progan checkpoint; returns what was written."""
    cfg.validate()
    device = resolve_device(cfg.device)
    path = progan_checkpoint_path(Path(cfg.run), cfg.checkpoint)
    g, saved = load_generator(path, device)
    counts, classes = saved.get("class_counts"), list(saved.get("classes") or [])
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        if cfg.classes:
            if not g.args.n_classes:
                raise UserError(
                    f"{path} is an unconditional generator: it cannot draw a given class",
                    hint="drop --class, or train with `poke train progan --conditional`",
                )
            labels = [class_index(name, classes, counts) for name in cfg.classes]
            y = torch.tensor(labels).repeat_interleave(cfg.n)  # [len(classes) * n]
            z = torch.randn(len(y), g.args.z_dim, generator=gen)
            images = torch.cat(
                [
                    g(zb.to(device), yb.to(device)).float().clamp(-1, 1).cpu()
                    for zb, yb in zip(z.split(64), y.split(64), strict=True)
                ]
            )
            nrow = cfg.n
        else:
            sample = progan_sampler(g, g.args.z_dim, cfg.seed, device, counts)
            images = torch.cat([sample(min(64, cfg.n - i)).cpu() for i in range(0, cfg.n, 64)])
            nrow = max(1, int(math.ceil(math.sqrt(cfg.n))))
    written: dict[str, object] = {"checkpoint": str(path), "step": saved.get("step"), "n": len(images)}
    grid = cfg.grid
    if grid is None and cfg.out is None:
        tag = "-".join(c.replace(" ", "_") for c in cfg.classes)
        grid = Path(cfg.run) / "samples" / f"progan{'-' + tag if tag else ''}-seed{cfg.seed}.png"
    if grid is not None:
        size = images.shape[-1]
        shown = (
            F.interpolate(images, scale_factor=max(1, 64 // size), mode="nearest") if size < 64 else images
        )
        save_image_grid(shown, Path(grid), nrow=nrow)
        written["grid"] = str(grid)
    if cfg.out is not None:
        written["pngs"] = len(save_pngs(images, Path(cfg.out), prefix="progan"))
        written["out"] = str(cfg.out)
    for key in ("grid", "out"):
        if key in written:
            console.print(f"[green]wrote[/] {key}: {written[key]}")
    return written
