"""The "poor" cases of issue 14: data was safe but the user got a traceback, a misleading message or silence.
Each now ends in a clear one-line message (or a warning) that names the input and the fix."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import zlib

import pandas as pd
import pytest

from cli import app
from pokedata.errors import UserError
from pokedata.fetch.folder import FolderImportConfig, import_folder
from pokedata.fetch.http import HttpConfig, PoliteClient
from pokedata.ledger import Ledger
from pokedata.store import atomic_write_text
from tests.helpers import images as H
from tests.helpers.tiny_manifest import make_tiny_manifest
from tests.servers.hostile import HostileServer, body, retry_after


def test_png_with_a_bad_crc_is_reported_under_its_source_not_a_temp_path(tmp_path):
    png = bytearray(H.encode(H.noise((32, 32)), "PNG"))
    png[29:33] = (zlib.crc32(b"nonsense") & 0xFFFFFFFF).to_bytes(4, "big")  # IHDR's CRC
    src = tmp_path / "src" / "Pikachu"
    src.mkdir(parents=True)
    (src / "bad.png").write_bytes(bytes(png))
    data = tmp_path / "d"
    summary = import_folder(FolderImportConfig(root=tmp_path / "src", data=data, progress=False))
    assert summary.quarantined == 1
    with Ledger(data / "ledger.sqlite") as ledger:
        (row,) = ledger.select(source="folder")
    assert row.status == "quarantined"
    assert str(src / "bad.png") in row.error and ".tmp-" not in row.error


def test_build_manifest_out_that_is_a_file_is_a_clear_error(tmp_path, runner):
    out = tmp_path / "manifests"
    out.write_text("not a folder")
    result = runner.invoke(app, ["build-manifest", "--data", str(tmp_path / "d"), "--out", str(out)])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_status_and_fetch_on_a_foreign_sqlite_file_refuse_it_and_leave_it_alone(tmp_path, runner):
    data = tmp_path / "d"
    data.mkdir()
    with sqlite3.connect(data / "ledger.sqlite") as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    before = (data / "ledger.sqlite").read_bytes()
    result = runner.invoke(app, ["status", "--data", str(data)])
    assert result.exit_code == 2 and "not a poke ledger" in result.output and "recipes" in result.output
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(H.encode(H.noise((24, 24)), "PNG"))
    result = runner.invoke(app, ["fetch", "folder", str(src), "--data", str(data)])
    assert result.exit_code == 2 and "not a poke ledger" in result.output
    assert (data / "ledger.sqlite").read_bytes() == before  # no poke tables were added to it


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_dataset_is_called_read_only(tmp_path, runner):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(H.encode(H.noise((24, 24)), "PNG"))
    data = tmp_path / "d"
    import_folder(FolderImportConfig(root=src, data=data, progress=False))
    modes = {p: p.stat().st_mode for p in [data, *data.iterdir()]}
    try:
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        result = runner.invoke(app, ["fetch", "folder", str(src), "--data", str(data)])
        assert result.exit_code == 2 and "read-only" in result.output
    finally:
        for p, m in modes.items():
            p.chmod(stat.S_IMODE(m))


def test_nan_and_inf_training_options_are_refused_at_dry_run(tmp_path, runner):
    manifest = make_tiny_manifest(tmp_path, n_classes=2, per_class=6, size=16)
    for value in ("nan", "inf", "-inf"):
        result = runner.invoke(app, ["train", "classify", "--manifest", str(manifest), "--out", str(tmp_path / "r"),
                                     "--lr", value, "--dry-run"])  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "must be a finite number" in result.output


def test_a_manifest_row_whose_class_name_disagrees_with_its_index_is_refused(tmp_path):
    from pokegan.data import load_manifest

    manifest = make_tiny_manifest(tmp_path, n_classes=3, per_class=6, size=16)
    load_manifest(manifest)  # fine as written
    for name in ("manifest.parquet", "manifest.csv"):
        path = manifest / name
        if not path.is_file():
            continue
        df = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
        if "class_name" not in df.columns:
            pytest.skip("the tiny manifest has no class_name column")
        df.loc[4, "class_name"] = "Mismatch"
        df.to_parquet(path, index=False) if name.endswith(".parquet") else df.to_csv(path, index=False)
    with pytest.raises(UserError, match="row 4 has class_name 'Mismatch'"):
        load_manifest(manifest)


def test_training_on_a_manifest_whose_build_was_killed_says_so(tmp_path):
    from pokegan.data import load_manifest

    manifest = make_tiny_manifest(tmp_path, n_classes=2, per_class=6, size=16)
    (
        manifest / "stats.json"
    ).unlink()  # what a killed `poke build-manifest` leaves (stats.json is written last)
    with pytest.raises(UserError, match="did not finish"):
        load_manifest(manifest)


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_outputs_follow_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "stats.json", "{}")
        assert stat.S_IMODE((tmp_path / "stats.json").stat().st_mode) == 0o644
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.json", "{}")
        assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_huge_retry_after_is_capped_and_said(tmp_path, caplog):
    with HostileServer() as srv:
        calls = {"n": 0}
        busy, ok = retry_after("999999999"), body(b'{"ok": 1}', "application/json")

        def handler(h) -> None:
            calls["n"] += 1
            (busy if calls["n"] == 1 else ok)(h)

        srv.route("/api.json", handler)
        caplog.set_level(logging.WARNING)
        cfg = HttpConfig(retries=2, backoff_base=0.01, backoff_max=0.02, timeout=5, retry_after_max=0.2)
        with PoliteClient(cfg) as client:
            assert client.get_json(srv.url("/api.json")) == {"ok": 1}
    assert "Retry-After 999999999s" in caplog.text and "--max-retry-after" in caplog.text


def test_max_retry_after_is_an_option(tmp_path, runner):
    result = runner.invoke(app, ["fetch", "ddg", "-q", "x", "--class", "X", "--max-retry-after", "nan",
                                 "--data", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2 and "--max-retry-after" in result.output
