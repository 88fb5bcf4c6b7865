"""`poke clean` under hostile conditions (issue 14): Ctrl-C and kill -9 with worker processes, and settings
that decide outcomes (``--max-pixels``) recorded so a change redoes what they decided."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pokedata.clean import CleanConfig, run_clean
from tests.helpers import images as H
from tests.helpers.kill import count_rows, stop_when

REPO = Path(__file__).resolve().parent.parent
N_ITEMS = 120


def _cfg(root, **kw) -> CleanConfig:
    return CleanConfig(**{"data": root, "min_side": 16, "workers": 1, "progress": False, **kw})


def _statuses(root: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(root / "ledger.sqlite") as conn:
        return conn.execute("SELECT status, error FROM images ORDER BY item_id").fetchall()


# -- bug 6: --max-pixels is a recorded setting ---------------------------------------------------------
def test_max_pixels_is_recorded_and_dropping_it_redoes_its_quarantines(tmp_path):
    root = tmp_path / "ds"
    H.add_raw(root, "Pikachu", "big.png", H.encode(H.noise((120, 120)), "PNG"))  # 14,400 px
    H.add_raw(root, "Pikachu", "small.png", H.encode(H.noise((40, 40), seed=1), "PNG"))  # 1,600 px
    s1 = run_clean(_cfg(root, max_pixels=5000))
    assert s1.quarantined == 1 and [e for _, e in _statuses(root)][0].startswith("decompression-bomb")
    s2 = run_clean(_cfg(root))  # the limit removed: both redone, the big one is now clean
    assert s2.up_to_date == 0 and s2.processed == 2 and [s for s, _ in _statuses(root)] == ["done", "done"]
    s3 = run_clean(_cfg(root))
    assert s3.up_to_date == 2  # and it stays up to date without the option
    s4 = run_clean(_cfg(root, max_pixels=5000))  # set again: redone, quarantined again
    assert s4.processed == 2 and s4.quarantined == 1


# -- bugs 4 and 10: Ctrl-C and kill -9 of `poke clean --workers 2` ---------------------------------------------
@pytest.fixture
def many(tmp_path) -> Path:
    root = tmp_path / "ds"
    for i in range(N_ITEMS):
        H.add_raw(root, f"C{i % 3}", f"n{i:03d}.png", H.encode(H.noise((320, 320), seed=i), "PNG"))
    return root


def _clean_proc(root: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "clean", "--data", str(root), "--workers", "2", "--min-side", "16"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _rows(root: Path) -> int:
    return count_rows(root, "SELECT count(*) FROM images")


def _processes_on(root: Path) -> list[int]:
    """Pids of live processes whose command line names ``root`` (the clean parent and its forked workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(root).encode() in cmd and state != "Z":
            found.append(int(entry))
    return found


def _recording_with_workers(proc: subprocess.Popen, root: Path, seen: list[int]):
    """A ``ready`` for :func:`stop_when`: rows recorded and worker processes running (their pids kept in
    ``seen``)."""

    def ready() -> bool:
        seen[:] = [p for p in _processes_on(root) if p != proc.pid]
        return _rows(root) > 0 and bool(seen)

    return ready


def _gone(root: Path, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _processes_on(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _rerun_completes(root: Path, recorded: int) -> None:
    summary = run_clean(_cfg(root, workers=2))
    assert summary.up_to_date >= recorded  # what was recorded before the signal is not redone
    assert summary.up_to_date + summary.processed == N_ITEMS
    assert _rows(root) == N_ITEMS
    assert not list(root.joinpath("clean").rglob(".tmp-*"))


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_clean_and_its_workers_then_it_resumes(many):
    proc = _clean_proc(many)
    workers: list[int] = []
    stopped = stop_when(
        proc, _recording_with_workers(proc, many, workers), sig=signal.SIGINT, exit_timeout_s=30
    )
    out, err = stopped.out, stopped.err
    assert workers and "Traceback" not in out + err
    assert "Resume with: poke clean --data" in " ".join((out + err).split())
    assert _gone(many) == []  # the workers stopped with it
    recorded = _rows(many)
    assert 0 < recorded < N_ITEMS
    _rerun_completes(many, recorded)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_clean_takes_its_workers_with_it(many):
    proc = _clean_proc(many)
    workers: list[int] = []
    stop_when(proc, _recording_with_workers(proc, many, workers), exit_timeout_s=30)
    assert workers
    assert _gone(many) == []  # no orphan worker holds the dataset after its parent died
    recorded = _rows(many)
    assert recorded < N_ITEMS
    _rerun_completes(many, recorded)
