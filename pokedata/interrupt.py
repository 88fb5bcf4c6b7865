"""Ctrl-C for every long command (fetch, clean, train): the first stops cleanly, a second quits at once.

:func:`graceful_interrupt` wraps a command (the CLI wraps each one). While it is active:

- the first SIGINT prints that poke is stopping and raises :class:`KeyboardInterrupt` in the main thread.
  The command unwinds through its own cleanup: a fetch stops scheduling, cuts the downloads in flight
  (their sockets are shut down, so nothing waits on a slow server) and records every file already
  stored; clean stops its workers and keeps every chunk already recorded; training keeps its last
  checkpoint. Then the block prints how to resume and ends with :class:`Interrupted` (exit code 130);
- a second SIGINT exits at once (``os._exit(130)``): nothing is lost that a ``kill -9`` would not lose,
  and every stage resumes after a kill.

A first SIGINT that lands while the main thread runs a finalizer (a weakref callback, a ``__del__``: the
garbage collector runs them between any two bytecodes) raises its KeyboardInterrupt there, and Python
only prints it ("Exception ignored in ...") and carries on. Found in CI: `poke train classify` went on
training after the "stopping" message. While the block is active, ``sys.unraisablehook`` catches that
case and sends the signal again a moment later, when the finalizer is over; the handler raises it as the
same first Ctrl-C (not a second one, which would quit at once).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

EXIT_CODE = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class Interrupted(Exception):
    """A command stopped by Ctrl-C after cleaning up; ``resume`` is the command line that continues it."""

    exit_code = EXIT_CODE

    def __init__(self, resume: str):
        super().__init__(f"interrupted; resume with: {resume}")
        self.resume = resume


@contextlib.contextmanager
def graceful_interrupt(resume: str, say: Callable[[str], None]) -> Iterator[None]:
    """Handle Ctrl-C inside the block as described in the module docstring (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hits = [0]
    redeliver = threading.Event()  # set just before the signal is sent again (see the module docstring)

    def handler(signum: int, frame: object) -> None:
        again = redeliver.is_set()  # the first Ctrl-C again, after a finalizer swallowed it
        redeliver.clear()
        hits[0] += 0 if again else 1
        if hits[0] == 1:
            if not again:
                say("stopping: finishing what is done and saving it (press Ctrl-C again to quit at once)")
            if _deferred.depth:
                _deferred.pending = True  # raised when the critical section ends
                return
            raise KeyboardInterrupt
        with contextlib.suppress(OSError):
            os.write(2, b"\npoke: second Ctrl-C, quitting at once (rerun the command to resume)\n")
        os._exit(EXIT_CODE)

    previous_hook, active = sys.unraisablehook, [True]

    def send_again() -> None:
        if active[0]:  # the block has not ended meanwhile (then the signal would reach Python's own handler)
            redeliver.set()
            os.kill(os.getpid(), signal.SIGINT)

    def unraisable(info) -> None:
        if info.exc_type is KeyboardInterrupt and hits[0] == 1:
            # a finalizer ate the first Ctrl-C's KeyboardInterrupt: raise it again once it is over (and
            # print no "Exception ignored" traceback: the Ctrl-C is not lost)
            threading.Timer(0.05, send_again).start()
        else:
            previous_hook(info)

    previous = signal.signal(signal.SIGINT, handler)
    sys.unraisablehook = unraisable
    _deferred.pending = False
    try:
        yield
    except KeyboardInterrupt:
        # From here on a Ctrl-C quits at once; the cleanup of the block is done.
        raise Interrupted(resume) from None
    finally:
        active[0] = False
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, previous)


class _Deferred:
    """Main-thread state of :func:`deferred_interrupt` (signal handlers run in the main thread only)."""

    depth = 0
    pending = False


_deferred = _Deferred()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Let the block finish before a first Ctrl-C stops the command (see the module docstring).

    Only the main thread defers (the others never receive signals); a second Ctrl-C still quits at once,
    which leaves the previous file in place (writes are atomic). Outside :func:`graceful_interrupt` the
    block is unaffected: Python's own SIGINT handler raises at once, as it always did.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferred.depth += 1
    try:
        yield
    finally:
        _deferred.depth -= 1
    if _deferred.depth == 0 and _deferred.pending:
        _deferred.pending = False
        raise KeyboardInterrupt
