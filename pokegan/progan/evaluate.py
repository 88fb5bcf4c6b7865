"""``poke eval --step progan``: the judge's figures of a progressive-DCGAN run, per stage checkpoint.

The same judge as step 3 (:mod:`pokegan.judge`, its default settings: a network no generator trained
against, cached per manifest) and the same reference sample (the val split, seeded, decoded at the
stage's size and resized to the judge's 32 px through the same function as the generated images), so a
ProGAN figure and a step-3 figure of the same manifest are comparable at the same size. The generator
samples its own prior, ``z ~ N(0, I)``, in eval mode (BatchNorm with running statistics, alpha as saved); a
class-conditional generator also draws each sample's label from the train split's class frequencies (the
checkpoint's ``class_counts``), so its samples are judged against the same class mix as the data.

Checkpoints judged: every ``stage_<size>px.pt`` and ``final.pt`` present (``last.pt`` too while a run is
unfinished). ``RUN/progan/eval.json`` holds ``{name: {size, step, judge_fd, judge_kid_mean, ...}}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_text
from pokegan.data import load_manifest
from pokegan.device import resolve_device
from pokegan.evaluate import generator_figures
from pokegan.judge import load_or_train_judge, reference_features
from pokegan.progan.state import load_generator
from pokegan.runs import open_run


@dataclass
class ProGANEvalConfig:
    run: Path
    n_samples: int = 2000
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"

    def validate(self) -> ProGANEvalConfig:
        if self.n_samples < 2:
            raise UserError(f"--n-samples {self.n_samples} must be >= 2", hint="e.g. --n-samples 2000")
        if self.batch_size < 1:
            raise UserError(f"batch size {self.batch_size} must be >= 1", hint="e.g. 64")
        return self


def progan_checkpoints(step_dir: Path) -> dict[str, Path]:
    """``{"stage_16px": ..., "stage_32px": ..., "final": ...}`` in training order (``last`` if unfinished)."""
    stages = sorted(step_dir.glob("stage_*px.pt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    found = {p.stem: p for p in stages}
    if (step_dir / "final.pt").is_file():
        found["final"] = step_dir / "final.pt"
    elif (step_dir / "last.pt").is_file():
        found["last"] = step_dir / "last.pt"
    return found


def progan_sampler(g, z_dim: int, seed: int, device: torch.device, class_counts: list[int] | None = None):
    """``sample(b) -> [b, 3, S, S]`` in [-1, 1]: ``g`` on seeded N(0, I) latents (a fresh stream per call);
    a conditional ``g`` (``g.args.n_classes``) on labels drawn in proportion to ``class_counts``."""
    gen = torch.Generator().manual_seed(seed)
    prior = None
    if g.args.n_classes:
        if class_counts is None or len(class_counts) != g.args.n_classes or sum(class_counts) <= 0:
            raise UserError(
                "this progan generator is class-conditional but its checkpoint has no class counts",
                hint="sample from a checkpoint written by `poke train progan --conditional`",
            )
        prior = torch.tensor(class_counts, dtype=torch.float)

    @torch.no_grad()
    def sample(b: int) -> Tensor:
        z = torch.randn(b, z_dim, generator=gen)
        if prior is None:
            return g(z.to(device)).float().clamp(-1, 1)
        y = torch.multinomial(prior, b, replacement=True, generator=gen)
        return g(z.to(device), y.to(device)).float().clamp(-1, 1)

    return sample


def evaluate_progan(cfg: ProGANEvalConfig) -> dict[str, dict]:
    """Judge figures of every stage checkpoint (and the final one) of ``RUN/progan``; writes ``eval.json``."""
    cfg.validate()
    run = open_run(Path(cfg.run), resume=True, create=False)
    step_dir = Path(run.step_dir("progan"))
    checkpoints = progan_checkpoints(step_dir)
    if not checkpoints:
        raise UserError(
            f"no progan checkpoints in {step_dir}",
            hint="train it first: `poke train progan --run RUN` (or pick the run that has progan/)",
        )
    device = resolve_device(cfg.device)
    manifest = load_manifest(run.manifest_dir, data_root=run.data_root)
    judge = load_or_train_judge(manifest, device=device)
    refs: dict[int, object] = {}
    results: dict[str, dict] = {}
    for name, path in checkpoints.items():
        g, saved = load_generator(path, device)
        size = int(g.args.resolution)
        if size not in refs:
            refs[size] = reference_features(judge, manifest, image_size=size, n=cfg.n_samples, seed=cfg.seed)
        sample = progan_sampler(g, g.args.z_dim, cfg.seed, device, saved.get("class_counts"))
        m = {"size": size, "step": int(saved["step"]), "alpha": float(g.alpha), "checkpoint": str(path)}
        m.update(
            generator_figures(
                sample, cfg.n_samples, cfg.batch_size, judge=judge, judge_ref=refs[size], seed=cfg.seed
            )
        )
        results[name] = m
        console.print(f"progan eval: {name} ({size} px, step {m['step']}): judge FD {m['judge_fd']:.1f}")
    atomic_write_text(step_dir / "eval.json", json.dumps(results, indent=2))
    return results
