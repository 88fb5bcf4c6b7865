"""Say when a stage removes a lot: clean (quarantine) and dedup (duplicates, label conflicts).

When a stage removes more than half of the data or of a class, ``poke clean`` ends with a warning line
naming the count, the reason and the flag that changes it, e.g.::

    26 of 30 files quarantined: 26 too-small (shorter side < 64 px); sprite sets usually need a lower
    --min-side (--min-side 31 keeps 24 of them)

and ``poke status`` shows the same lines. Everything is computed from the ledger alone (the settings
a stage used are in ``images.params`` and the ``dedup`` meta row), so it is read-only and the same
wherever it is shown. :func:`removals` returns the rows; :func:`warning_lines` words them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field

from rich.text import Text

from pokedata.ledger import has_table, images, views
from pokedata.log import console

HEAVY = 0.5
"""A stage "removes a lot" when it removes more than this share of the data or of a class."""
SHOWN_CLASSES = 5
"""Classes named one per line; the rest are counted in one more line."""

_SIZE = re.compile(r"(\d+)x(\d+) px")


@dataclass
class Removal:
    """What one stage removed from one scope (all the data: ``scope = ''``, or one class)."""

    stage: str  # clean | dedup
    scope: str
    removed: int
    total: int
    reasons: Counter = field(default_factory=Counter)  # reason text -> count
    hints: list[str] = field(default_factory=list)

    @property
    def heavy(self) -> bool:
        return self.total > 0 and self.removed > HEAVY * self.total

    def line(self) -> str:
        where = f"class {self.scope}: " if self.scope else ""
        unit, verb = ("files", "quarantined") if self.stage == "clean" else ("images", "removed by dedup")
        why = ", ".join(f"{n:,} {reason}" for reason, n in Counter(self.reasons).most_common())
        hint = f"; {'; '.join(self.hints)}" if self.hints else ""
        return f"{where}{self.removed:,} of {self.total:,} {unit} {verb}: {why}{hint}"

    def as_dict(self) -> dict:
        return {"stage": self.stage, "scope": self.scope, "removed": self.removed, "total": self.total,
                "reasons": dict(self.reasons), "hints": list(self.hints), "line": self.line()}  # fmt: skip


def removals(conn: sqlite3.Connection, stage: str) -> list[Removal]:
    """Every scope's removal by ``stage`` ('clean' or 'dedup'): the whole data first, then each class
    (largest removal first). Empty when the stage has not run."""
    if not has_table(conn, "images"):
        return []
    return _clean(conn) if stage == "clean" else _dedup(conn)


def heavy_removals(conn: sqlite3.Connection, stages: tuple[str, ...] = ("clean", "dedup")) -> list[Removal]:
    """Only the scopes where a stage removed more than half."""
    return [r for stage in stages for r in removals(conn, stage) if r.heavy]


def warning_lines(rows: list[Removal], *, shown: int = SHOWN_CLASSES) -> list[str]:
    """The heavy removals as warning lines: the whole data, then up to ``shown`` classes per stage."""
    lines: list[str] = []
    for stage in dict.fromkeys(r.stage for r in rows):
        heavy = [r for r in rows if r.stage == stage and r.heavy]
        classes = [r for r in heavy if r.scope]
        lines += [r.line() for r in heavy if not r.scope]
        lines += [r.line() for r in classes[:shown]]
        if len(classes) > shown:
            rest = classes[shown:]
            lines.append(
                f"and {len(rest):,} more classes lost more than half of their "
                f"{'files to clean' if stage == 'clean' else 'images to dedup'} (`poke status --json` lists them)"
            )
    return lines


def print_warnings(lines: list[str]) -> None:
    """Each line in yellow on the console (stderr), as plain text (class names are not markup)."""

    for line in lines:
        console.print(Text("warning: ", style="bold yellow") + Text(line, style="yellow"))


# -- clean ---------------------------------------------------------------------------------------------


def _clean(conn: sqlite3.Connection) -> list[Removal]:
    """Per file (item): removed when none of its frames is done; the reason is its first quarantine code."""
    rows = views.clean_outcomes(conn)
    if not rows:
        return []
    scopes: dict[str, Removal] = {"": Removal("clean", "", 0, 0)}
    small: dict[str, list[int]] = {}
    settings: dict[str, object] = {}
    for cls, kept, error, params in rows:
        for scope in ("", cls or "(no class)"):
            r = scopes.setdefault(scope, Removal("clean", scope, 0, 0))
            r.total += 1
            if kept:
                continue
            r.removed += 1
            code = (error or "unknown").split(":", 1)[0]
            r.reasons[code] += 1
            if code == "too-small":
                m = _SIZE.search(error or "")
                if m:
                    small.setdefault(scope, []).append(min(int(m.group(1)), int(m.group(2))))
        if not settings and params:
            settings = json.loads(params)
    out = list(scopes.values())
    for r in out:
        r.reasons = Counter({_clean_reason(code, settings): n for code, n in r.reasons.items()})
        r.hints = _clean_hints(r, settings, small.get(r.scope, []))
    return _ordered(out)


def _clean_reason(code: str, settings: dict) -> str:
    if code == "too-small":
        return f"too-small (shorter side < {settings.get('min_side', '?')} px)"
    if code == "aspect-ratio":
        return f"aspect-ratio (more elongated than {settings.get('max_aspect', '?')}:1)"
    return code


def _clean_hints(r: Removal, settings: dict, short_sides: list[int]) -> list[str]:
    hints = []
    text = " ".join(r.reasons)
    if "too-small" in text and short_sides:
        side = max(1, int(sorted(short_sides)[len(short_sides) // 10]))  # keeps at least 90 % of them
        n = sum(s >= side for s in short_sides)
        hints.append(f"sprite sets usually need a lower --min-side (--min-side {side} keeps {n:,} of them)")
    if "aspect-ratio" in text:
        hints.append(f"a higher --max-aspect (now {settings.get('max_aspect', '?')}) keeps them")
    if "decompression-bomb" in text:
        hints.append("--max-pixels raises the decompression-bomb limit")
    if any(code in text for code in ("unreadable", "truncated", "missing-file", "empty")):
        hints.append("damaged or missing files: `poke status` shows examples; refetch them")
    return hints


# -- dedup ---------------------------------------------------------------------------------------------


def _dedup(conn: sqlite3.Connection) -> list[Removal]:
    settings = images.dedup_settings(conn)
    if settings is None:
        return []
    rows = views.dedup_outcomes(conn)
    near = f"{settings.get('method', 'phash')} within {settings.get('threshold')} bits"
    if settings.get("colour", False):
        near += f", colour within {settings.get('colour_tolerance')}"
    dup_reason, conflict_reason = (
        f"duplicates ({near})",
        "label conflicts (a near-identical image in another class)",
    )
    threshold = int(settings.get("threshold") or 0)
    scopes: dict[str, Removal] = {"": Removal("dedup", "", 0, 0)}
    for cls, total, dups, conflicts in rows:
        for scope in ("", cls or "(no class)"):
            r = scopes.setdefault(scope, Removal("dedup", scope, 0, 0))
            r.total += total
            r.removed += (dups or 0) + (conflicts or 0)
            if dups:
                r.reasons[dup_reason] += dups
            if conflicts:
                r.reasons[conflict_reason] += conflicts
    out = list(scopes.values())
    for r in out:
        if dup_reason in r.reasons:
            r.hints.append(
                f"--threshold {max(0, threshold - 4)} keeps more (frames of one animation fold on purpose: "
                "each dropped image is within the threshold of a kept one)"
            )
        if conflict_reason in r.reasons:
            r.hints.append(
                "--conflicts keep-first or report keeps more; reports/dedup-conflicts.png shows the pairs"
            )
    return _ordered(out)


def _ordered(rows: list[Removal]) -> list[Removal]:
    """The whole data first, then classes by share removed (then count, then name)."""
    return sorted(
        rows, key=lambda r: (r.scope != "", -(r.removed / r.total if r.total else 0), -r.removed, r.scope)
    )
