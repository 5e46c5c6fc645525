"""Singer messages in, Airbyte messages out, in the order the tap wrote them.

The tap writes through the SDK's message writer; this one keeps the tap's
block-buffered output (`output.BufferedRecordWriter`: a STATE never reaches
stdout before the records it covers) and only changes what each message
becomes:

- SCHEMA: the stream's STARTED status (a stream's sync begins with its SCHEMA).
- RECORD: an Airbyte RECORD, `emitted_at` in milliseconds, numbers exact; the
  stream's first record is preceded by its RUNNING status.
- STATE: the Singer state holds every stream's bookmarks; each stream whose
  blob changed since it was last sent becomes one per-stream (`STREAM`) STATE,
  so Airbyte checkpoints exactly where Singer mode does.
- a stream's end (`end_stream`, called by the stream after the SDK finalized
  it): that stream's final STATE and its COMPLETE status.
- ACTIVATE_VERSION and BATCH have no Airbyte counterpart and are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from singer_sdk.singerlib.encoding.simple import (
    Message,
    RecordMessage,
    SchemaMessage,
    StateMessage,
)

from tap_metronome.airbyte import messages
from tap_metronome.airbyte.messages import Status
from tap_metronome.output import BufferedRecordWriter


class AirbyteWriter(BufferedRecordWriter):
    """Writes the tap's output as Airbyte messages for the configured streams."""

    what = "Airbyte messages"

    def __init__(
        self, streams: Iterable[str], state: Mapping[str, Mapping[str, Any]]
    ) -> None:
        super().__init__()
        self.streams = list(streams)
        #: The last state blob sent per stream (the input state counts as sent).
        self._sent = {name: messages.encode(blob) for name, blob in state.items()}
        #: Streams with a STATE written in this run.
        self._checkpointed: set[str] = set()
        self.status: dict[str, Status] = {}

    def format_message(self, message: Message) -> bytes:  # type: ignore[override]
        """The Airbyte lines for one Singer message (maybe none)."""
        if isinstance(message, RecordMessage):
            out = b""
            if self.status.get(message.stream) != "RUNNING":
                out = self._status(message.stream, "RUNNING")
            return out + messages.encode(
                messages.record(message.stream, message.record, messages.now_ms())
            )
        if isinstance(message, SchemaMessage):
            return self._status(message.stream, "STARTED")
        if isinstance(message, StateMessage):
            bookmarks = message.value.get("bookmarks") or {}
            return b"".join(
                self._state(name, bookmarks[name])
                for name in self.streams
                if name in bookmarks
            )
        return b""

    def end_stream(self, stream: str, state: Mapping[str, Any]) -> None:
        """The stream's final state (unless just sent), then COMPLETE."""
        if stream in self.streams:
            if stream not in self._checkpointed:
                self._sent.pop(stream, None)
            self.emit(self._state(stream, state) + self._status(stream, "COMPLETE"))

    def finish(self, *, failed: bool) -> None:
        """Close every configured stream: COMPLETE, or INCOMPLETE after a failure.

        A stream the run never reached is INCOMPLETE when it failed; when it
        succeeded, the stream had nothing to sync and is complete.
        """
        out = b""
        for name in self.streams:
            if self.status.get(name) == "COMPLETE":
                continue
            if name not in self.status:
                out += self._status(name, "STARTED")
            out += self._status(name, "INCOMPLETE" if failed else "COMPLETE")
        self.emit(out)

    def emit(self, lines: bytes) -> None:
        """Write lines now, after every record queued before them."""
        self._pending += lines
        self.flush()

    def _state(self, stream: str, blob: Mapping[str, Any]) -> bytes:
        encoded = messages.encode(blob)
        if self._sent.get(stream) == encoded:
            return b""
        self._sent[stream] = encoded
        self._checkpointed.add(stream)
        return messages.encode(messages.stream_state(stream, blob))

    def _status(self, stream: str, status: Status) -> bytes:
        self.status[stream] = status
        return messages.encode(messages.stream_status(stream, status))
