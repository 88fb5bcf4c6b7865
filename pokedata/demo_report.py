"""How ``poke demo`` shows its results: a figures table per stage, a closing summary, OUT/report.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from pokedata.log import console
from pokedata.store import atomic_write_text

if TYPE_CHECKING:
    from pokedata.demo import DemoConfig, DemoSummary, StageResult

_STATUS_STYLE = {"done": "green", "missing": "bold red", "blocked": "yellow", "failed": "bold red"}


def format_value(value: Any) -> str:
    """One line for a figure: dicts as ``a 3, b 2``, floats rounded, lists counted."""
    if isinstance(value, dict):
        if not value:
            return "none"
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) if len(value) <= 4 else f"{len(value)} items"
    return str(value)


def _flat(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in figures.items():
        if isinstance(value, dict) and value and any(isinstance(v, dict) for v in value.values()):
            rows += _flat(value, f"{prefix}{key} / ")
        else:
            rows.append((f"{prefix}{key}", format_value(value)))
    return rows


def print_stage(stage: StageResult) -> None:
    style = _STATUS_STYLE.get(stage.status, "white")
    t = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row(f"[{style}]{stage.name}[/]", f"[{style}]{stage.status}[/] in {stage.seconds:.1f} s")
    if stage.note:
        t.add_row("", f"[{style}]{stage.note}[/]")
    for key, value in _flat(stage.figures):
        t.add_row(key, value)
    console.print(t)


def _findings_table(findings: dict[str, dict[str, Any]]):
    t = Table(title="planted problems found")
    t.add_column("planted problem")
    t.add_column("found", justify="right")
    for name, f in findings.items():
        ok = f["found"] == f["planted"]
        t.add_row(name, f"[{'green' if ok else 'red'}]{f['found']} / {f['planted']}[/]")
    return t


def print_summary(summary: DemoSummary) -> None:
    console.rule("[bold]demo summary")
    t = Table(title=f"poke demo: {summary.seconds:.0f} s in all")
    t.add_column("stage")
    t.add_column("status")
    t.add_column("seconds", justify="right")
    for s in summary.stages:
        style = _STATUS_STYLE.get(s.status, "white")
        t.add_row(s.name, f"[{style}]{s.status}[/]" + (f" ({s.note})" if s.note else ""), f"{s.seconds:.1f}")
    console.print(t)
    if summary.findings:
        console.print(_findings_table(summary.findings))
    for name, path in summary.artifacts.items():
        console.print(f"[bold]{name}[/]: {path}", highlight=False, soft_wrap=True)
    missing = [s.name for s in summary.stages if s.status != "done"]
    if missing:
        console.print(
            f"[bold red]incomplete:[/] stage(s) {', '.join(missing)} did not run; see the notes above",
            highlight=False,
        )
    html = summary.artifacts.get("html report")
    if html:
        console.print(f"[bold]open the report:[/] {html}", highlight=False, soft_wrap=True)


def _newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern), key=lambda p: (p.stat().st_mtime, p.name)) if folder.is_dir() else []
    return found[-1] if found else None


def collect_artifacts(cfg: DemoConfig, ctx: dict[str, Any]) -> dict[str, str]:
    """Paths of the pictures and reports the demo made (only those that exist)."""
    reports = cfg.data / "reports"
    train = ctx.get("train") if isinstance(ctx.get("train"), dict) else {}
    candidates: dict[str, Path | None] = {
        "sample grid": cfg.sample_grid,
        "reconstruction grid": Path(train["reconstruction_grid"])
        if train.get("reconstruction_grid")
        else None,
        "dedup contact sheet": reports / "dedup-groups.png",
        "conflicts contact sheet": reports / "dedup-conflicts.png",
        "dedup report": reports / "dedup.json",
        "manifest": cfg.manifest_dir / "manifest.parquet",
        "run": cfg.run_dir,
        "training report": Path(train["report"]) if train.get("report") else None,
        "html report": cfg.report_dir / "index.html",
    }
    if candidates["reconstruction grid"] is None:  # a resumed demo whose training finished earlier
        candidates["reconstruction grid"] = _newest(cfg.run_dir / "pretrain" / "recon", "*.png")
    return {name: str(p) for name, p in candidates.items() if p is not None and Path(p).exists()}


def write_report(cfg: DemoConfig, summary: DemoSummary) -> Path:
    """OUT/report.md: every stage with its figures, the planted-problem check and the pictures."""

    lines = [
        "# poke demo report",
        "",
        f"Output folder `{cfg.out}`; seed {cfg.seed}; {'quick' if cfg.quick else 'full'} setting; "
        f"{summary.seconds:.0f} s in all.",
        "",
    ]
    for s in summary.stages:
        lines += [f"## {s.name}: {s.status} ({s.seconds:.1f} s)", ""]
        if s.note:
            lines += [f"*{s.note}*", ""]
        lines += [f"- {key}: {value}" for key, value in _flat(s.figures)]
        lines.append("")
    if summary.findings:
        lines += ["## planted problems found", "", "| planted problem | found |", "|---|---|"]
        lines += [f"| {name} | {f['found']} / {f['planted']} |" for name, f in summary.findings.items()]
        lines.append("")
    pictures = ("sample grid", "reconstruction grid", "dedup contact sheet", "conflicts contact sheet")
    lines += ["## pictures and files", ""]
    for name, path in summary.artifacts.items():
        rel = os.path.relpath(path, cfg.out)
        lines.append(f"- {name}: [`{rel}`]({rel})")
    lines.append("")
    for name in pictures:
        if name in summary.artifacts:
            rel = os.path.relpath(summary.artifacts[name], cfg.out)
            lines += [f"### {name}", "", f"![{name}]({rel})", ""]
    path = cfg.out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
