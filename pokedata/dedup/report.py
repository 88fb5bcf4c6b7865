"""What a dedup run leaves for people: ``DIR/reports/dedup.json`` and two contact sheets.

- ``dedup.json``: settings, the summary, every duplicate group (largest first: a survivor and the
  images dropped onto it) with its members, their class, source, size, kind, Hamming distance and
  colour distance to the survivor, and the conflict pairs (two images of different classes, their
  distances, and which images each pair marked).
- ``dedup-groups.png``: one row per group (the largest groups), survivor first and outlined green,
  copies outlined grey, each captioned with its Hamming distance to the survivor.
- ``dedup-conflicts.png``: one row per conflict pair: the two images, then the other images the pair
  marked; the caption is the class label, images marked conflict are outlined red.

Looking at the last rows of ``dedup-groups.png`` (the smallest distances that still merged) is the
quickest way to judge a ``--threshold``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pokedata.dedup.colour import colour_distance
from pokedata.dedup.hashing import hamming
from pokedata.store import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from pokedata.dedup.run import DedupConfig, DedupSummary, GroupResult
    from pokedata.store import DatasetDir

REPORT_NAME = "dedup.json"
GROUPS_SHEET = "dedup-groups.png"
CONFLICTS_SHEET = "dedup-conflicts.png"
SHEET_ROWS = 30  # groups shown per sheet
SHEET_COLS = 12  # thumbnails per row (more members: "+N" at the row's end)
THUMB = 96

_GREEN, _GREY, _RED, _BG, _INK = (40, 170, 60), (170, 170, 170), (210, 40, 40), (255, 255, 255), (20, 20, 20)


def group_members(result: GroupResult) -> list[np.ndarray]:
    """Row indices of each group (a survivor and its duplicates), largest first; survivor first."""
    survivor = result.survivor
    dup = np.nonzero(survivor != np.arange(len(survivor)))[0]
    if len(dup) == 0:
        return []
    order = np.lexsort((dup, result.distance[dup], survivor[dup]))  # by survivor, then distance, then row
    dup = dup[order]
    heads, starts = np.unique(survivor[dup], return_index=True)
    groups = [np.concatenate([[h], part]) for h, part in zip(heads, np.split(dup, starts[1:]), strict=True)]
    groups.sort(key=lambda g: (-len(g), int(g[0])))
    return groups


def _member(rows: dict[str, np.ndarray], result: GroupResult, r: int) -> dict:
    marks = result.marks
    return {
        "id": int(rows["id"][r]),
        "path": rows["path"][r],
        "class_name": rows["class_name"][r],
        "source": rows["source"][r],
        "source_id": rows["source_id"][r],
        "width": int(rows["width"][r]),
        "height": int(rows["height"][r]),
        "dup_of": int(marks.dup_of[r]) if marks.dup_of[r] >= 0 else None,
        "kind": marks.dup_kind[r],
        "distance": int(result.distance[r]),
        "colour_distance": int(result.colour_distance[r]),
        "conflict": bool(marks.conflict[r]),
    }


def write_report(
    ds: DatasetDir, cfg: DedupConfig, rows: dict[str, np.ndarray], result: GroupResult, summary: DedupSummary
) -> tuple[Path, list[Path]]:
    """Write dedup.json and (unless disabled) the contact sheets; returns their paths."""

    ds.reports_dir.mkdir(parents=True, exist_ok=True)
    out_groups = []
    for g in group_members(result):
        members = [_member(rows, result, int(r)) for r in g]
        out_groups.append(
            {
                "group": members[0]["id"],
                "survivor": members[0]["id"],
                "size": len(g),
                "kind": "exact" if all(m["kind"] == "exact" for m in members[1:]) else "near",
                "classes": sorted({m["class_name"] for m in members}),
                "max_distance": max(m["distance"] for m in members),
                "members": members,
            }
        )
    out_pairs = []
    for (a, b), marked in zip(result.conflict_pairs.tolist(), result.conflict_marked, strict=True):
        colour = int(colour_distance(rows["colour"][a], rows["colour"][b])) if cfg.colour else 0
        out_pairs.append(
            {
                "images": [int(rows["id"][a]), int(rows["id"][b])],
                "classes": [rows["class_name"][a], rows["class_name"][b]],
                "distance": int(hamming(rows["hash"][a], rows["hash"][b])),
                "colour_distance": colour,
                "marked": [int(rows["id"][r]) for r in marked],
                "members": [
                    _member(rows, result, int(r)) for r in (a, b, *[m for m in marked if m not in (a, b)])
                ],
            }
        )
    settings = {
        "method": cfg.method,
        "threshold": cfg.threshold,
        "conflict_threshold": cfg.conflict_threshold,
        "conflicts": cfg.conflicts,
        "colour": cfg.colour,
        "colour_tolerance": cfg.colour_tolerance if cfg.colour else None,
        "source_priority": list(cfg.source_priority),
        "fast": cfg.fast,
    }
    stats = {k: v for k, v in summary.as_dict().items() if k not in ("report", "sheets")}
    doc = {"settings": settings, "summary": stats, "groups": out_groups, "conflicts": out_pairs}
    report = ds.reports_dir / REPORT_NAME
    sheets: list[Path] = []
    if cfg.contact_sheets:
        for name, chosen, conflicts in (
            (GROUPS_SHEET, out_groups[:SHEET_ROWS], False),
            (CONFLICTS_SHEET, out_pairs[:SHEET_ROWS], True),
        ):
            path = ds.reports_dir / name
            atomic_write_bytes(path, _png(contact_sheet(ds.root, chosen, conflicts=conflicts)))
            sheets.append(path)
    doc["sheets"] = [p.name for p in sheets]
    atomic_write_text(report, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return report, sheets


def contact_sheet(root: Path, groups: list[dict], *, conflicts: bool = False) -> Image.Image:
    """Rows of thumbnails, one per group or conflict pair (dicts as in dedup.json); a line when empty."""
    font = ImageFont.load_default()
    pad, caption, label_w = 6, 14, 150
    cell_w, cell_h = THUMB + pad, THUMB + pad + caption
    width = label_w + SHEET_COLS * cell_w + 60
    height = max(1, len(groups)) * cell_h + pad
    sheet = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(sheet)
    if not groups:
        what = "conflict pairs" if conflicts else "duplicate groups"
        draw.text((pad, pad), f"no {what} at this threshold", fill=_INK, font=font)
        return sheet
    for r, g in enumerate(groups):
        y = r * cell_h + pad
        if conflicts:
            lines = [f"pair {g['images'][0]}-{g['images'][1]}", f"d={g['distance']} colour {g['colour_distance']}",
                     f"{len(g['marked'])} marked"]  # fmt: skip
        else:
            lines = [
                f"group {g['group']}",
                f"{g['size']} images, {g['kind']}",
                f"max dist {g['max_distance']}",
            ]
        for i, line in enumerate(lines):
            draw.text((pad, y + 14 * i), line, fill=_INK, font=font)
        members = g["members"]
        for c, m in enumerate(members[:SHEET_COLS]):
            x = label_w + c * cell_w
            sheet.paste(_thumb(root / m["path"]), (x, y))
            colour = _RED if m["conflict"] else (_GREEN if c == 0 and not conflicts else _GREY)
            draw.rectangle((x - 2, y - 2, x + THUMB + 1, y + THUMB + 1), outline=colour, width=3)
            text = m["class_name"][:14] if conflicts else (f"d={m['distance']}" if c else "keep")
            draw.text((x, y + THUMB + 2), text, fill=_INK, font=font)
        if len(members) > SHEET_COLS:
            draw.text(
                (label_w + SHEET_COLS * cell_w, y + THUMB // 2),
                f"+{len(members) - SHEET_COLS}",
                fill=_INK,
                font=font,
            )
    return sheet


def sequence_sheet(
    paths: list[Path], survivor: list[int], distance: list[int], *, title: str = "", cols: int = 12
) -> Image.Image:
    """A folded sequence (e.g. the frames of one animation) in order: kept images outlined green and
    captioned ``keep #i``; each dropped image outlined grey, captioned with its survivor's position and
    the Hamming distance to it (``->#i d=7``). ``survivor[k]`` is the position of image k's survivor in
    ``paths`` (k itself when kept; -1 when it lies outside the sequence)."""
    font = ImageFont.load_default()
    pad, caption, head = 6, 14, 20 if title else 0
    cell_w, cell_h = THUMB + pad, THUMB + pad + caption
    rows = max(1, -(-len(paths) // cols))
    sheet = Image.new("RGB", (cols * cell_w + pad, head + rows * cell_h + pad), _BG)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 4), title, fill=_INK, font=font)
    for k, path in enumerate(paths):
        x, y = pad + (k % cols) * cell_w, head + pad + (k // cols) * cell_h
        sheet.paste(_thumb(path), (x, y))
        kept = survivor[k] == k
        draw.rectangle((x - 2, y - 2, x + THUMB + 1, y + THUMB + 1), outline=_GREEN if kept else _GREY,
                       width=4 if kept else 1)  # fmt: skip
        text = (
            f"keep #{k}"
            if kept
            else (f"->#{survivor[k]} d={distance[k]}" if survivor[k] >= 0 else f"-> other d={distance[k]}")
        )
        draw.text((x, y + THUMB + 2), text, fill=_GREEN if kept else _INK, font=font)
    return sheet


def _thumb(path: Path) -> Image.Image:
    """A THUMB x THUMB tile with the image fitted and centred; a grey tile with an X if unreadable."""
    tile = Image.new("RGB", (THUMB, THUMB), (235, 235, 235))
    try:
        with Image.open(path) as im:
            im.draft("RGB", (THUMB, THUMB))
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            if max(im.size) * 2 <= THUMB:  # small sprites: whole-pixel enlargement, still crisp
                f = THUMB // max(im.size)
                im = im.resize((im.width * f, im.height * f), Image.Resampling.NEAREST)
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
