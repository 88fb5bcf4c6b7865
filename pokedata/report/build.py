"""``poke report``: options, the build, and its summary."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rich.table import Table

from pokedata.errors import UserError
from pokedata.report.classpage import write_class_pages
from pokedata.report.model import load_dataset
from pokedata.report.pages import class_counts, classes_page, overview
from pokedata.report.review import write_conflicts, write_quarantine
from pokedata.report.runpage import check_run, read_json, write_run_page
from pokedata.report.site import Site
from pokedata.report.sprites import FORMATS, SheetSpec

STATUS_NAME = "status.json"


@dataclass
class ReportConfig:
    """Options of ``poke report``."""

    data: Path
    out: Path = Path("report")
    manifest: Path | None = None  # None: the run's manifest when --run is given, else no manifest figures
    run: Path | None = None
    page_size: int = 400  # thumbnails per page (class, conflicts and quarantine pages)
    thumb: int = 64  # thumbnail side in pixels
    image_format: str = "webp"  # sprite sheets: webp | jpeg
    quality: int = 80
    workers: int = 2  # processes drawing sprite sheets
    force: bool = False  # redraw everything instead of only what changed

    def validated(self) -> ReportConfig:
        if self.page_size < 16:
            raise UserError(
                f"--page-size {self.page_size} is too small", hint="use at least 16, e.g. --page-size 400"
            )
        if not 16 <= self.thumb <= 256:
            raise UserError(f"--thumb {self.thumb} must be between 16 and 256 pixels", hint="e.g. --thumb 64")
        if self.image_format not in FORMATS:
            raise UserError(
                f"--format {self.image_format!r} is not supported", hint=f"choose {' or '.join(FORMATS)}"
            )
        if not 1 <= self.quality <= 100:
            raise UserError(f"--quality {self.quality} must be in 1..100", hint="e.g. --quality 80")
        if self.workers < 1:
            raise UserError(f"--workers {self.workers} must be at least 1")
        for flag, path in (("--manifest", self.manifest), ("--run", self.run)):
            if path is not None and not Path(path).is_dir():
                raise UserError(
                    f"{flag} {path} is not a folder", hint=f"pass an existing folder or leave {flag} out"
                )
        return self


@dataclass
class ReportSummary:
    out: Path
    index: Path
    classes: int = 0
    images: int = 0
    pages: int = 0
    written: int = 0
    unchanged: int = 0
    sheets_rendered: int = 0
    sheets_reused: int = 0
    removed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def table(self) -> Table:
        t = Table(title=f"report {self.out}")
        t.add_column("what")
        t.add_column("count", justify="right")
        for label, value in (
            ("classes", self.classes), ("clean images", self.images), ("pages", self.pages),
            ("files written", self.written), ("files unchanged", self.unchanged),
            ("sprite sheets drawn", self.sheets_rendered), ("sprite sheets reused", self.sheets_reused),
            ("stale files removed", self.removed), ("report MB", f"{self.bytes / 1e6:.1f}"),
            ("seconds", f"{self.seconds:.1f}"),
        ):  # fmt: skip
            t.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
        return t


def build_report(cfg: ReportConfig) -> ReportSummary:
    """Read the dataset (and manifest, run), write every page and sheet that changed."""

    cfg.validated()
    t0 = time.perf_counter()
    run = check_run(Path(cfg.run)) if cfg.run is not None else None
    manifest = Path(cfg.manifest) if cfg.manifest is not None else None
    if manifest is None and run is not None:
        recorded = read_json(run / "run.json").get("manifest_dir")
        manifest = Path(recorded) if recorded and (Path(recorded) / "stats.json").is_file() else None
    view = load_dataset(Path(cfg.data), manifest)
    out = Path(cfg.out).expanduser().resolve()
    site = Site(out, SheetSpec(cfg.thumb, cfg.image_format, cfg.quality), force=cfg.force).open()
    has_run = run is not None
    for name in ("report.css", "report.js"):
        site.text(
            f"assets/{name}", resources.files("pokedata.report").joinpath("assets", name).read_text("utf-8")
        )
    site.text(STATUS_NAME, json.dumps(view.status, indent=1, ensure_ascii=False) + "\n")
    counts = class_counts(view)
    site.text("index.html", overview(view, counts, has_run))
    site.text("classes.html", classes_page(view, counts, has_run))
    pages = 2 + write_class_pages(view, counts, site, cfg.page_size, has_run)
    pages += write_conflicts(view, site, cfg.page_size, has_run)
    pages += write_quarantine(view, site, cfg.page_size, has_run)
    if run is not None:
        write_run_page(run, site)
        pages += 1
    c = site.finish(cfg.workers)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ReportSummary(
        out=out,
        index=out / "index.html",
        classes=len(counts),
        images=len(view.images),
        pages=pages,
        written=c.written + c.sheets_rendered,
        unchanged=c.unchanged + c.sheets_reused,
        sheets_rendered=c.sheets_rendered,
        sheets_reused=c.sheets_reused,
        removed=c.removed,
        bytes=size,
        seconds=time.perf_counter() - t0,
    )
