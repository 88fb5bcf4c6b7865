"""``make_tiny_manifest``: a small labelled image set and its manifest, exactly as ``poke build-manifest`` writes it.

Class ``c`` is a shape (circle, square, triangle, cross, ring, bar, ... cycling) in its own colour on a light
random background, jittered in position and size; JPGs go to ``tmp/data/clean/<class>/`` and the manifest
to ``tmp/manifests/tiny/`` (``manifest.parquet``, ``manifest.csv``, ``classes.json``, ``stats.json``).
``permute_manifest`` shuffles a manifest's rows in place (the row-order-invariance tests).
"""

from __future__ import annotations

import colorsys
import hashlib
import json
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar")


def _draw(shape: str, size: int, colour: tuple[int, int, int], rng: np.random.Generator):
    from PIL import Image, ImageDraw

    bg = tuple(int(v) for v in rng.integers(200, 256, 3))
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    r = size * rng.uniform(0.28, 0.4)
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1) * size, size / 2 + rng.uniform(-0.1, 0.1) * size
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=colour)
    elif shape == "square":
        d.rectangle(box, fill=colour)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "cross":
        w = r / 2.5
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    elif shape == "ring":
        d.ellipse(box, outline=colour, width=max(2, int(r / 2.5)))
    else:  # bar
        d.rectangle((cx - r, cy - r / 3, cx + r, cy + r / 3), fill=colour)
    return im


def make_tiny_manifest(
    tmp_path: Path, n_classes: int = 4, per_class: int = 12, size: int = 32, seed: int = 0
) -> Path:
    """Draw ``n_classes * per_class`` images and write their manifest; returns ``tmp_path/manifests/tiny``.

    Per class the last ``max(1, per_class // 6)`` images are ``val`` and, from 6 images up, one more is
    ``test``; the rest are ``train``.
    """
    import pandas as pd

    tmp_path = Path(tmp_path)
    rng = np.random.default_rng(seed)
    data_root = tmp_path / "data"
    classes = [f"Shape{c:02d}" for c in range(n_classes)]
    rows = []
    n_val = max(1, per_class // 6)
    n_test = 1 if per_class >= 6 else 0
    for c, name in enumerate(classes):
        hue = (c * 0.618034) % 1.0
        colour = tuple(int(v * 255) for v in colorsys.hsv_to_rgb(hue, 0.9, 0.55 + 0.35 * ((c // 6) % 2)))
        folder = data_root / "clean" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = _draw(SHAPES[c % len(SHAPES)], size, colour, rng)
            image_id = f"tiny-{c:02d}-{i:03d}"
            path = folder / f"{image_id}.jpg"
            im.save(path, format="JPEG", quality=95)
            split = (
                "val" if i >= per_class - n_val else "test" if i >= per_class - n_val - n_test else "train"
            )
            rows.append(
                {
                    "image_id": image_id,
                    "path": str(path.relative_to(data_root)),
                    "class_index": c,
                    "class_name": name,
                    "split": split,
                    "source": "synthetic",
                    "source_id": image_id,
                    "width": size,
                    "height": size,
                    "phash": f"{int(rng.integers(0, 2**62)):016x}",
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "frame": -1,
                }
            )
    out = tmp_path / "manifests" / "tiny"
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_parquet(out / "manifest.parquet", index=False)
    df.to_csv(out / "manifest.csv", index=False)
    (out / "classes.json").write_text(json.dumps({"catalog": "tiny-shapes", "classes": classes}, indent=2))
    sha = hashlib.sha256((out / "manifest.parquet").read_bytes()).hexdigest()
    stats = {
        "data_root": str(data_root.resolve()),
        "manifest_sha256": sha,
        "images": len(df),
        "classes": n_classes,
        "splits": df["split"].value_counts().to_dict(),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    return out


def permute_manifest(mdir, seed: int = 1, keep_recorded_hash: bool = False):
    """Shuffle the manifest's rows in place (parquet and csv); the images, splits and classes stay.

    ``keep_recorded_hash``: leave stats.json's ``manifest_sha256`` as it was, as a person editing the
    parquet file by hand would.
    """
    import pandas as pd

    mdir = Path(mdir)
    df = pd.read_parquet(mdir / "manifest.parquet")
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    df.to_parquet(mdir / "manifest.parquet", index=False)
    df.to_csv(mdir / "manifest.csv", index=False)
    if not keep_recorded_hash:
        stats = json.loads((mdir / "stats.json").read_text())
        stats.pop("manifest_sha256", None)  # recomputed from the file: a new manifest
        (mdir / "stats.json").write_text(json.dumps(stats))
