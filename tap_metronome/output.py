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
"""

from __future__ import annotations

import atexit
import contextlib
import sys
from collections.abc import Mapping
from typing import Any

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib.encoding.simple import Message, RecordMessage

from tap_metronome.errors import MetronomeError, one_line

BLOCK_BYTES = 1 << 16


class OutputError(MetronomeError):
    """stdout cannot take more output."""


class BufferedRecordWriter(MsgSpecWriter):
    """Writes Singer messages to stdout, RECORDs in blocks, others at once."""

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
            out = sys.stdout.buffer
            while self._pending:
                written = out.write(self._pending)
                del self._pending[: len(self._pending) if written is None else written]
            sys.stdout.flush()
        except (OSError, ValueError, AttributeError) as exc:
            # The reader is gone, the disk is full, or there is no stdout: nothing
            # more can reach the target. Not an OSError, so that click does not
            # turn a closed pipe into a silent exit 1.
            self._broken = True
            self._pending.clear()
            reason = (
                "the target stopped reading"
                if isinstance(exc, BrokenPipeError)
                else one_line(exc, 120)
            )
            msg = f"stdout: cannot write Singer messages ({reason}); the run stopped"
            raise OutputError(msg) from None
