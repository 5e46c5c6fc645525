"""Singer output: exact JSON numbers, records written in blocks.

The SDK's msgspec writer writes and flushes stdout once per message. With
PYTHONUNBUFFERED (common in containers and schedulers) that is one write
syscall per record, and with worker threads each syscall hands the GIL away.
RECORD messages are collected and written in blocks of about 64 KB instead; any
other message (SCHEMA, STATE, ...) first writes the collected records and then
itself, so a STATE never reaches the target before the records it covers, and a
crash can only lose records that no STATE covers yet (re-read from that STATE
on the next run).
"""

from __future__ import annotations

import atexit
import sys

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib.encoding.simple import Message, RecordMessage

BLOCK_BYTES = 1 << 16


class BufferedRecordWriter(MsgSpecWriter):
    """Writes Singer messages to stdout, RECORDs in blocks, others at once."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        atexit.register(self.flush)  # records of a failed run still reach stdout

    def write_message(self, message: Message) -> None:
        """Queue one message; write out on non-RECORD messages or a full block."""
        self._pending += self.format_message(message)
        if not isinstance(message, RecordMessage) or len(self._pending) >= BLOCK_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write every queued message to stdout, completely."""
        out = sys.stdout.buffer
        view = memoryview(self._pending)
        while view:
            written = out.write(view)
            view = view[written if written is not None else len(view) :]
        view.release()
        self._pending.clear()
        sys.stdout.flush()
