"""Kill-and-resume tests: stop a child mid-run, and be sure it really was mid-run.

A kill-and-resume test proves nothing when the child finished before the signal (the resume then has
nothing to resume). :func:`stop_when` waits for the state to interrupt, signals the child while it is
still running and checks that the signal is what ended it: ``-SIGKILL`` for ``kill -9``, exit 130 (the
CLI's "interrupted, resume with ...") for Ctrl-C. Every test that kills and resumes goes through it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

INTERRUPTED = 130
"""Exit status of a `poke` command stopped by Ctrl-C (SIGINT)."""


@dataclass
class Stopped:
    out: str | bytes | None  # what the child wrote (None where its output was not piped)
    err: str | bytes | None
    seconds: float  # from the (first) signal to the child's exit


def stop_when(
    proc: subprocess.Popen,
    ready: Callable[[], object],
    *,
    sig: int = signal.SIGKILL,
    times: int = 1,
    group: bool = False,
    settle_s: float = 0.0,
    timeout_s: float = 120.0,
    exit_timeout_s: float = 60.0,
) -> Stopped:
    """Send ``sig`` (``times`` times) to ``proc`` once ``ready()`` holds (and ``settle_s`` more seconds
    passed), to its whole process group with ``group`` (a child started with ``start_new_session``).

    Fails the test when the child exits before the signal, when ``ready()`` does not hold within
    ``timeout_s`` (the child is killed), or when the signal did not end it (SIGKILL: returncode -9;
    SIGINT: exit 130): a child that finished first leaves nothing to resume.
    """
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            _fail(proc, "finished before the kill point")
        if time.monotonic() > deadline:
            _send(proc, signal.SIGKILL, group)
            _fail(proc, f"did not reach the kill point within {timeout_s:.0f} s")
        time.sleep(0.05)
    if settle_s:
        time.sleep(settle_s)
    if proc.poll() is not None:
        _fail(proc, "finished before the signal")
    sent = time.monotonic()
    for _ in range(times):
        _send(proc, sig, group)
    try:
        out, err = proc.communicate(timeout=exit_timeout_s)
    except subprocess.TimeoutExpired:
        _send(proc, signal.SIGKILL, group)
        proc.communicate()
        pytest.fail(f"the child did not exit within {exit_timeout_s:.0f} s of signal {sig}")
    seconds = time.monotonic() - sent
    expected = -signal.SIGKILL if sig == signal.SIGKILL else INTERRUPTED
    assert proc.returncode == expected, (
        f"the child exited with {proc.returncode}, not {expected}: it was not stopped by the signal "
        f"(it may have finished first); stderr: {_tail(err)}"
    )
    return Stopped(out, err, seconds)


def _send(proc: subprocess.Popen, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:  # already gone: the returncode check says so
        pass


def _fail(proc: subprocess.Popen, what: str) -> None:
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    pytest.fail(f"the child {what} (exit {proc.returncode}): nothing to resume; stderr: {_tail(err)}")


def _tail(err: str | bytes | None, n: int = 2000) -> str:
    if err is None:
        return "(not captured)"
    text = err.decode(errors="replace") if isinstance(err, bytes) else err
    return text[-n:]


def count_rows(data: Path, sql: str) -> int:
    """``SELECT count(*) ...`` on the ledger of dataset ``data`` that a child is writing (read-only, WAL);
    0 while the ledger or its table does not exist yet."""
    path = data / "ledger.sqlite"
    if not path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0
