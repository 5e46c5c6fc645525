"""Singer output: exact JSON numbers, records written in blocks.

The SDK's msgspec writer writes and flushes stdout once per message. With
PYTHONUNBUFFERED (common in containers and schedulers) that is one write
syscall per record, and with worker threads each syscall hands the GIL away.
RECORD messages are collected and written in blocks of about 64 KB instead; any
other message (SCHEMA, STATE, ...) first writes the collected records and then
itself, so a STATE never reaches the target before the records it covers, and a
crash can only lose records that no STATE covers yet (re-read from that STATE
on the next run).

Bytes leave the queue as they are written, so a flush that fails half-way (the
target closed the pipe) never writes a block again, and nothing is written
from a signal handler (see `stopping`), so blocks never interleave.

Every command writes stdout through `drain` (`write_stdout` for one piece of
output): the Singer sync, `--discover`, `--about` and `--version`, and each
`source-metronome` command. A stdout that cannot take it (closed, a full disk,
a reader that is gone) is one `OutputError`, exit 2, with the same line.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import sys
from collections.abc import Mapping
from typing import Any

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib.encoding.simple import Message, RecordMessage

from tap_metronome.errors import MetronomeError, one_line

BLOCK_BYTES = 1 << 16


class OutputError(MetronomeError):
    """stdout cannot take more output."""


def write_stdout(data: bytes, what: str) -> None:
    """Write `data` to stdout now, whole; `what` names it if stdout cannot take it."""
    drain(bytearray(data), what)


def drain(pending: bytearray, what: str) -> None:
    """Write `pending` to stdout, removing each byte as it is written, and flush.

    Raises OutputError, not OSError: click turns a closed pipe into a silent
    exit 1, and any other OSError would look like a bug. stdout is then pointed
    at /dev/null, so that the interpreter's last flush of what it still holds
    prints no "Exception ignored".
    """
    try:
        out = sys.stdout.buffer
        while pending:
            written = out.write(pending)
            del pending[: len(pending) if written is None else written]
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError) as exc:
        pending.clear()
        _detach_stdout()
        msg = f"stdout: cannot write {what} ({_reason(exc)}); the run stopped"
        raise OutputError(msg) from None


def _reason(exc: BaseException) -> str:
    """Why stdout failed, in words: the reader, the disk, or no stdout at all."""
    if isinstance(exc, BrokenPipeError):
        return "the target stopped reading"
    if sys.stdout is None or isinstance(exc, ValueError):  # `>&-`, or closed here
        return "stdout is closed"
    if isinstance(exc, OSError) and exc.errno == errno.EBADF:
        return "stdout is closed"
    if isinstance(exc, OSError) and exc.strerror:
        return one_line(exc.strerror, 120)
    return one_line(f"{type(exc).__name__}: {exc}", 120)


def _detach_stdout() -> None:
    """Point stdout's descriptor at /dev/null; no descriptor (`>&-`) is left alone.

    With no stdout at start-up, descriptor 1 may since have been given to a file
    or socket of the run, which must not be replaced.
    """
    if sys.stdout is None:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        descriptor = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, descriptor)
        finally:
            os.close(devnull)


class BufferedRecordWriter(MsgSpecWriter):
    """Writes Singer messages to stdout, RECORDs in blocks, others at once."""

    #: What the messages are, for the line when stdout cannot take them.
    what = "Singer messages"

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        self._broken = False
        atexit.register(
            self._flush_at_exit
        )  # records of a failed run still reach stdout

    def _flush_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.flush()

    def write_message(self, message: Message) -> None:
        """Queue one message; write out on non-RECORD messages or a full block."""
        self._pending += self.format_message(message)
        if not isinstance(message, RecordMessage) or len(self._pending) >= BLOCK_BYTES:
            self.flush()

    def end_stream(self, stream: str, state: Mapping[str, Any]) -> None:
        """A stream's sync ended with this state: nothing to write in Singer."""

    def flush(self) -> None:
        """Write every queued message to stdout, completely, each byte once."""
        if self._broken:
            self._pending.clear()
            return
        try:
            drain(self._pending, self.what)
        except OutputError:
            self._broken = True
            raise
