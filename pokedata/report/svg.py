"""Line charts as inline SVG (no script, no library): curves of a run's metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pokedata.report.html import Safe, el, h

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 560, 220, 56, 12, 26, 30


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def line_chart(title: str, series: dict[str, Sequence[tuple[float, float]]]) -> Safe:
    """One chart: each series a polyline over (x, y) points; non-finite points are skipped."""
    clean = {
        k: [(float(x), float(y)) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
        for k, pts in series.items()
    }
    clean = {k: v for k, v in clean.items() if v}
    if not clean:
        return Safe("")
    xs = [x for pts in clean.values() for x, _ in pts]
    ys = [y for pts in clean.values() for _, y in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - abs(y0) * 0.1 - 1e-9, y1 + abs(y1) * 0.1 + 1e-9

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)

    def py(y: float) -> float:
        return H - PAD_B - (y - y0) / (y1 - y0) * (H - PAD_T - PAD_B)

    parts = [
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" class="plot"/>',
        f'<text x="{PAD_L}" y="16" class="title">{h(title)}</text>',
        f'<text x="{PAD_L - 4}" y="{PAD_T + 4}" text-anchor="end">{_fmt(y1)}</text>',
        f'<text x="{PAD_L - 4}" y="{H - PAD_B}" text-anchor="end">{_fmt(y0)}</text>',
        f'<text x="{PAD_L}" y="{H - 10}">{_fmt(x0)}</text>',
        f'<text x="{W - PAD_R}" y="{H - 10}" text-anchor="end">step {_fmt(x1)}</text>',
    ]
    for i, (name, pts) in enumerate(clean.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        else:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        lx = W - PAD_R - 150
        parts.append(
            f'<text x="{lx}" y="{PAD_T + 14 + 14 * i}" fill="{colour}">{h(name)} {_fmt(pts[-1][1])}</text>'
        )
    inner = "".join(parts)
    svg = Safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{h(title)}">{inner}</svg>'
    )
    return el("figure", svg, class_="chart")
