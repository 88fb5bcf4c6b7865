"""The run page: per-step status and times, loss and metric curves, grids over time, the manifest's figures.

Reads only files the trainer leaves (``run.json``, ``pipeline.json``, ``STEP/done.json``,
``STEP/metrics.jsonl``, ``STEP/tb/`` scalars when TensorBoard is installed, ``recon/``, ``grids/``,
``snapshots/`` pictures). A step folder the report does not know (a judge, say) still gets its status, its
numbers and its metric curves. Pictures are copied into ``OUT/run/`` so the report opens anywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokedata.errors import UserError
from pokedata.report.html import Safe, el, join, page, section, table
from pokedata.report.pages import manifest_section
from pokedata.report.svg import line_chart
from pokedata.store import safe_name

if TYPE_CHECKING:
    from pokedata.report.site import Site

log = logging.getLogger(__name__)
STEP_FOLDERS = ("classifier", "embeddings", "pretrain", "gmm", "gan", "progan")
STEP_NAMES = {"classifier": "classify", "embeddings": "embed"}  # folder -> pipeline step name
GRID_DIRS = ("recon", "grids", "snapshots")
PICTURES = (
    ("gan", "samples.png", "Samples (EMA generator)"),
    ("gmm", "pca.png", "Embeddings vs GMM samples"),
    ("progan", "all_samples.gif", "ProGAN samples over training"),
)
GRIDS_SHOWN = 8
_SKIP_KEYS = {"epoch", "step"}


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def check_run(run: Path) -> Path:
    if not (run / "run.json").is_file():
        raise UserError(
            f"--run {run} is not a run directory (no run.json)",
            hint="pass a folder made by `poke train`, e.g. --run runs/NAME",
        )
    return run.resolve()


def write_run_page(run: Path, site: Site) -> dict[str, Any]:
    """Write ``run.html`` (+ copied pictures); returns the run's manifest stats (``{}`` when unknown)."""
    meta, pipeline = read_json(run / "run.json"), read_json(run / "pipeline.json")
    folders = [d for d in STEP_FOLDERS if (run / d).is_dir()]
    folders += sorted(
        d.name for d in run.iterdir() if d.is_dir() and d.name not in STEP_FOLDERS and _is_step(d)
    )
    rows, body = [], [el("p", el("code", str(run)), class_="muted")]
    for name in folders:
        d = run / name
        done = read_json(d / "done.json")
        times = (pipeline.get("steps") or {}).get(STEP_NAMES.get(name, name)) or {}
        status = "done" if done else ("started, not finished" if any(d.iterdir()) else "not started")
        seconds = times.get("seconds", done.get("seconds", done.get("seconds_this_session")))
        numbers = ", ".join(f"{k} {_short(v)}" for k, v in _numbers(done).items())
        rows.append(
            [
                name,
                status,
                round(seconds, 1) if isinstance(seconds, (int, float)) else "",
                done.get("finished", ""),
                numbers,
            ]
        )
    body.append(
        section("Steps", table(["step", "status", "seconds", "finished", "numbers"], rows, id_="steps"))
    )
    for name in folders:
        charts = _charts(run / name)
        grids = _grids(run / name, name, site)
        if charts or grids:
            body.append(section(name, join(charts), grids, id_=f"step-{safe_name(name)}"))
    pics = [_picture(run / step / f, f"run/{step}/{f}", caption, site) for step, f, caption in PICTURES]
    manifest_dir = Path(meta["manifest_dir"]) if meta.get("manifest_dir") else None
    stats = read_json(manifest_dir / "stats.json") if manifest_dir else {}
    if manifest_dir and (manifest_dir / "class_counts.png").is_file():
        pics.append(
            _picture(
                manifest_dir / "class_counts.png", "run/manifest/class_counts.png", "Images per class", site
            )
        )
    body.append(section("Pictures", el("div", join(pics), class_="pictures")))
    if stats:
        body.append(manifest_section({**stats, "dir": str(manifest_dir)}))
    site.text("run.html", page(f"Run: {run.name}", join(body), active="run.html", has_run=True))
    return stats


def _is_step(d: Path) -> bool:
    return (d / "done.json").is_file() or (d / "metrics.jsonl").is_file()


def _numbers(done: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: v
        for k, v in done.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and "seconds" not in k
    }
    out.update(
        {f"final {k}": v for k, v in (done.get("final_metrics") or {}).items() if isinstance(v, float)}
    )
    return dict(list(out.items())[:10])


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _charts(step: Path) -> list[Safe]:
    """Curves of ``metrics.jsonl`` (losses together, fractions together, others alone) and TB losses."""
    series: dict[str, list[tuple[float, float]]] = {}
    path = step / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for n, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        x = row.get("step", n)
        for k, v in row.items():
            if k not in _SKIP_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
                series.setdefault(k, []).append((x, v))
    if not any("loss" in k for k in series):  # the GAN and ProGAN log their losses only to TensorBoard
        series.update(_tb_scalars(step / "tb", ("loss/", f"{step.name}/")))
    losses = {k: v for k, v in series.items() if "loss" in k}
    fractions = {
        k: v for k, v in series.items() if k not in losses and all(0 <= y <= 1 for _x, y in v) and k != "lr"
    }
    charts = [line_chart(f"{step.name}: loss", losses)] if losses else []
    if fractions:
        charts.append(line_chart(f"{step.name}: accuracy and other fractions", fractions))
    charts += [
        line_chart(f"{step.name}: {k}", {k: v})
        for k, v in series.items()
        if k not in losses and k not in fractions
    ]
    return [c for c in charts if c]


def _tb_scalars(tb: Path, prefixes: tuple[str, ...]) -> dict[str, list[tuple[float, float]]]:
    """Scalars of a TensorBoard folder whose tag starts with one of ``prefixes`` ({} without TensorBoard)."""
    if not tb.is_dir():
        return {}
    try:
        # tensorboard is heavy and only a run with tb/ logs needs it
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        log.debug("tensorboard is not installed: no curves from %s", tb)
        return {}
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    tags = [t for t in acc.Tags().get("scalars", []) if t.startswith(prefixes)]
    return {t.split("/", 1)[1]: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags}


def _grids(step: Path, name: str, site: Site) -> Safe:
    """Up to GRIDS_SHOWN pictures of each grid folder, evenly spaced over the run, the last one included."""
    out = []
    for sub in GRID_DIRS:
        files = sorted((step / sub).glob("*.png")) if (step / sub).is_dir() else []
        if not files:
            continue
        n = len(files)
        picks = spread(n, GRIDS_SHOWN)
        pics = [
            _picture(files[i], f"run/{name}/{sub}/{safe_name(files[i].name)}", files[i].stem, site)
            for i in picks
        ]
        out.append(
            el("h3", f"{sub}: {len(picks)} of {n} over time") + el("div", join(pics), class_="pictures")
        )
    return join(out)


def spread(n: int, k: int) -> list[int]:
    """``min(n, k)`` indices of ``range(n)``, evenly spaced, first and last included."""
    k = min(n, k)
    if k <= 1:
        return [n - 1] if n else []
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _picture(src: Path, rel: str, caption: str, site: Site) -> Safe:
    if not src.is_file():
        return Safe("")
    site.copy(rel, src)
    return el("figure", el("img", "", src=rel, alt=caption, loading="lazy") + el("figcaption", caption))
