"""``poke demo``: the whole pipeline, offline, in a few minutes on a laptop CPU.

Stages, each calling the library function behind the matching command (never the CLI):

1. ``sprites``   draw the synthetic sprite set (:mod:`pokedata.synth`) and its catalog CSV
2. ``fetch``     ``poke fetch folder`` (class from the folder name, matched to the catalog)
3. ``clean``     ``poke clean --dedup`` (flatten transparency to JPG, then exact + near dedup)
4. ``manifest``  ``poke build-manifest`` (into ``OUT/manifests/demo``, never the repo's ``manifests/``)
5. ``train``     ``poke train all --preset tiny`` (classify -> embed -> pretrain -> gmm -> gan)
6. ``sample``    ``poke sample`` (a grid from the finished run)
7. ``report``    ``poke report`` (the HTML browser of the dataset, manifest and run; it runs even when the
                 training stages could not, showing what there is)

Everything lands under ``--out`` (default ``runs/demo``)::

    OUT/sprites/        the drawn sprite set (+ synth.json: what was planted)
    OUT/catalog.csv     the demo's 12-class catalog
    OUT/data/           the dataset directory (ledger, raw/, clean/, reports/ with the dedup contact sheets)
    OUT/manifests/demo/ the manifest
    OUT/run/            the training run
    OUT/samples.png     the sample grid
    OUT/report.md       every stage with its figures and the pictures; OUT/demo.json the same as JSON
    OUT/report/         the HTML report (open OUT/report/index.html; its path is the demo's last line)

Every stage is resumable on its own (the folder import adds nothing twice, clean does only what is
missing, dedup is deterministic, the trainer resumes from its checkpoints), so ``--resume`` simply runs
the stages again. Figures come from the ledger and the manifest, not from counters of this run, so a
resumed demo reports the same numbers as an uninterrupted one. After the dedup the demo checks that
each planted problem of the sprite set was found (``findings`` in the summary).
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pokedata.demo_figures import (
    clean_figures,
    fetch_figures,
    kept_images,
    manifest_figures,
    planted_findings,
)
from pokedata.demo_report import collect_artifacts, print_stage, print_summary, write_report
from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_text
from pokedata.synth import SynthConfig, SynthReport, make_sprite_set, write_demo_catalog

STAGES = ("sprites", "fetch", "clean", "manifest", "train", "sample", "report")
ALWAYS_RUN = frozenset({"report"})
"""Stages that run even after an earlier stage is missing (they show whatever the others left)."""
SUMMARY_NAME = "demo.json"
REPORT_NAME = "report.md"
MANIFEST_NAME = "demo"
DEDUP_THRESHOLD = 4
"""Hamming bits for the demo's near-duplicate search. The synthetic sprites are flat drawings on an
empty background, so unrelated poses of one creature sit closer in pHash than photos do; the planted
near copies sit at 0-4 bits (see tests/test_synth.py), unrelated poses mostly above 6."""
MIN_SIDE = 32  # the sprites are 48-96 px; the planted "too small" one is 16 px

# Training: --preset tiny (32 px; E's and F's CPU smoke settings) as it is for the full demo; --quick cuts
# every step to a token run that only proves each one works.
FULL_TRAIN: dict[str, dict[str, Any]] = {}
QUICK_TRAIN: dict[str, dict[str, Any]] = {
    "classify": {"epochs": 1},
    "pretrain": {"epochs": 1},
    "gan": {"steps": 4, "sample_every": 4, "checkpoint_every": 4, "metrics_every": 4, "metrics_samples": 32},
}
FULL_SYNTH = SynthConfig()
QUICK_SYNTH = SynthConfig(
    n_classes=6, per_class=14, exact_copies=2, pixel_copies=2, near_dups=3, corrupt=3, too_small=1
)


@dataclass
class DemoConfig:
    """Options of ``poke demo``; ``synth`` and ``train_overrides`` are knobs for tests."""

    out: Path = Path("runs/demo")
    seed: int = 0
    quick: bool = False  # fewer classes and images, shorter training (about a minute)
    resume: bool = False
    progress: bool = True
    synth: SynthConfig | None = None  # None: the full or quick preset
    train_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # {step: {key: value}}
    sample_n: int = 64

    def validate(self) -> DemoConfig:
        out = Path(self.out).expanduser()
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory", hint="pass a folder path")
        if out.is_dir() and any(out.iterdir()) and not self.resume:
            raise UserError(
                f"--out {out} already holds files (an earlier demo?)",
                hint="pass --resume to continue it, or choose another --out",
            )
        if self.sample_n < 1:
            raise UserError(f"sample_n={self.sample_n} must be >= 1")
        if self.seed < 0:
            raise UserError(f"--seed {self.seed} must be >= 0")
        self.out = out.resolve()
        return self

    @property
    def synth_config(self) -> SynthConfig:
        base = self.synth or (QUICK_SYNTH if self.quick else FULL_SYNTH)
        return replace(base, seed=self.seed)

    # paths under OUT
    @property
    def sprites(self) -> Path:
        return self.out / "sprites"

    @property
    def catalog(self) -> Path:
        return self.out / "catalog.csv"

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def manifest_dir(self) -> Path:
        return self.out / "manifests" / MANIFEST_NAME

    @property
    def run_dir(self) -> Path:
        return self.out / "run"

    @property
    def train_config(self) -> Path:
        return self.out / "train.toml"

    @property
    def sample_grid(self) -> Path:
        return self.out / "samples.png"

    @property
    def report_dir(self) -> Path:
        return self.out / "report"


@dataclass
class StageResult:
    name: str
    status: str = (
        "pending"  # done | missing (its library is not installed) | blocked (an earlier stage) | failed
    )
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class DemoSummary:
    out: str
    stages: list[StageResult]
    settings: dict[str, Any] = field(default_factory=dict)  # seed, synth and train settings (for --resume)
    artifacts: dict[str, str] = field(
        default_factory=dict
    )  # sample_grid, recon_grid, contact_sheet, report...
    findings: dict[str, Any] = field(default_factory=dict)  # planted problem -> found / planted
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return all(s.status == "done" for s in self.stages)

    def stage(self, name: str) -> StageResult:
        return next(s for s in self.stages if s.name == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def demo_settings(cfg: DemoConfig) -> dict[str, Any]:
    """What must match for ``--resume`` to continue the same demo."""
    return {
        "seed": cfg.seed,
        "synth": asdict(cfg.synth_config),
        "train": train_overrides(cfg),
        "sample_n": cfg.sample_n,
    }


def train_overrides(cfg: DemoConfig) -> dict[str, dict[str, Any]]:
    """The demo's training settings on top of ``--preset tiny``: [section] -> {key: value}."""
    base = QUICK_TRAIN if cfg.quick else FULL_TRAIN
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in cfg.train_overrides.items():
        merged.setdefault(section, {}).update(values)
    for section in ("classify", "pretrain", "gan"):
        merged.setdefault(section, {}).setdefault("seed", cfg.seed)
    return merged


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    """A small TOML writer for flat sections of scalars and lists (what the train config needs)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))

    lines = ["# written by `poke demo`: the demo's settings on top of --preset tiny"]
    for section, values in sections.items():
        lines += ["", f"[{section}]"] + [f"{k} = {value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _check_resume(cfg: DemoConfig) -> None:
    saved = cfg.out / SUMMARY_NAME
    if not (cfg.resume and saved.is_file()):
        return
    before = json.loads(saved.read_text(encoding="utf-8")).get("settings")
    if before is not None and before != json.loads(json.dumps(demo_settings(cfg))):
        raise UserError(
            f"--resume: the demo in {cfg.out} was started with other settings (--seed/--quick)",
            hint="rerun with the same --seed and --quick as before, or choose another --out",
        )


class StageMissing(Exception):
    """A stage's library is not part of this installation."""


def _require(module: str):
    """Import a stage's library; only *that* module being absent makes the stage "missing"."""

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise StageMissing(f"{module} is not available in this installation") from exc
        raise


# -- the stages ---------------------------------------------------------------------------------------
def _stage_sprites(cfg: DemoConfig, ctx: dict) -> dict:
    report = make_sprite_set(cfg.sprites, cfg.synth_config, overwrite=not cfg.resume)
    write_demo_catalog(cfg.catalog, len(report.classes))
    ctx["synth"] = report
    return {
        "files": report.files,
        "classes": len(report.classes),
        "sprites": report.sprites,
        "animated": len(report.animated),
        "planted": {
            "exact copies": len(report.exact_copies),
            "re-encoded copies": len(report.pixel_copies),
            "near copies": len(report.near_dups),
            "corrupt": len(report.corrupt),
            "too small": len(report.too_small),
            "conflict pairs": int(report.conflict is not None),
        },
    }


def _stage_fetch(cfg: DemoConfig, ctx: dict) -> dict:
    folder = _require("pokedata.fetch.folder")
    folder.import_folder(
        folder.FolderImportConfig(
            root=cfg.sprites, data=cfg.data, class_from="dirname", catalog=cfg.catalog, progress=cfg.progress
        )
    )

    return fetch_figures(cfg.data)


def _stage_clean(cfg: DemoConfig, ctx: dict) -> dict:
    clean = _require("pokedata.clean")
    dedup = _require("pokedata.dedup")
    clean.run_clean(
        clean.CleanConfig(data=cfg.data, min_side=MIN_SIDE, frames="first", workers=2, progress=cfg.progress)
    )
    summary = dedup.run_dedup(
        dedup.DedupConfig(
            data=cfg.data, threshold=DEDUP_THRESHOLD, conflicts="drop", workers=2, progress=cfg.progress
        )
    )

    figures = clean_figures(cfg.data)
    figures["dedup"] = {
        "method": summary.method,
        "threshold": summary.threshold,
        "exact groups": summary.exact_groups,
        "near groups": summary.near_groups,
        "duplicates folded": summary.marked_duplicates,
        "conflict images": summary.conflict_images,
        "kept": kept_images(cfg.data),
    }
    ctx["dedup_sheets"] = list(summary.sheets)
    ctx["dedup_report"] = summary.report
    if ctx.get("synth") is not None:
        ctx["findings"] = planted_findings(cfg.data, ctx["synth"])
    return figures


def _stage_manifest(cfg: DemoConfig, ctx: dict) -> dict:
    manifest = _require("pokedata.manifest")
    manifest.build_manifest(
        manifest.ManifestConfig(
            data=cfg.data,
            catalog=cfg.catalog,
            name=MANIFEST_NAME,
            out=cfg.manifest_dir.parent,
            val=0.15,
            seed=cfg.seed,
        )
    )

    return manifest_figures(cfg.manifest_dir)


def _stage_train(cfg: DemoConfig, ctx: dict) -> dict:
    pipeline = _require("pokegan.pipeline")
    for step in ("classify", "embed", "pretrain", "gmm", "gan"):
        _require(f"pokegan.steps.{step}")

    atomic_write_text(cfg.train_config, to_toml(train_overrides(cfg)))
    summary = pipeline.run_all(
        pipeline.PipelineConfig(
            manifest=cfg.manifest_dir,
            out=cfg.run_dir,
            preset="tiny",
            config_file=cfg.train_config,
            resume=cfg.run_dir.exists(),
        )
    )
    ctx["train"] = summary
    return train_figures(summary)


# (figure shown, step, key in the step's done.json); steps report more, these are the ones people read
_TRAIN_FIGURES = (
    ("train accuracy", "classify", "train_top1"),
    ("val accuracy", "classify", "val_top1"),
    ("val top-5", "classify", "val_top5"),
    ("epochs", "classify", "epochs"),
    ("images encoded", "embed", "images"),
    ("first loss", "pretrain", "first_loss"),
    ("loss", "pretrain", "loss"),
    ("epochs", "pretrain", "epochs"),
    ("components", "gmm", "components"),
    ("mean log-likelihood", "gmm", "mean_log_likelihood"),
    ("steps", "gan", "steps"),
    ("best judge FD", "gan", "best_judge_fd"),
    ("NaN events", "gan", "nan_events"),
)


def train_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures of ``poke train all``'s summary worth printing, per step, rounded."""

    def rnd(v: Any) -> Any:
        return round(v, 4) if isinstance(v, float) else v

    steps = summary.get("steps", {})
    figures: dict[str, Any] = {}
    for step, s in steps.items():
        figures[step] = {"seconds": round(s["seconds"], 1) if s.get("seconds") else None}
    for label, step, key in _TRAIN_FIGURES:
        value = steps.get(step, {}).get("numbers", {}).get(key)
        if value is not None:
            figures.setdefault(step, {})[label] = rnd(value)
    final = summary.get("final_metrics") or {}
    for label, key in (
        ("final judge FD", "judge_fd"),
        ("final judge KID", "judge_kid_mean"),
        ("final judge precision", "judge_precision"),
        ("final judge recall", "judge_recall"),
        ("final FCD (step-1 classifier)", "fcd"),
    ):
        if key in final:
            figures.setdefault("gan", {})[label] = rnd(final[key])
    return figures


def _stage_sample(cfg: DemoConfig, ctx: dict) -> dict:
    sampling = _require("pokegan.sampling")
    written = sampling.run_sample(
        sampling.SampleConfig(
            run=cfg.run_dir, n=cfg.sample_n, grid=cfg.sample_grid, seed=cfg.seed, device="auto"
        )
    )
    return {"images": cfg.sample_n, "grid": str(written.get("grid", cfg.sample_grid))}


def _stage_report(cfg: DemoConfig, ctx: dict) -> dict:
    report = _require("pokedata.report")
    run = cfg.run_dir if (cfg.run_dir / "run.json").is_file() else None
    manifest = cfg.manifest_dir if (cfg.manifest_dir / "stats.json").is_file() else None
    summary = report.build_report(
        report.ReportConfig(data=cfg.data, manifest=manifest, run=run, out=cfg.report_dir, workers=2)
    )
    ctx["html_report"] = summary.index
    return {
        "pages": summary.pages,
        "files written": summary.written,
        "sprite sheets": summary.sheets_rendered + summary.sheets_reused,
        "MB": round(summary.bytes / 1e6, 2),
        "index": str(summary.index),
    }


_RUNNERS: dict[str, Callable[[DemoConfig, dict], dict]] = {
    "sprites": _stage_sprites,
    "fetch": _stage_fetch,
    "clean": _stage_clean,
    "manifest": _stage_manifest,
    "train": _stage_train,
    "sample": _stage_sample,
    "report": _stage_report,
}
_TITLES = {
    "sprites": "draw a synthetic sprite set",
    "fetch": "poke fetch folder",
    "clean": "poke clean --dedup",
    "manifest": "poke build-manifest",
    "train": "poke train all --preset tiny",
    "sample": "poke sample",
    "report": "poke report",
}


def run_demo(cfg: DemoConfig) -> DemoSummary:
    """Run every stage in order, print each with its figures, write OUT/demo.json and OUT/report.md."""

    cfg.validate()
    cfg.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _check_resume(cfg)
    summary = DemoSummary(
        out=str(cfg.out), stages=[StageResult(name) for name in STAGES], settings=demo_settings(cfg)
    )
    ctx: dict[str, Any] = {}
    if cfg.resume and (cfg.sprites / "synth.json").is_file():
        ctx["synth"] = SynthReport.from_json((cfg.sprites / "synth.json").read_text(encoding="utf-8"))
    blocked_by = ""
    for number, stage in enumerate(summary.stages, start=1):
        console.rule(f"[bold]{number}/{len(STAGES)}  {_TITLES[stage.name]}")
        if blocked_by and stage.name not in ALWAYS_RUN:
            stage.status, stage.note = "blocked", f"needs the {blocked_by} stage"
        else:
            t0 = time.monotonic()
            try:
                stage.figures = _RUNNERS[stage.name](cfg, ctx) or {}
                stage.status = "done"
            except StageMissing as exc:
                stage.status, stage.note = "missing", str(exc)
                blocked_by = stage.name
            stage.seconds = round(time.monotonic() - t0, 2)
        print_stage(stage)
        summary.findings = ctx.get("findings", summary.findings)
        atomic_write_text(cfg.out / SUMMARY_NAME, summary.to_json())
    summary.seconds = round(time.monotonic() - started, 2)
    summary.artifacts = collect_artifacts(cfg, ctx)
    summary.artifacts["report"] = str(write_report(cfg, summary))
    atomic_write_text(cfg.out / SUMMARY_NAME, summary.to_json())
    print_summary(summary)
    return summary
