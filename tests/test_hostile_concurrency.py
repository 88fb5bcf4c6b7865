"""Two poke processes on one --data (issue 14): writers take the dataset lock, a second writer stops at once
with a clear message naming the other process, readers run alongside, and nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import app
from pokedata.clean import CleanConfig, run_clean
from pokedata.errors import UserError
from pokedata.fetch.folder import FolderImportConfig, import_folder
from pokedata.ledger import Ledger
from pokedata.store import DatasetDir
from tests.helpers import images as H

REPO = Path(__file__).resolve().parent.parent

HOLD = """
import sys, time
from pokedata.store import DatasetDir
with DatasetDir.at(sys.argv[1]).create().writer_lock("fetch folder"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _folder(tmp_path: Path, n: int, size: int = 48) -> Path:
    src = tmp_path / "src"
    for i in range(n):
        p = src / f"C{i % 2}" / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(H.encode(H.noise((size, size), seed=i), "PNG"))
    return src


def test_second_writer_stops_with_the_holder_named_readers_run_alongside(tmp_path, runner):
    src = _folder(tmp_path, 4)
    data = tmp_path / "d"
    import_folder(FolderImportConfig(root=src, data=data, progress=False))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(data)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"another poke process {holder.pid} \\(fetch folder\\)"):
            import_folder(FolderImportConfig(root=src, data=data, progress=False))
        with pytest.raises(UserError, match="being written"):
            run_clean(CleanConfig(data=data, workers=1, progress=False, min_side=16))
        result = runner.invoke(app, ["clean", "--data", str(data), "--workers", "1"])
        assert result.exit_code == 2 and f"process {holder.pid}" in result.output
        # readers run alongside the writer
        status = runner.invoke(app, ["status", "--data", str(data)])
        assert status.exit_code == 0, status.output
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # the holder was killed: its lock went with it
    assert run_clean(CleanConfig(data=data, workers=1, progress=False, min_side=16)).processed == 4


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    ds = DatasetDir.at(tmp_path / "d").create()
    with ds.writer_lock("outer"), ds.writer_lock("inner"):
        assert ds.lock_path.read_text().startswith(f"{os.getpid()} outer")
    with ds.writer_lock("again"):  # released after the outer block
        pass


@pytest.mark.slow
def test_two_fetches_at_once_lose_nothing(tmp_path):
    """Two `poke fetch folder` on one --data at the same moment: one runs, the other stops with exit 2 and a
    one-line message (no FileNotFoundError from the other's temp files); every file is stored once."""
    src = _folder(tmp_path, 60, size=96)
    data = tmp_path / "d"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    cmd = [sys.executable, str(REPO / "cli.py"), "fetch", "folder", str(src), "--data", str(data)]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ]
    time.sleep(0.3)
    procs.append(
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
    outs = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    for out, err in outs:
        assert "Traceback" not in out + err
    assert codes in ([0, 0], [0, 2])
    if codes == [0, 2]:
        loser = outs[[p.returncode for p in procs].index(2)]
        assert "being written by another poke process" in " ".join((loser[0] + loser[1]).split())
    # whichever way it went, a rerun completes and every file is there exactly once
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    with Ledger(data / "ledger.sqlite") as ledger:
        items = ledger.select(source="folder")
    assert len(items) == 60 and {it.status for it in items} == {"done"}
    assert len({it.path for it in items}) == 60
    assert len(list((data / "raw").rglob("*.png"))) == 60
    assert not list((data / "tmp").iterdir())
