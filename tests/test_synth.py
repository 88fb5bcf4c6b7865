"""The synthetic sprite set: deterministic, well-formed, and every planted problem really is one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from pokedata.catalog import load_catalog
from pokedata.errors import UserError
from pokedata.synth import CREATURES, REPORT_NAME, SynthConfig, make_sprite_set, write_demo_catalog
from pokedata.verify import VerificationError, verify_image_file

SMALL = SynthConfig(n_classes=5, per_class=8, exact_copies=2, pixel_copies=2, near_dups=3, corrupt=5, seed=3)


@pytest.fixture(scope="module")
def sprite_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "sprites"
    return make_sprite_set(out, SMALL)


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != REPORT_NAME
    }


def _on_white(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.seek(0)
        rgba = im.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    bg.alpha_composite(rgba)
    return np.asarray(bg.convert("RGB"))


def test_layout_and_counts(sprite_set):
    root = Path(sprite_set.root)
    files = _files(root)
    assert sprite_set.classes == [c[0] for c in CREATURES[:5]]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(sprite_set.classes)
    assert len(files) == sprite_set.files
    per_class: dict[str, int] = {}
    for rel in files:
        per_class[rel.split("/")[0]] = per_class.get(rel.split("/")[0], 0) + 1
    assert per_class == sprite_set.per_class
    assert sprite_set.sprites == 5 * 8
    planted = (
        len(sprite_set.exact_copies)
        + len(sprite_set.pixel_copies)
        + len(sprite_set.near_dups)
        + len(sprite_set.corrupt)
        + len(sprite_set.too_small)
        + 1  # the conflict copy
    )
    assert sprite_set.files == sprite_set.sprites + planted
    assert (root / REPORT_NAME).is_file()


def test_formats_have_transparency(sprite_set):
    root = Path(sprite_set.root)
    broken = {rel for rel, _ in sprite_set.corrupt}
    kinds = set()
    for rel in _files(root):
        if rel in broken:
            continue
        with Image.open(root / rel) as im:
            if im.format == "PNG":
                assert im.mode == "RGBA"
                assert np.asarray(im)[..., 3].min() == 0  # a transparent background
                kinds.add("png")
            else:
                assert im.format == "GIF" and im.mode == "P"
                assert im.info.get("transparency") == 0
                kinds.add("animated-gif" if getattr(im, "n_frames", 1) > 1 else "gif")
    assert kinds == {"png", "gif", "animated-gif"}
    for rel in sprite_set.animated:
        with Image.open(root / rel) as im:
            assert im.n_frames == 4


def test_deterministic_for_a_seed(sprite_set, tmp_path):
    again = make_sprite_set(tmp_path / "again", SMALL)
    assert _files(Path(again.root)) == _files(Path(sprite_set.root))
    assert again.near_dups == sprite_set.near_dups and again.conflict == sprite_set.conflict
    other = make_sprite_set(tmp_path / "other", SynthConfig(**{**SMALL.__dict__, "seed": 4}))
    assert _files(Path(other.root)) != _files(Path(sprite_set.root))


def test_planted_duplicates(sprite_set):
    root = Path(sprite_set.root)
    for copy, orig in sprite_set.exact_copies:
        assert (root / copy).read_bytes() == (root / orig).read_bytes()
        assert copy.split("/")[0] == orig.split("/")[0]
    for copy, orig in sprite_set.pixel_copies:
        assert (root / copy).read_bytes() != (root / orig).read_bytes()
        assert np.array_equal(_on_white(root / copy), _on_white(root / orig))
    for copy, orig in sprite_set.near_dups:
        a, b = _on_white(root / copy), _on_white(root / orig)
        assert a.shape != b.shape  # rescaled: different pixels ...
        ha = imagehash.phash(Image.fromarray(a))
        hb = imagehash.phash(Image.fromarray(b))
        assert ha - hb <= 4  # ... the same picture
    ours = sprite_set.conflict
    assert ours is not None
    assert ours[0].split("/")[0] != ours[1].split("/")[0]
    assert (root / ours[0]).read_bytes() == (root / ours[1]).read_bytes()


def test_planted_broken_files_fail_verification(sprite_set):
    root = Path(sprite_set.root)
    assert {kind for _, kind in sprite_set.corrupt} == {
        "garbage", "truncated-png", "empty", "truncated-gif", "bad-header",
    }  # fmt: skip
    for rel, _kind in sprite_set.corrupt:
        with pytest.raises(VerificationError):
            verify_image_file(root / rel)
    for rel in sprite_set.too_small:
        info = verify_image_file(root / rel)
        assert max(info.width, info.height) < 32


def test_distinct_classes_look_distinct(sprite_set):
    """Sprites of different classes are far apart in perceptual hash; the demo relies on it."""
    root = Path(sprite_set.root)
    broken = {rel for rel, _ in sprite_set.corrupt} | {sprite_set.conflict[1]}
    hashes = [
        (rel.split("/")[0], imagehash.phash(Image.fromarray(_on_white(root / rel))))
        for rel in _files(root)
        if rel not in broken
    ]
    closest = min(a[1] - b[1] for i, a in enumerate(hashes) for b in hashes[i + 1 :] if a[0] != b[0])
    assert closest > 4


def test_reuse_refuse_and_overwrite(sprite_set, tmp_path):
    out = tmp_path / "s"
    (tmp_path / ".tmp-s-999999").mkdir()  # what a killed run leaves
    first = make_sprite_set(out, SMALL)
    marker = (out / REPORT_NAME).stat().st_mtime_ns
    assert make_sprite_set(out, SMALL) == first  # same settings: reused, nothing redrawn
    assert (out / REPORT_NAME).stat().st_mtime_ns == marker
    changed = SynthConfig(**{**SMALL.__dict__, "per_class": 6})
    with pytest.raises(UserError, match="already exists"):
        make_sprite_set(out, changed)
    redrawn = make_sprite_set(out, changed, overwrite=True)
    assert redrawn.sprites == 5 * 6
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize(
    "bad",
    [{"n_classes": 1}, {"n_classes": 13}, {"per_class": 1}, {"near_dups": -1}, {"gif_share": 1.5},
     {"per_class": 2, "n_classes": 2, "near_dups": 3}],
)  # fmt: skip
def test_config_validated(bad, tmp_path):
    with pytest.raises(UserError):
        make_sprite_set(tmp_path / "x", SynthConfig(**bad))


def test_demo_catalog_loads(tmp_path):
    path = write_demo_catalog(tmp_path / "catalog.csv", n_classes=5)
    catalog = load_catalog(path)
    assert catalog.names == [c[0] for c in CREATURES[:5]]
    assert catalog.by_name("blobble").class_index == 0
