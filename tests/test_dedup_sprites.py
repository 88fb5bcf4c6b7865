"""End to end on real sprite frames (../shared/data/sprites-gen1; skipped when absent)."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageSequence

from pokedata.dedup import DedupConfig, run_dedup
from pokedata.ledger import Ledger
from tests.helpers.dedup_ledger import Spec, make_dataset

DEX = (1, 4, 7, 25, 39, 52, 94, 133, 143, 150)  # ten distinct Pokemon


def _flat(frame: Image.Image) -> Image.Image:
    rgba = frame.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


@pytest.mark.shared
@pytest.mark.slow
def test_sprite_frames_fold_per_pokemon_without_conflicts(shared_data, tmp_path):
    specs, n_frames = [], {}
    for dex in DEX:
        with Image.open(shared_data / "sprites-gen1" / f"{dex}.gif") as im:
            frames = [_flat(f) for f in ImageSequence.Iterator(im)]
        n_frames[str(dex)] = len(frames)
        specs += [Spec(str(dex), f, source_id=f"sprite-{dex}", frame=i) for i, f in enumerate(frames)]
    make_dataset(tmp_path, specs)
    s = run_dedup(DedupConfig(data=tmp_path, workers=2, progress=False))
    assert s.images == len(specs) and s.failed == 0
    assert s.conflicts == 0  # different Pokemon never merge at the default thresholds
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        kept = dict(
            ledger.conn.execute(
                "SELECT it.class_name, count(*) FROM images im JOIN items it ON it.id = im.item_id"
                " WHERE im.status = 'done' AND im.dup_of IS NULL AND im.conflict = 0 GROUP BY it.class_name"
            ).fetchall()
        )
    assert set(kept) == set(n_frames)  # every Pokemon keeps at least one frame
    for dex, n in n_frames.items():
        assert 1 <= kept[dex] <= max(2, n // 3), (dex, kept[dex], n)  # the animation folds
    assert sum(kept.values()) < len(specs) / 4
    doc = json.loads((tmp_path / "reports" / "dedup.json").read_text())
    assert all(len(g["classes"]) == 1 for g in doc["groups"])
