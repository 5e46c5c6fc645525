"""Airbyte protocol messages as plain dicts, one JSON line each, numbers exact.

Only what the source sends is built here. Field names follow the protocol
(`airbyte_protocol.yaml`); `tests/airbyte/protocol.json` checks every line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from singer_sdk.contrib.msgspec import enc_hook

from tap_metronome.failures import Kind as FailureType

Status = Literal["STARTED", "RUNNING", "COMPLETE", "INCOMPLETE"]

#: Decimal is written as a JSON number with every digit (never a float, never a string).
_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook, decimal_format="number")


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as one line of JSON."""
    return _ENCODER.encode(message) + b"\n"


def now_ms() -> int:
    """Milliseconds since the epoch, as `emitted_at` is written."""
    return time.time_ns() // 1_000_000


def record(stream: str, data: Mapping[str, Any], emitted_at: int) -> dict[str, Any]:
    """A RECORD of `stream`."""
    return {
        "type": "RECORD",
        "record": {"stream": stream, "data": data, "emitted_at": emitted_at},
    }


def stream_state(stream: str, blob: Mapping[str, Any]) -> dict[str, Any]:
    """A per-stream STATE whose blob is the Singer state of that stream."""
    return {
        "type": "STATE",
        "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": stream}, "stream_state": blob},
        },
    }


def stream_status(stream: str, status: Status) -> dict[str, Any]:
    """A STREAM_STATUS trace."""
    return {
        "type": "TRACE",
        "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": now_ms(),
            "stream_status": {"stream_descriptor": {"name": stream}, "status": status},
        },
    }


def error_trace(
    message: str, failure_type: FailureType, internal: str | None = None
) -> dict[str, Any]:
    """An ERROR trace: what the person must act on, and its kind."""
    error: dict[str, Any] = {"message": message, "failure_type": failure_type}
    if internal:
        error["internal_message"] = internal
    return {
        "type": "TRACE",
        "trace": {"type": "ERROR", "emitted_at": now_ms(), "error": error},
    }


def connection_status(message: str | None = None) -> dict[str, Any]:
    """SUCCEEDED, or FAILED with the one-line reason."""
    status: dict[str, Any] = {"status": "SUCCEEDED" if message is None else "FAILED"}
    if message is not None:
        status["message"] = message
    return {"type": "CONNECTION_STATUS", "connectionStatus": status}


def spec(connection_specification: Mapping[str, Any], url: str) -> dict[str, Any]:
    """The SPEC message."""
    return {
        "type": "SPEC",
        "spec": {
            "documentationUrl": url,
            "connectionSpecification": connection_specification,
        },
    }


def catalog(streams: list[dict[str, Any]]) -> dict[str, Any]:
    """The CATALOG message."""
    return {"type": "CATALOG", "catalog": {"streams": streams}}
