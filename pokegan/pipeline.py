"""``poke train all``: classify -> embed -> pretrain -> gmm -> gan in one command.

It calls each step's library function in order (the same ones the single-step commands call). Every
step's config is resolved and validated *before* anything runs (defaults <- ``--preset`` <- the run's
``[data]`` <- ``--config FILE`` <- CLI overrides), so a typo in the ``[gan]`` section fails in the first
second, not after hours of step 1. A step whose ``done.json`` exists is skipped; with ``--resume`` an
interrupted step continues from its last checkpoint. Wall time per step accumulates across sessions in
``RUN/pipeline.json``; the end prints a summary and writes ``RUN/report.md``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_text
from pokegan.config import ClassifyConfig, EmbedConfig, PretrainConfig, load_step_config
from pokegan.runs import RunDir
from pokegan.steps.classify import new_run, run_classify
from pokegan.steps.embed import run_embed
from pokegan.steps.gan import GANConfig, run_gan
from pokegan.steps.gan_setup import scratch_generator_args
from pokegan.steps.gmm import GMMConfig, run_gmm
from pokegan.steps.pretrain import run_pretrain

STEPS = ("classify", "embed", "pretrain", "gmm", "gan")


@dataclass
class PipelineConfig:
    manifest: Path
    out: Path
    preset: str | None = None
    config_file: Path | None = None
    resume: bool = False
    data_root: Path | None = None
    device: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per step section: {key: value}

    def validate(self) -> PipelineConfig:
        if not Path(self.manifest).exists():
            raise UserError(f"--manifest {self.manifest} does not exist", hint="pass manifests/NAME")
        unknown = set(self.overrides) - set(STEPS)
        if unknown:
            raise UserError(
                f"unknown step(s) {sorted(unknown)} in overrides", hint=f"steps: {', '.join(STEPS)}"
            )
        return self


def resolve_configs(cfg: PipelineConfig) -> dict[str, Any]:
    """Every step's resolved, validated config (nothing runs before all of them are valid)."""

    def over(step: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {**extra, **cfg.overrides.get(step, {})}

    common = {"device": cfg.device}
    data = {"data.data_root": str(cfg.data_root) if cfg.data_root else None}
    kw = {"config_file": cfg.config_file, "preset": cfg.preset}
    classify = load_step_config(
        ClassifyConfig, "classify", overrides=over("classify", {**common, **data}), **kw
    )
    base = {"data": dataclasses.asdict(classify.data)}
    return {
        "classify": classify,
        "embed": load_step_config(EmbedConfig, "embed", overrides=over("embed", common), **kw),
        "pretrain": load_step_config(
            PretrainConfig, "pretrain", overrides=over("pretrain", common), base=base, **kw
        ),
        "gmm": load_step_config(GMMConfig, "gmm", overrides=over("gmm", common), **kw),
        "gan": load_step_config(GANConfig, "gan", overrides=over("gan", common), base=base, **kw),
    }


def _scratch(out: Path, pretrain_cfg) -> dict:

    return scratch_generator_args(RunDir(out), pretrain_cfg)


def _runners(
    cfg: PipelineConfig, configs: dict[str, Any], gan_on_step: Callable[[int], None] | None
) -> dict[str, Callable]:

    out = Path(cfg.out)
    return {
        "classify": lambda c, resume: run_classify(
            c, new_run(c, cfg.manifest, out, resume=resume), resume=resume
        ),
        "embed": lambda c, resume: run_embed(c, out, resume=resume),
        "pretrain": lambda c, resume: run_pretrain(c, out, resume=resume),
        "gmm": lambda c, resume: run_gmm(c, out, resume=resume),
        "gan": lambda c, resume: run_gan(
            c, out, resume=resume, on_step=gan_on_step, scratch_args=_scratch(out, configs["pretrain"])
        ),
    }


def _load_times(path: Path) -> dict[str, Any]:
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def run_all(cfg: PipelineConfig, *, gan_on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run every unfinished step in order; returns the summary (also in ``RUN/pipeline.json``)."""

    cfg.validate()
    configs = resolve_configs(cfg)
    out = Path(cfg.out)
    if out.is_dir() and any(out.iterdir()) and not cfg.resume:
        raise UserError(
            f"--out {out} already exists", hint="pass --resume to continue that run, or choose a new --out"
        )
    runners = _runners(cfg, configs, gan_on_step)
    times_path = out / "pipeline.json"
    record = _load_times(times_path)
    steps = record.setdefault("steps", {})
    for name in STEPS:
        run = RunDir(out)
        if out.is_dir() and run.is_done(name):
            console.print(f"[dim]{name}: done.json exists, skipped[/]")
            steps.setdefault(name, {"seconds": None})["status"] = "done"
            continue
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        try:
            runners[name](configs[name], cfg.resume)
        finally:
            entry = steps.setdefault(name, {"seconds": 0.0})
            entry["seconds"] = float(entry.get("seconds") or 0.0) + time.perf_counter() - t0
            entry["status"] = "done" if RunDir(out).is_done(name) else "interrupted"
            if out.is_dir():
                atomic_write_text(times_path, json.dumps(record, indent=2))
    summary = summarize(RunDir(out), record)
    record["summary"] = summary
    atomic_write_text(times_path, json.dumps(record, indent=2, default=str))
    write_report(RunDir(out), summary)
    print_summary(summary)
    return summary


# ---- summary and report ------------------------------------------------------------------------------
def _latest(folder: Path, pattern: str) -> str | None:
    found = sorted(folder.glob(pattern))
    return str(found[-1]) if found else None


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in d.items()
        if isinstance(v, (int, float, str)) and not isinstance(v, bool) and k != "step"
    }


def summarize(run, record: dict[str, Any]) -> dict[str, Any]:
    """Per-step time and key numbers, final metrics and the paths a person wants to open."""
    steps = {}
    for name in STEPS:
        done = run.done_summary(name)
        steps[name] = {
            "seconds": record.get("steps", {}).get(name, {}).get("seconds"),
            "done": bool(done),
            "numbers": {
                k: v for k, v in _scalars(done).items() if isinstance(v, (int, float)) and "seconds" not in k
            },
        }
    gan = run.done_summary("gan")
    return {
        "run": str(run.root),
        "steps": steps,
        "final_metrics": gan.get("final_metrics", {}),
        "best_judge_fd": gan.get("best_judge_fd"),
        "kept": gan.get("kept") or {},
        "sample_grid": str(run.step_dir("gan") / "samples.png"),
        "reconstruction_grid": _latest(run.step_dir("pretrain") / "recon", "*.png"),
        "pca_plot": str(run.step_dir("gmm") / "pca.png"),
        "report": str(run.root / "report.md"),
    }


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "(earlier session)"
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.1f} s"


def write_report(run, summary: dict[str, Any]) -> Path:
    """``RUN/report.md``: times, numbers and pictures of every step, with links relative to the run."""
    root = Path(run.root)

    def rel(p: str | None) -> str | None:
        if not p or not Path(p).is_file():
            return None
        return Path(p).resolve().relative_to(root.resolve()).as_posix()

    lines = [f"# Run report: {root.name}", "", "| step | time | key numbers |", "|---|---|---|"]
    for name, s in summary["steps"].items():
        nums = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(s["numbers"].items())[:6]
        )
        lines.append(f"| {name} | {_fmt_seconds(s['seconds'])} | {nums} |")
    fm = summary.get("final_metrics") or {}
    if fm:
        lines += [
            "",
            "## Final metrics (the last step's EMA generator vs val images)",
            "",
            "`judge_*`: in the judge's feature space (a network the generator never saw; the headline figures);"
            " `fcd`/`fck`: in the step-1 classifier's space (secondary). See docs/training.md.",
            "",
        ]
        lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in fm.items()]
    kept = summary.get("kept") or {}
    if kept.get("note"):
        lines += ["", "## The kept generator (`best.pt`: what `poke sample` draws by default)", "", kept["note"]]
    for title, key in (
        ("Samples (the kept generator, EMA, fixed GMM latents)", "sample_grid"),
        ("Reconstructions (inputs above, reconstructions below)", "reconstruction_grid"),
        ("Embeddings vs GMM samples (2-D PCA)", "pca_plot"),
    ):
        r = rel(summary.get(key))
        if r:
            lines += ["", f"## {title}", "", f"![{key}]({r})"]
    path = root / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def print_summary(summary: dict[str, Any]) -> None:

    table = Table(title=f"poke train all: {summary['run']}")
    table.add_column("step")
    table.add_column("time", justify="right")
    table.add_column("status")
    for name, s in summary["steps"].items():
        table.add_row(name, _fmt_seconds(s["seconds"]), "done" if s["done"] else "not done")
    console.print(table)
    fm = summary.get("final_metrics") or {}
    if fm:
        console.print(
            "final metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in fm.items() if isinstance(v, float))
        )
    kept_note = (summary.get("kept") or {}).get("note")
    if kept_note:
        console.print(kept_note)
    for key in ("sample_grid", "reconstruction_grid", "pca_plot", "report"):
        if summary.get(key):
            console.print(f"{key.replace('_', ' ')}: {summary[key]}")
