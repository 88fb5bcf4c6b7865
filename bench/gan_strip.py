"""Step-3 sample grids of several runs side by side, one labelled panel per run (docs/img/small-gan-texture.png).

Each run's ``gan/grids/step-NNNNNNN.png`` at ``--step`` is the EMA generator on the run's fixed latents, the
same latents in every copy of one run, so the panels compare the same samples. ``--rows`` keeps that many
top rows of each 8x8 grid. Labels and runs come in pairs: ``LABEL=RUN_DIR``.

    python bench/gan_strip.py --step 400 --rows 4 --out docs/img/small-gan-texture.png \\
        "nearest (the old preset)=runs/e2e" "+ pool critic=runs/g-pool" \\
        "+ DiffAugment color, R1 2=runs/h-B" "+ DiffAugment color, R1 8=runs/h-F" \\
        "bilinear G (the new preset)=runs/bil"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

PAD, LABEL_H, GRID_ROWS = 8, 16, 8


def strip(panels: list[tuple[str, Path]], step: int, rows: int, scale: int = 2) -> Image.Image:
    images = []
    for label, run in panels:
        path = Path(run) / "gan" / "grids" / f"step-{step:07d}.png"
        if not path.is_file():
            raise SystemExit(f"{path} does not exist: has {run} reached step {step}? (see --step)")
        im = Image.open(path).convert("RGB")
        images.append((label, im.crop((0, 0, im.width, im.height * rows // GRID_ROWS))))
    w, h = images[0][1].size
    out = Image.new("RGB", (len(images) * (w + PAD) - PAD, h + LABEL_H), "white")
    draw = ImageDraw.Draw(out)
    for i, (label, im) in enumerate(images):
        out.paste(im, (i * (w + PAD), LABEL_H))
        draw.text((i * (w + PAD) + 2, 2), label, fill="black")
    return out.resize((out.width * scale, out.height * scale), Image.NEAREST)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("panels", nargs="+", help="LABEL=RUN_DIR, one per panel, left to right")
    ap.add_argument("--step", type=int, default=400)
    ap.add_argument("--rows", type=int, default=4, help=f"top rows of each {GRID_ROWS}-row grid to keep")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    panels = []
    for p in args.panels:
        label, sep, run = p.rpartition("=")
        if not sep or not label:
            raise SystemExit(f"panel {p!r} is not LABEL=RUN_DIR")
        panels.append((label, Path(run)))
    strip(panels, args.step, args.rows).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
