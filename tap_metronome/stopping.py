"""Stopping on SIGTERM or SIGINT at a point where the output is whole.

The SDK's own handler writes a STATE message and exits 0 from inside the signal
handler. Python runs a handler between any two bytecodes of the main thread, so
when the signal came while a block of records was being written, the block was
written twice, one RECORD could land inside another, and a scheduler saw
success. Here the handler only notes the signal and writes one byte to a pipe;
a watcher thread, outside signal context (where taking a lock the interrupted
main thread holds would deadlock), marks each `StopRequest` and runs its
callbacks, which cancel requests in flight. Streams call `check()` at safe
points (between pages, plans and customers), the last bookmarks are written
after the records they cover, and the command line exits 128 + the signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType

from tap_metronome.errors import InterruptedBeforeSync, SyncInterrupted

_received: int | None = None
#: While the inputs are read (`reading_inputs`), a signal ends the run at once.
_reading_inputs = False
_requests: weakref.WeakSet[StopRequest] = weakref.WeakSet()
_pipe: tuple[int, int] | None = None
_setup = threading.Lock()


def received() -> int | None:
    """The first termination signal this process received, if any."""
    return _received


def notify(signum: int) -> None:
    """Note a signal; safe in a signal handler (no lock, no blocking write).

    While the inputs are read, the first signal also raises
    `InterruptedBeforeSync`, which ends a wait that would never return (a FIFO
    nobody writes): nothing has been written yet, so there is no safe point to
    reach. Later signals are only noted, so the failure is reported in peace.
    """
    global _received, _reading_inputs
    if _received is None:
        _received = signum
    if _pipe is not None:
        with contextlib.suppress(OSError):
            os.write(_pipe[1], b"\0")
    if _reading_inputs:
        _reading_inputs = False
        raise InterruptedBeforeSync(signum)


def _record(signum: int, frame: FrameType | None) -> None:
    notify(signum)


def catch_early() -> None:
    """Note SIGTERM/SIGINT that arrive before the tap installs its handler."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _record)
        signal.signal(signal.SIGINT, _record)


def reading_inputs() -> None:
    """From now until `inputs_read()`, SIGTERM or SIGINT ends the run at once.

    Opening or reading `--config`, `--state` or `--catalog` can block for ever
    (a FIFO with no writer); a handler that only notes the signal would leave
    the process waiting. Raises at once if a signal already came.
    """
    global _reading_inputs
    catch_early()
    _reading_inputs = True
    if _received is not None:
        _reading_inputs = False
        raise InterruptedBeforeSync(_received)


def inputs_read() -> None:
    """The inputs are read: signals again stop the sync at its next safe point."""
    global _reading_inputs
    _reading_inputs = False


def _watch(read_fd: int) -> None:
    while os.read(read_fd, 1):
        signum = _received
        if signum is not None:
            for request in list(_requests):
                request.request(signum)


def _start_watcher() -> None:
    global _pipe
    with _setup:
        if _pipe is not None:
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        _pipe = (read_fd, write_fd)
        threading.Thread(
            target=_watch, args=(read_fd,), name="stop-watcher", daemon=True
        ).start()


class StopRequest:
    """A stop asked for by a signal, seen by the streams at their safe points."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._lock = threading.Lock()
        self._on_stop: list[Callable[[], None]] = []
        _start_watcher()
        _requests.add(self)
        if _received is not None:  # a signal came before this run could listen
            self.request(_received)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call `callback` when a stop is requested (at once if it already was)."""
        with self._lock:
            self._on_stop.append(callback)
            stopped = self.signum is not None
        if stopped:
            callback()

    def request(self, signum: int) -> None:
        """Ask the sync to stop at its next safe point (idempotent; not in a handler)."""
        with self._lock:
            if self.signum is not None:
                return
            self.signum = signum
            callbacks = list(self._on_stop)
        for callback in callbacks:
            callback()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    def check(self) -> None:
        """Raise `SyncInterrupted` if a stop was asked for."""
        signum = self.signum
        if signum is not None:
            raise SyncInterrupted(signum)
