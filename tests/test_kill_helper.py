"""The kill-and-resume helper refuses a kill that did not happen (the child finished first)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.helpers.kill import INTERRUPTED, stop_when

SLEEPER = "import time; time.sleep(60)"
CTRL_C = """
import pathlib, signal, sys, time
# a shell that starts background jobs with SIGINT ignored passes that on, and Python then installs no
# KeyboardInterrupt handler: restore it, so the test does not depend on how pytest was launched
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    pathlib.Path(sys.argv[1]).touch()  # inside the try: a Ctrl-C from now on exits 130
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE, text=True)


def test_a_running_child_is_killed():
    proc = _child(SLEEPER)
    stopped = stop_when(proc, lambda: True)
    assert proc.returncode == -signal.SIGKILL and stopped.seconds < 60


def test_a_child_that_finished_first_fails_the_test():
    proc = _child("print('done')")
    with pytest.raises(pytest.fail.Exception, match="finished before the kill point"):
        stop_when(proc, lambda: False, timeout_s=60)


def test_a_kill_point_reached_only_after_the_child_ended_fails_the_test():
    proc = _child("pass")
    proc.wait()  # the state to interrupt shows up only once the child is gone
    with pytest.raises(pytest.fail.Exception, match="finished before the signal"):
        stop_when(proc, lambda: True)


def test_a_child_that_never_reaches_the_kill_point_is_killed_and_fails_the_test():
    proc = _child(SLEEPER)
    with pytest.raises(pytest.fail.Exception, match="did not reach the kill point"):
        stop_when(proc, lambda: False, timeout_s=0.2)
    assert proc.returncode == -signal.SIGKILL


def test_ctrl_c_must_end_the_child_with_the_interrupted_status(tmp_path):
    ready = tmp_path / "ready"
    proc = _child(CTRL_C, str(ready))
    stop_when(proc, ready.exists, sig=signal.SIGINT)
    assert proc.returncode == INTERRUPTED
    ignores = _child("import signal, time; signal.signal(signal.SIGINT, lambda *a: None); time.sleep(0.3)")
    with pytest.raises(AssertionError, match="not stopped by the signal"):
        stop_when(ignores, lambda: True, sig=signal.SIGINT)
