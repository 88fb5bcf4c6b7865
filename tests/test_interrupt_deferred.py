"""A first Ctrl-C that lands while a checkpoint is being written waits for the write (pokedata.interrupt).

Found in CI: SIGINT arrived inside ``torch.save``'s write to the file object; the KeyboardInterrupt came out
of torch's zip writer as ``RuntimeError: unexpected pos ...``, so `poke train classify` exited 1 with a
traceback instead of 130, and that checkpoint was lost. These tests send the signal from inside the write
itself, in this process, so the timing is exact rather than lucky."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import pytest
import torch

from pokedata.interrupt import EXIT_CODE, Interrupted, deferred_interrupt, graceful_interrupt
from pokegan import checkpoint
from pokegan.checkpoint import load_checkpoint, save_checkpoint


class CtrlCOnWrite:
    """A file that sends this process a SIGINT on its third write: torch's zip writer is mid-record then."""

    def __init__(self, fh):
        self.fh, self.writes = fh, 0

    def write(self, data):
        self.writes += 1
        if self.writes == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs inside this write, called from C++
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)


@pytest.fixture
def ctrl_c_mid_save(monkeypatch):
    real = checkpoint.atomic_writer

    @contextlib.contextmanager
    def writer(path, *args, **kwargs):
        with real(path, *args, **kwargs) as fh:
            yield CtrlCOnWrite(fh)

    monkeypatch.setattr(checkpoint, "atomic_writer", writer)


def state() -> dict:
    return {"model": torch.randn(64, 1024), "optimizer": torch.randn(64, 1024), "step": 7}


def test_ctrl_c_inside_torch_save_lets_the_checkpoint_finish_then_stops(tmp_path, ctrl_c_mid_save):
    said: list[str] = []
    path = tmp_path / "last.pt"
    saved = state()
    with pytest.raises(Interrupted) as info, graceful_interrupt("poke train classify --resume", said.append):
        save_checkpoint(path, saved)
        pytest.fail("the Ctrl-C must stop the command once the save is done")
    assert info.value.exit_code == EXIT_CODE and info.value.resume == "poke train classify --resume"
    assert len(said) == 1 and "stopping" in said[0]
    back = load_checkpoint(path)  # complete and readable, not a torn zip
    assert back["step"] == 7 and torch.equal(back["model"], saved["model"])
    assert torch.equal(back["optimizer"], saved["optimizer"])
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_without_the_deferral_torch_turns_that_ctrl_c_into_a_runtime_error(tmp_path):
    """Why the deferral exists: the same signal in a bare torch.save is not a KeyboardInterrupt at all."""
    with (
        pytest.raises(RuntimeError, match="unexpected pos"),
        graceful_interrupt("resume", lambda _msg: None),
        open(tmp_path / "raw.pt", "wb") as fh,
    ):
        torch.save(state(), CtrlCOnWrite(fh))


def test_nested_sections_raise_once_when_the_outermost_ends(tmp_path):
    order: list[str] = []
    with pytest.raises(Interrupted), graceful_interrupt("resume", lambda _msg: None):
        with deferred_interrupt():
            with deferred_interrupt():
                os.kill(os.getpid(), signal.SIGINT)
                order.append("inner done")
            order.append("outer done")
        order.append("never")
    assert order == ["inner done", "outer done"]


def test_a_section_without_a_signal_changes_nothing():
    with graceful_interrupt("resume", lambda _msg: None):
        with deferred_interrupt():
            value = 1
        assert value == 1


def test_an_error_inside_the_section_is_not_replaced_by_the_pending_ctrl_c():
    with pytest.raises(Interrupted), graceful_interrupt("resume", lambda _msg: None):
        with pytest.raises(OSError, match="disk full"), deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            raise OSError("disk full")
        # the Ctrl-C is still pending: the next section end (or the handler's second hit) delivers it
        with deferred_interrupt():
            pass


def test_other_threads_never_defer():
    seen = []

    def worker():
        with deferred_interrupt():
            seen.append(threading.current_thread() is threading.main_thread())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [False]


def test_a_first_ctrl_c_that_a_finalizer_swallows_is_raised_again_after_it(capsys):
    """Found in CI: the first Ctrl-C landed inside a weakref callback (the garbage collector runs them
    between any two bytecodes), Python printed its KeyboardInterrupt as "Exception ignored" and
    `poke train classify` trained on. The block now raises it again once the callback is over, still as
    the first Ctrl-C (a second would quit the process at once)."""
    import time
    import weakref

    class Thing:
        pass

    def callback(_ref) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100_000):  # the handler runs at one of these bytecodes, inside the callback
            pass

    said: list[str] = []
    steps = []
    with pytest.raises(Interrupted), graceful_interrupt("resume", said.append):
        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing  # the callback runs here, and its KeyboardInterrupt cannot leave it
        for step in range(500):  # the training loop goes on ...
            steps.append(step)
            time.sleep(0.01)
        pytest.fail("the swallowed Ctrl-C was never raised again")
    assert ref() is None and 0 < len(steps) < 500  # ... until the signal comes again
    assert len(said) == 1 and "stopping" in said[0]  # one stop, said once
    assert "Exception ignored" not in capsys.readouterr().err
