"""What a dedup run leaves for people: ``DIR/reports/dedup.json`` and two contact sheets.

- ``dedup.json``: settings, the summary, every duplicate group (largest first) with its members,
  their class, source, size, kind and Hamming distance to the survivor, and the conflicting groups.
- ``dedup-groups.png``: one row per group (the largest groups), survivor first and outlined green,
  copies outlined grey, each captioned with its Hamming distance to the survivor; members marked
  conflict are outlined red.
- ``dedup-conflicts.png``: one row per conflicting group; the caption is the class label, members
  marked conflict are outlined red.

Looking at the last rows of ``dedup-groups.png`` (the smallest distances that still merged) is the
quickest way to judge a ``--threshold``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pokedata.store import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from PIL import Image

    from pokedata.dedup.run import DedupConfig, DedupSummary, GroupResult
    from pokedata.store import DatasetDir

REPORT_NAME = "dedup.json"
GROUPS_SHEET = "dedup-groups.png"
CONFLICTS_SHEET = "dedup-conflicts.png"
SHEET_ROWS = 30  # groups shown per sheet
SHEET_COLS = 12  # thumbnails per row (more members: "+N" at the row's end)
THUMB = 96

_GREEN, _GREY, _RED, _BG, _INK = (40, 170, 60), (170, 170, 170), (210, 40, 40), (255, 255, 255), (20, 20, 20)


def group_members(rows: dict[str, np.ndarray], result: GroupResult) -> list[np.ndarray]:
    """Row indices of each group of two or more, largest first; survivor first, then policy order."""
    multi = np.nonzero(result.size > 1)[0]
    if len(multi) == 0:
        return []
    comp = result.component[multi]
    is_head = (result.survivor[multi] == multi).astype(np.int8)
    area = rows["width"][multi] * rows["height"][multi]
    order = np.lexsort((rows["id"][multi], -area, -is_head, comp))
    sorted_rows, sorted_comp = multi[order], comp[order]
    cuts = np.nonzero(np.diff(sorted_comp))[0] + 1
    groups = np.split(sorted_rows, cuts)
    groups.sort(key=lambda g: (-len(g), int(rows["id"][g[0]])))
    return groups


def write_report(
    ds: DatasetDir, cfg: DedupConfig, rows: dict[str, np.ndarray], result: GroupResult, summary: DedupSummary
) -> tuple[Path, list[Path]]:
    """Write dedup.json and (unless disabled) the contact sheets; returns their paths."""
    from pokedata.dedup.hashing import hamming

    ds.reports_dir.mkdir(parents=True, exist_ok=True)
    groups = group_members(rows, result)
    conflict_set = set(result.conflict_groups)
    marks = result.marks
    out_groups = []
    for g in groups:
        head = g[0]
        dist = hamming(rows["hash"][g], rows["hash"][head])
        members = [
            {
                "id": int(rows["id"][r]),
                "path": rows["path"][r],
                "class_name": rows["class_name"][r],
                "source": rows["source"][r],
                "source_id": rows["source_id"][r],
                "width": int(rows["width"][r]),
                "height": int(rows["height"][r]),
                "dup_of": int(marks.dup_of[r]) if marks.dup_of[r] >= 0 else None,
                "kind": marks.dup_kind[r],
                "distance": int(d),
                "conflict": bool(marks.conflict[r]),
            }
            for r, d in zip(g, dist, strict=True)
        ]
        comp = int(result.component[head])
        out_groups.append(
            {
                "group": int(rows["id"][head]),
                "survivor": int(rows["id"][head]),
                "size": len(g),
                "kind": "exact" if len({rows["sha"][r] for r in g}) == 1 and rows["sha"][head] else "near",
                "classes": sorted({rows["class_name"][r] for r in g}),
                "conflict": comp in conflict_set,
                "max_distance": int(dist.max()),
                "members": members,
            }
        )
    settings = {
        "method": cfg.method,
        "threshold": cfg.threshold,
        "conflict_threshold": cfg.conflict_threshold,
        "conflicts": cfg.conflicts,
        "source_priority": list(cfg.source_priority),
        "fast": cfg.fast,
    }
    stats = {k: v for k, v in summary.as_dict().items() if k not in ("report", "sheets")}
    doc = {
        "settings": settings,
        "summary": stats,
        "groups": out_groups,
        "conflicts": [g["group"] for g in out_groups if g["conflict"]],
    }
    report = ds.reports_dir / REPORT_NAME
    sheets: list[Path] = []
    if cfg.contact_sheets:
        for name, chosen in (
            (GROUPS_SHEET, out_groups[:SHEET_ROWS]),
            (CONFLICTS_SHEET, [g for g in out_groups if g["conflict"]][:SHEET_ROWS]),
        ):
            path = ds.reports_dir / name
            atomic_write_bytes(path, _png(contact_sheet(ds.root, chosen, conflicts=name == CONFLICTS_SHEET)))
            sheets.append(path)
    doc["sheets"] = [p.name for p in sheets]
    atomic_write_text(report, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return report, sheets


def contact_sheet(root: Path, groups: list[dict], *, conflicts: bool = False) -> Image.Image:
    """Rows of thumbnails, one per group (dicts as in dedup.json); an explanatory line when empty."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    pad, caption, label_w = 6, 14, 150
    cell_w, cell_h = THUMB + pad, THUMB + pad + caption
    width = label_w + SHEET_COLS * cell_w + 60
    height = max(1, len(groups)) * cell_h + pad
    sheet = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(sheet)
    if not groups:
        what = "conflicting groups" if conflicts else "duplicate groups"
        draw.text((pad, pad), f"no {what} at this threshold", fill=_INK, font=font)
        return sheet
    for r, g in enumerate(groups):
        y = r * cell_h + pad
        draw.text((pad, y), f"group {g['group']}", fill=_INK, font=font)
        draw.text((pad, y + 14), f"{g['size']} images, {g['kind']}", fill=_INK, font=font)
        draw.text((pad, y + 28), f"max dist {g['max_distance']}", fill=_INK, font=font)
        if g["conflict"]:
            draw.text((pad, y + 42), f"{len(g['classes'])} classes", fill=_RED, font=font)
        for c, m in enumerate(g["members"][:SHEET_COLS]):
            x = label_w + c * cell_w
            sheet.paste(_thumb(root / m["path"]), (x, y))
            colour = _RED if m["conflict"] else (_GREEN if c == 0 else _GREY)
            draw.rectangle((x - 2, y - 2, x + THUMB + 1, y + THUMB + 1), outline=colour, width=3)
            text = m["class_name"][:14] if conflicts else (f"d={m['distance']}" if c else "keep")
            draw.text((x, y + THUMB + 2), text, fill=_INK, font=font)
        if g["size"] > SHEET_COLS:
            draw.text(
                (label_w + SHEET_COLS * cell_w, y + THUMB // 2),
                f"+{g['size'] - SHEET_COLS}",
                fill=_INK,
                font=font,
            )
    return sheet


def _thumb(path: Path) -> Image.Image:
    """A THUMB x THUMB tile with the image fitted and centred; a grey tile with an X if unreadable."""
    from PIL import Image, ImageDraw

    tile = Image.new("RGB", (THUMB, THUMB), (235, 235, 235))
    try:
        with Image.open(path) as im:
            im.draft("RGB", (THUMB, THUMB))
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            tile.paste(im, ((THUMB - im.width) // 2, (THUMB - im.height) // 2))
    except (OSError, ValueError):
        d = ImageDraw.Draw(tile)
        d.line((0, 0, THUMB, THUMB), fill=_RED, width=2)
        d.line((0, THUMB, THUMB, 0), fill=_RED, width=2)
    return tile


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
