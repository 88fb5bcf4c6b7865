"""``poke report``: a static, offline HTML browser of a dataset directory, its manifest and a training run.

Public API::

    from pokedata.report import ReportConfig, build_report

    summary = build_report(ReportConfig(data=Path("data"), manifest=None, run=None, out=Path("report")))
    print(summary.index)   # OUT/index.html: open it from disk, no server, no network

Layout of ``OUT``::

    index.html              overview: the figures of `poke status --json` (status.json holds them as JSON),
                            quarantine reasons, dedup and conflicts, the manifest
    classes.html            every class with images: searchable, sortable counts
    class/<key>[-pN].html   one class: kept thumbnails, duplicate groups, quarantined files
    conflicts[-pN].html     label conflicts across classes
    quarantine[-pN].html    every quarantined file with its reason
    run.html, run/          the training run (with --run): steps, curves, grids over time
    sheets/                 thumbnails packed into sprite sheets (WebP or JPEG), one per page
    assets/                 the report's own CSS and JS (no CDN)
    .poke-report.json       what the last build wrote, so a rerun writes only what changed

Modules: ``model`` (reading), ``html`` (escaping, layout), ``tiles``/``sprites`` (thumbnails),
``pages``/``classpage``/``review``/``runpage`` (the pages), ``site`` (incremental writing), ``build``.
"""

from __future__ import annotations

from pokedata.report.build import ReportConfig, ReportSummary, build_report

__all__ = ["ReportConfig", "ReportSummary", "build_report"]
