"""Tiny test images in every Pillow mode, with a known transparent region and a known opaque colour.

Every maker returns a :class:`Case`: the image, a boolean mask of pixels that are fully transparent
(``None`` for modes that cannot carry transparency) and the exact RGB expected where pixels are opaque.
The left half of each 8x8 image is transparent (where the mode allows it), the right half opaque.
Others may reuse these (e.g. the dedup tests) to get images of awkward modes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

SIZE = 8
HALF = SIZE // 2


@dataclass
class Case:
    name: str
    image: Image.Image
    transparent: np.ndarray | None  # (H, W) bool: pixels that must become the background exactly
    opaque_rgb: tuple[int, int, int]  # expected colour of the opaque (right) half


def _left_mask() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    m[:, :HALF] = True
    return m


def _halves(left, right, channels: int, dtype=np.uint8) -> np.ndarray:
    shape = (SIZE, SIZE, channels) if channels > 1 else (SIZE, SIZE)
    arr = np.zeros(shape, dtype)
    arr[:, :HALF] = left
    arr[:, HALF:] = right
    return arr


def mode_1() -> Case:
    arr = _halves(0, 255, 1)
    return Case("1", Image.fromarray(arr, "L").convert("1"), None, (255, 255, 255))


def mode_l() -> Case:
    return Case("L", Image.fromarray(_halves(10, 200, 1), "L"), None, (200, 200, 200))


def mode_l_key() -> Case:
    """Greyscale with a tRNS colour key (grey level 10 is transparent)."""
    im = Image.fromarray(_halves(10, 200, 1), "L")
    im.info["transparency"] = 10
    return Case("L+tRNS", im, _left_mask(), (200, 200, 200))


def mode_la() -> Case:
    return Case("LA", Image.fromarray(_halves((0, 0), (180, 255), 2), "LA"), _left_mask(), (180, 180, 180))


def mode_la_premultiplied() -> Case:
    im = Image.fromarray(_halves((0, 0), (180, 255), 2), "LA").convert("La")
    return Case("La", im, _left_mask(), (180, 180, 180))


def _palette_image() -> Image.Image:
    im = Image.frombytes("P", (SIZE, SIZE), _halves(0, 1, 1).tobytes())
    pal = [0, 0, 0, 30, 144, 255] + [0, 0, 0] * 254  # index 0 black (the classic trap), 1 dodger blue
    im.putpalette(pal)
    return im


def mode_p() -> Case:
    return Case("P", _palette_image(), None, (30, 144, 255))


def mode_p_index() -> Case:
    """Palette with a transparency index: index 0 (black!) is transparent."""
    im = _palette_image()
    im.info["transparency"] = 0
    return Case("P+index", im, _left_mask(), (30, 144, 255))


def mode_p_rgba_palette() -> Case:
    im = Image.frombytes("P", (SIZE, SIZE), _halves(0, 1, 1).tobytes())
    im.putpalette([0, 0, 0, 0, 250, 20, 60, 255] + [0, 0, 0, 255] * 254, "RGBA")
    return Case("P+RGBA-palette", im, _left_mask(), (250, 20, 60))


def mode_pa() -> Case:
    arr = _halves((0, 0), (1, 255), 2)
    im = Image.frombytes("PA", (SIZE, SIZE), arr.tobytes())
    im.putpalette([0, 0, 0, 90, 200, 40] + [0, 0, 0] * 254)
    return Case("PA", im, _left_mask(), (90, 200, 40))


def mode_rgb() -> Case:
    return Case("RGB", Image.fromarray(_halves((1, 2, 3), (12, 34, 56), 3), "RGB"), None, (12, 34, 56))


def mode_rgb_key() -> Case:
    """RGB with a tRNS colour key."""
    im = Image.fromarray(_halves((1, 2, 3), (12, 34, 56), 3), "RGB")
    im.info["transparency"] = (1, 2, 3)
    return Case("RGB+tRNS", im, _left_mask(), (12, 34, 56))


def mode_rgba() -> Case:
    arr = _halves((0, 0, 0, 0), (200, 100, 50, 255), 4)
    return Case("RGBA", Image.fromarray(arr, "RGBA"), _left_mask(), (200, 100, 50))


def mode_rgba_premultiplied() -> Case:
    arr = _halves((0, 0, 0, 0), (200, 100, 50, 255), 4)
    return Case("RGBa", Image.fromarray(arr, "RGBA").convert("RGBa"), _left_mask(), (200, 100, 50))


def mode_cmyk() -> Case:
    arr = _halves((0, 0, 0, 255), (0, 255, 255, 0), 4)  # left black, right pure red
    return Case("CMYK", Image.frombytes("CMYK", (SIZE, SIZE), arr.tobytes()), None, (255, 0, 0))


def mode_ycbcr() -> Case:
    im = Image.fromarray(_halves((0, 0, 0), (255, 255, 255), 3), "RGB").convert("YCbCr")
    return Case("YCbCr", im, None, (255, 255, 255))


def _i16(mode: str) -> Case:
    arr = _halves(0, 65535, 1, np.uint16)
    dtype = ">u2" if mode == "I;16B" else "<u2"
    im = Image.frombytes(mode, (SIZE, SIZE), arr.astype(dtype).tobytes())
    return Case(mode, im, None, (255, 255, 255))


def mode_i16() -> Case:
    return _i16("I;16")


def mode_i16b() -> Case:
    return _i16("I;16B")


def mode_i16l() -> Case:
    return _i16("I;16L")


def mode_i() -> Case:
    return Case("I", Image.fromarray(_halves(0, 65535, 1, np.int32), "I"), None, (255, 255, 255))


def mode_f() -> Case:
    return Case("F", Image.fromarray(_halves(0.0, 1.0, 1, np.float32), "F"), None, (255, 255, 255))


ALL_CASES: tuple[Callable[[], Case], ...] = (
    mode_1, mode_l, mode_l_key, mode_la, mode_la_premultiplied, mode_p, mode_p_index, mode_p_rgba_palette,
    mode_pa, mode_rgb, mode_rgb_key, mode_rgba, mode_rgba_premultiplied, mode_cmyk, mode_ycbcr, mode_i16,
    mode_i16b, mode_i16l, mode_i, mode_f,
)  # fmt: skip


# -- encoded files -------------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def sprite(size: int = 64, colour=(220, 40, 40), *, offset: int = 0) -> Image.Image:
    """An RGBA sprite: a filled square in the middle of a fully transparent canvas."""
    arr = np.zeros((size, size, 4), np.uint8)
    q = size // 4
    arr[q + offset : 3 * q + offset, q : 3 * q] = (*colour, 255)
    return Image.fromarray(arr, "RGBA")


def gif_with_transparency(size: int = 64, colour=(220, 40, 40)) -> bytes:
    """A palette GIF whose background is the transparency index (pixel (0, 0) is transparent)."""
    return encode(sprite(size, colour), "GIF")


def animated(fmt: str, n: int = 6, size: int = 64, **kw) -> bytes:
    """An animation of ``n`` frames, each a differently coloured, shifted square on transparency.

    Frame ``i`` has colour ``frame_colour(i)``; GIF frames use disposal 2 (restore to background).
    """
    frames = [sprite(size, frame_colour(i), offset=i % 4) for i in range(n)]
    opts = {"save_all": True, "append_images": frames[1:], "duration": 50, "loop": 0}
    if fmt == "GIF":
        opts["disposal"] = 2
    if fmt == "WEBP":
        opts["lossless"] = True
    opts.update(kw)
    return encode(frames[0], fmt, **opts)


def frame_colour(i: int) -> tuple[int, int, int]:
    return ((40 * i + 60) % 256, (200 - 30 * i) % 256, (90 + 50 * i) % 256)


def jpeg_with_orientation(orientation: int, size=(40, 20)) -> bytes:
    """A JPEG whose stored pixels have a red left half and a blue right half, with an EXIF orientation."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    im = Image.fromarray(arr, "RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, "JPEG", quality=95, exif=exif.tobytes())


def noise(size=(96, 96), seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").convert(mode)


def truncated_png(size=(96, 96)) -> bytes:
    """A PNG cut in the middle of its pixel data (the header and size still read fine)."""
    data = encode(noise(size), "PNG")
    return data[: len(data) // 2]


def large_jpeg(size=(1600, 1200), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 50, size[0] // 50, 3), dtype=np.uint8)
    im = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BILINEAR)
    return encode(im, "JPEG", quality=90)


# -- raw dataset directories (ledger items + raw files, as a fetch leaves them) ---------------------------


def add_raw(
    root, class_name: str, name: str, data: bytes | None, *, source: str = "folder", meta=None
) -> int:
    """Store ``data`` as a fetched file of ``class_name`` in the dataset at ``root``; returns the item id.

    The bytes go in unverified (a clean test wants corrupt files to reach the clean stage); ``None``
    records a row whose file is missing.
    """
    import hashlib

    from pokedata.ledger import Candidate, Ledger
    from pokedata.store import DatasetDir

    ds = DatasetDir.at(root).create()
    with Ledger(ds.ledger_path) as ledger:
        ledger.plan([Candidate(source, name, class_name, meta=meta or {})])
        (item,) = ledger.find(source, name, class_name)
        ext = name.rsplit(".", 1)[-1] if "." in name else "bin"
        path = ds.raw_path(class_name, f"{source}-{name.rsplit('.', 1)[0]}", ext)
        if data is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        digest = hashlib.sha256(data or b"").hexdigest()
        ledger.mark_done(
            item.id, path=ds.rel(path) if data is not None else f"raw/{class_name}/{name}", sha256=digest,
            md5="", nbytes=len(data or b""), width=0, height=0,
        )  # fmt: skip
    return item.id


def share_file(root, item_id: int, class_name: str) -> int:
    """A second row, under another class, pointing at the stored file of ``item_id`` (a label conflict)."""
    from pokedata.ledger import Candidate, Ledger
    from pokedata.store import DatasetDir

    ds = DatasetDir.at(root)
    with Ledger(ds.ledger_path) as ledger:
        src = ledger.get(item_id)
        ledger.plan([Candidate(src.source, src.source_id, class_name)])
        (item,) = ledger.find(src.source, src.source_id, class_name)
        ledger.mark_done(
            item.id, path=src.path or "", sha256=src.sha256 or "", md5="", nbytes=0, width=0, height=0,
            meta={"shares_file_with": src.id},
        )  # fmt: skip
    return item.id


def image_rows(root) -> list[dict]:
    """Every ``images`` row of the dataset at ``root`` as dicts, in (item_id, frame) order."""
    import sqlite3

    from pokedata.store import DatasetDir

    ds = DatasetDir.at(root)
    conn = sqlite3.connect(ds.ledger_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM images ORDER BY item_id, frame")]
    finally:
        conn.close()
