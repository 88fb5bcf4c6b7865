"""Dump mode: Danbooru20xx metadata (2019/2020 and 2021 formats), exact tag filters, mirror copy, rsync list."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
from pathlib import Path

import pytest
from PIL import Image

from cli import app
from pokedata.errors import UserError
from pokedata.fetch.dump import (
    DumpConfig,
    TagFilter,
    fetch_dump,
    metadata_files,
    mirror_relpath,
    parse_record,
)
from pokedata.fetch.dump_scan import ScanStats, line_tags, scan_file
from pokedata.ledger import Ledger


def _jpg(seed: int, size: int = 10) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)).save(buf, "JPEG")
    return buf.getvalue()


# (id, general tags, character tags, rating, ext, deleted)
POSTS = [
    (1001, ["solo", "pokemon_(creature)"], ["pikachu"], "s", "jpg", False),
    (1002, ["solo"], ["pikachu_(cosplay)"], "s", "jpg", False),  # substring of pikachu: must NOT match
    (1003, ["comic"], ["pikachu", "eevee"], "s", "jpg", False),  # two classes
    (1004, ["solo"], ["eevee"], "q", "jpg", False),
    (1005, ["solo", "animated"], ["pikachu"], "s", "mp4", False),
    (1006, ["solo"], ["pikachu"], "e", "jpg", False),
    (1007, ["solo"], ["pikachu"], "s", "jpg", True),
    (2001, ["solo"], ["bulbasaur"], "s", "png", False),
]


def _record_2019(pid, general, chars, rating, ext, deleted, md5):
    tags = [{"id": str(i), "name": n, "category": "0"} for i, n in enumerate(general)]
    tags += [{"id": str(100 + i), "name": n, "category": "4"} for i, n in enumerate(chars)]
    return {"id": str(pid), "md5": md5, "file_ext": ext, "rating": rating, "score": "5", "tags": tags,
            "is_deleted": deleted, "image_width": "10", "image_height": "10",
            "created_at": "2019-01-01 00:00:00 UTC"}  # fmt: skip


def _record_2021(pid, general, chars, rating, ext, deleted, md5):
    return {"id": pid, "md5": md5, "file_ext": ext, "rating": rating, "score": 5, "is_deleted": deleted,
            "tag_string": " ".join(general + chars), "tag_string_character": " ".join(chars),
            "tag_string_general": " ".join(general), "image_width": 10, "image_height": 10}  # fmt: skip


@pytest.fixture
def dump(tmp_path: Path) -> dict:
    """Metadata in both formats (split across a plain .json and a .jsonl.gz file) and a mirror."""
    meta = tmp_path / "metadata"
    mirror = tmp_path / "mirror"
    meta.mkdir()
    lines_2019, lines_2021 = [], []
    for i, (pid, general, chars, rating, ext, deleted) in enumerate(POSTS):
        data = _jpg(pid) if ext != "png" else _png(pid)
        md5 = hashlib.md5(data).hexdigest()
        for variant, body in (("original", data), ("512px", _jpg(pid + 7, 6))):
            if ext == "mp4" or (variant == "512px" and ext == "png"):
                continue
            p = mirror / mirror_relpath(pid, ext, variant)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(body)
        if i % 2 == 0:
            lines_2019.append(json.dumps(_record_2019(pid, general, chars, rating, ext, deleted, md5)))
        else:
            lines_2021.append(json.dumps(_record_2021(pid, general, chars, rating, ext, deleted, md5)))
    (meta / "2019000000000000.json").write_text("\n".join(lines_2019) + "\n{broken json\n")
    with gzip.open(meta / "posts-2021.jsonl.gz", "wt") as fh:
        fh.write("\n".join(lines_2021) + "\n")
    (meta / "README.txt").write_text("not metadata")
    return {"meta": meta, "mirror": mirror}


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (10, 10), (seed % 256, 0, 0, 128)).save(buf, "PNG")
    return buf.getvalue()


def _rows(data: Path):
    with Ledger(data / "ledger.sqlite") as ledger:
        return {r.source_id: r for r in ledger.select(source="danbooru-dump")}


def test_exact_tag_matching_not_substring():
    flt = TagFilter(include_and=frozenset({"pikachu"}))
    assert flt.accepts({"pikachu", "solo"}, "s")
    assert not flt.accepts({"pikachu_(cosplay)", "solo"}, "s")
    # The byte pre-check may let a substring through, the exact check then rejects it.
    assert flt.may_match(b'{"tags": "pikachu_(cosplay)"}')
    assert not flt.may_match(b'{"tags": "eevee"}')
    both = TagFilter(include_or=frozenset({"eevee", "pikachu"}), exclude_and=frozenset({"eevee", "pikachu"}))
    assert both.accepts({"eevee"}, "s") and both.accepts({"pikachu"}, "s")
    assert not both.accepts({"eevee", "pikachu"}, "s") and not both.accepts({"bulbasaur"}, "s")
    assert not TagFilter(exclude_or=frozenset({"comic"})).accepts({"comic", "x"}, "s")
    assert not TagFilter(ratings=frozenset({"s"})).accepts({"x"}, "q")
    rated = TagFilter(ratings=frozenset({"s"}))
    assert not rated.may_match(b'{"rating": "q", "tags": []}')
    assert rated.may_match(b'{"rating":"s"}') and rated.may_match(b'{"id": 1}')  # unknown: parse and check
    # Many tags (a catalog) or excludes: the line's tag names are pulled out, exactly, without parsing.
    many = TagFilter(include_or=frozenset({f"tag_{i}" for i in range(50)} | {"pikachu"}),
                     exclude_or=frozenset({"comic"}))  # fmt: skip
    line_2019 = json.dumps(_record_2019(1, ["solo"], ["pikachu_(cosplay)"], "s", "jpg", False, "ab")).encode()
    line_2021 = json.dumps(_record_2021(1, ["solo"], ["pikachu"], "s", "jpg", False, "ab")).encode()
    assert line_tags(line_2019) == {b"solo", b"pikachu_(cosplay)"}
    assert line_tags(line_2021) == {b"solo", b"pikachu"}
    assert not many.may_match(line_2019)  # pikachu_(cosplay) is not pikachu
    assert many.may_match(line_2021)
    comic = json.dumps(_record_2021(1, ["comic"], ["pikachu"], "s", "jpg", False, "ab")).encode()
    assert not many.may_match(comic)
    escaped = json.dumps(_record_2019(1, ["solo"], ["flabébé"], "s", "jpg", False, "ab")).encode()
    assert line_tags(escaped) is None  # an escape: fall back to the substring check, then parse
    assert TagFilter(include_or=frozenset({f"t{i}" for i in range(50)} | {"flabébé"})).may_match(escaped)
    unicode_tag = TagFilter(include_and=frozenset({"flabébé"}))
    assert unicode_tag.may_match(json.dumps({"t": "flabébé"}).encode())  # ASCII-escaped
    assert unicode_tag.may_match(json.dumps({"t": "flabébé"}, ensure_ascii=False).encode())


def test_parse_both_formats():
    a = parse_record(_record_2019(5, ["solo"], ["pikachu"], "s", "jpg", False, "ab" * 16))
    b = parse_record(_record_2021(5, ["solo"], ["pikachu"], "s", "jpg", False, "AB" * 16))
    for p in (a, b):
        assert (p.id, p.md5, p.ext, p.rating, p.tags, p.characters) == (
            5,
            "ab" * 16,
            "jpg",
            "s",
            {"solo", "pikachu"},
            ["pikachu"],
        )
    assert (
        parse_record(
            {**_record_2019(6, [], [], "s", "jpg", "true", "0" * 32), "is_deleted": "true"}
        ).skip_reason
        == "deleted"
    )
    assert mirror_relpath(1234567, "png", "original") == "original/0567/1234567.png"
    assert mirror_relpath(1234567, "png", "sample") == "512px/0567/1234567.jpg"


def test_metadata_files_formats(tmp_path: Path):
    (tmp_path / "a.jsonl.xz").write_bytes(lzma.compress(b'{"id": 1}\n'))
    (tmp_path / "2020000000000001").write_text('{"id": 2}\n')
    (tmp_path / "notes.md").write_text("x")
    assert [p.name for p in metadata_files(tmp_path)] == ["2020000000000001", "a.jsonl.xz"]
    assert metadata_files(tmp_path / "a.jsonl.xz") == [tmp_path / "a.jsonl.xz"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no metadata files"):
        metadata_files(tmp_path / "empty")
    with pytest.raises(UserError, match="does not exist"):
        metadata_files(tmp_path / "missing")
    # Compressed files stream through the same scan; bad lines are counted, not fatal.
    stats = ScanStats()
    xz = tmp_path / "b.jsonl.xz"
    xz.write_bytes(lzma.compress(b'{"id": 3, "tag_string": "pikachu", "rating": "s"}\nnot json, pikachu\n'))
    assert [p.id for p in scan_file(xz, TagFilter(include_and=frozenset({"pikachu"})), stats)] == [3]
    assert (stats.lines, stats.bad_lines, stats.matched) == (2, 1, 1)
    truncated = tmp_path / "c.jsonl.gz"
    truncated.write_bytes(gzip.compress(b'{"id": 4}\n' * 1000)[:60])
    with pytest.raises(UserError, match="cannot read metadata file"):
        list(scan_file(truncated, TagFilter(), ScanStats()))
    zst = tmp_path / "d.jsonl.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd")
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="zstandard"):
            list(scan_file(zst, TagFilter(), ScanStats()))


def test_mirror_copy_with_catalog_labels(dump: dict, tmp_path: Path, runner):
    data = tmp_path / "data"
    args = ["fetch", "danbooru", "--dump", str(dump["meta"]), "--images", str(dump["mirror"]),
            "--tags", "pikachu", "--rating", "s", "--catalog", "--data", str(data)]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = _rows(data)
    # 1002 (pikachu_(cosplay)) is not a match; 1004 has no pikachu; 1006 is rated e.
    assert set(rows) == {"1001", "1003", "1005", "1007"}
    assert rows["1001"].status == "done" and rows["1001"].class_name == "Pikachu"
    assert (data / rows["1001"].path).read_bytes() == (dump["mirror"] / "original/0001/1001.jpg").read_bytes()
    assert rows["1001"].md5 == rows["1001"].meta["md5"]
    assert rows["1003"].class_name == "" and rows["1003"].meta["multi_class"] is True
    assert rows["1003"].meta["classes"] == ["Eevee", "Pikachu"]
    assert rows["1005"].status == "skipped" and rows["1005"].error == "not-an-image:mp4"
    assert rows["1007"].status == "skipped" and rows["1007"].error == "deleted"
    assert "bad lines" in result.output

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert _rows(data) == rows  # nothing new, nothing changed
    assert "files already scanned" in again.output


def test_catalog_without_tags_takes_every_class(dump: dict, tmp_path: Path):
    res = fetch_dump(DumpConfig(metadata=dump["meta"], data=tmp_path / "d", images=dump["mirror"],
                                catalog=True, variant="sample", progress=False))  # fmt: skip
    rows = _rows(tmp_path / "d")
    assert {r.class_name for r in rows.values() if r.status == "done"} == {"Pikachu", "Eevee", ""}
    assert "1002" not in rows  # pikachu_(cosplay) is not a catalog tag
    assert rows["2001"].status == "failed" and rows["2001"].error.startswith("missing-file")  # no 512px file
    assert rows["1001"].meta["mirror_path"] == "512px/0001/1001.jpg" and "md5" not in rows["1001"].meta
    assert res.stats.matched == len(rows)


def test_md5_mismatch_is_quarantined(dump: dict, tmp_path: Path):
    (dump["mirror"] / "original/0004/1004.jpg").write_bytes(_jpg(99))
    fetch_dump(DumpConfig(metadata=dump["meta"], data=tmp_path / "d", images=dump["mirror"], tags=("eevee",),
                          class_name="Eevee", progress=False))  # fmt: skip
    rows = _rows(tmp_path / "d")
    assert rows["1004"].status == "quarantined" and rows["1004"].error.startswith("md5-mismatch")
    assert rows["1003"].status == "done" and rows["1003"].class_name == "Eevee"


def test_rsync_list(dump: dict, tmp_path: Path, runner):
    out = tmp_path / "files.txt"
    result = runner.invoke(app, ["fetch", "danbooru", "--dump", str(dump["meta"]), "--rsync-list", str(out),
                                 "--any-tag", "pikachu", "--any-tag", "bulbasaur", "--exclude", "comic",
                                 "--data", str(tmp_path / "d")])  # fmt: skip
    assert result.exit_code == 0, result.output
    # 1003 excluded (comic), 1005 mp4 and 1007 deleted are not listed, 1002 is not an exact match.
    assert out.read_text().split() == [
        "original/0001/1001.jpg",
        "original/0006/1006.jpg",
        "original/0001/2001.png",
    ]
    assert not (tmp_path / "d" / "ledger.sqlite").exists()


def test_limit_resumes(dump: dict, tmp_path: Path):
    cfg = DumpConfig(metadata=dump["meta"], data=tmp_path / "d", images=dump["mirror"], any_tags=("pikachu", "eevee"),
                     limit=2, progress=False)  # fmt: skip
    first = fetch_dump(cfg)
    assert first.summary.planned == 2
    second = fetch_dump(cfg)
    assert second.summary.planned == 2
    assert len(_rows(tmp_path / "d")) == 4


def test_dump_option_errors(dump: dict, tmp_path: Path, runner):
    with pytest.raises(UserError, match="exactly one of --images"):
        DumpConfig(metadata=dump["meta"], data=tmp_path, tags=("x",)).validate()
    with pytest.raises(UserError, match="no 512px/ folder"):
        DumpConfig(
            metadata=dump["meta"], data=tmp_path, tags=("x",), images=tmp_path, variant="sample"
        ).validate()
    with pytest.raises(UserError, match="--rating"):
        DumpConfig(
            metadata=dump["meta"], data=tmp_path, tags=("x",), rsync_list=tmp_path / "l", rating=("z",)
        ).validate()
    result = runner.invoke(app, ["fetch", "danbooru", "--dump", str(tmp_path / "nope"), "--rsync-list",
                                 str(tmp_path / "l"), "--tags", "x"])  # fmt: skip
    assert result.exit_code == 2 and "does not exist" in result.output


def test_dry_run_counts_and_copies_nothing(dump: dict, tmp_path: Path, runner):
    data = tmp_path / "d"
    result = runner.invoke(
        app,
        ["fetch", "danbooru", "--dump", str(dump["meta"]), "--catalog", "--any-tag", "pikachu", "--dry-run",
         "--data", str(data)],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "class: Pikachu │ 2" in text
        and "skipped: deleted │ 1" in text
        and "skipped: not-an-image:mp4 │ 1" in text
    )
    assert "class: (none / multi-class) │ 1" in text
    assert not data.exists()


def test_same_post_from_api_and_dump_never_overwrites(dump: dict, tmp_path: Path):
    """A post copied from a dump and fetched from the API as other bytes (e.g. its sample) keeps both files;
    and a file already under a final name with other bytes is never overwritten."""
    from pokedata.fetch.intake import commit_file, temp_path
    from pokedata.ledger import Candidate
    from pokedata.store import DatasetDir

    data = tmp_path / "d"
    fetch_dump(DumpConfig(metadata=dump["meta"], data=data, images=dump["mirror"], tags=("eevee",),
                          class_name="Eevee", progress=False))  # fmt: skip
    dataset = DatasetDir.at(data)
    stray = dataset.raw_dir / "Eevee" / "1005.jpg"
    stray.write_bytes(b"someone else's file")
    with Ledger(dataset.ledger_path) as ledger:
        (dumped,) = [r for r in ledger.select(source="danbooru-dump") if r.source_id == "1004"]
        assert dumped.path == "raw/Eevee/danbooru-dump-1004.jpg"
        before = dataset.abs(dumped.path).read_bytes()
        ledger.plan([Candidate("danbooru", pid, "Eevee", f"http://x/{pid}.jpg") for pid in ("1004", "1005")])
        outs = []
        for pid, seed in (("1004", 4242), ("1005", 4343)):
            (item,) = ledger.find("danbooru", pid, "Eevee")
            tmp = temp_path(dataset, item)
            tmp.write_bytes(_jpg(seed))
            outs.append(commit_file(ledger, dataset, item, tmp))
    assert outs[0].status == "done" and outs[0].path == "raw/Eevee/1004.jpg"
    assert dataset.abs(dumped.path).read_bytes() == before
    assert outs[1].status == "done" and outs[1].path.startswith("raw/Eevee/1005-")
    assert stray.read_bytes() == b"someone else's file"
