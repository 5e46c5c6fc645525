"""Stopping on SIGTERM or SIGINT at a point where the output is whole.

The SDK's own handler writes a STATE message and exits 0 from inside the signal
handler. Python runs a handler between any two bytecodes of the main thread, so
when the signal came while a block of records was being written, the block was
written twice, one RECORD could land inside another, and a scheduler saw
success. Here the handler only records the signal and cancels requests in
flight; streams call `check()` at safe points (between pages, plans and
customers), the last bookmarks are written after the records they cover, and
the command line exits 128 + the signal number.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from tap_metronome.errors import SyncInterrupted

_received: int | None = None


def received() -> int | None:
    """The first termination signal this process received, if any."""
    return _received


def _record(signum: int, frame: FrameType | None) -> None:
    global _received
    _received = _received or signum


def catch_early() -> None:
    """Record SIGTERM/SIGINT that arrive before the tap installs its handler."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _record)
        signal.signal(signal.SIGINT, _record)


class StopRequest:
    """A stop asked for by a signal; safe to set from a signal handler."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._event = threading.Event()
        self._on_stop: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call `callback` (once) when a stop is requested."""
        self._on_stop.append(callback)
        if self._event.is_set():
            callback()

    def request(self, signum: int) -> None:
        """Ask the sync to stop at its next safe point (idempotent)."""
        global _received
        if self._event.is_set():
            return
        self.signum = signum
        _received = _received or signum
        self._event.set()
        for callback in self._on_stop:
            callback()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise `SyncInterrupted` if a stop was asked for."""
        if self.signum is not None:
            raise SyncInterrupted(self.signum)
