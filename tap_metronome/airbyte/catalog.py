"""What the source offers (spec, catalog) and what a read is asked for (catalog, state).

The spec is the tap's settings schema; the catalog is the tap's streams, their
schemas and keys. A configured catalog and an Airbyte state are read here into
the Singer catalog and state the tap runs with, and anything unusable is one
`InputError` naming `--catalog` or `--state`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL

from tap_metronome.errors import InputError, one_line
from tap_metronome.inputs import read_json
from tap_metronome.settings import SETTING_NAMES
from tap_metronome.tap import TapMetronome

DOCS_URL = (
    "https://github.com/tap-metronome/tap-metronome#use-with-airbyte-or-pyairbyte"
)
SYNC_MODES = ("full_refresh", "incremental")


def connection_specification() -> dict[str, Any]:
    """The tap's settings schema, with the token marked secret the Airbyte way."""
    schema = copy.deepcopy(TapMetronome.config_jsonschema)
    # Only the tap's own settings: the SDK adds its Singer-only ones (stream maps,
    # flattening) to this class attribute once a tap has been built.
    properties = {
        name: value
        for name, value in schema["properties"].items()
        if name in SETTING_NAMES
    }
    properties["auth_token"]["airbyte_secret"] = True
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Metronome",
        **schema,
        "properties": properties,
    }


def offered_streams(tap: TapMetronome) -> list[dict[str, Any]]:
    """Every stream as an AirbyteStream: schema, primary key, cursor if incremental."""
    offered = []
    for stream in tap.streams.values():
        incremental = stream.replication_method == REPLICATION_INCREMENTAL
        entry: dict[str, Any] = {
            "name": stream.name,
            "json_schema": stream.schema,
            "supported_sync_modes": list(SYNC_MODES[: 2 if incremental else 1]),
            "source_defined_primary_key": [[key] for key in stream.primary_keys or []],
            "is_resumable": incremental,
        }
        if incremental:
            entry["source_defined_cursor"] = True
            entry["default_cursor_field"] = [stream.replication_key]
        offered.append(entry)
    return offered


@dataclass
class ReadRequest:
    """The streams a `read` syncs, in catalog order, and how."""

    #: Stream name -> whether it is read incrementally (from its state).
    streams: dict[str, bool] = field(default_factory=dict)
    #: Lines to log: requests the source adjusted (e.g. incremental on a full-table stream).
    notes: list[str] = field(default_factory=list)


def read_configured_catalog(path: str, incremental: Mapping[str, bool]) -> ReadRequest:
    """The configured catalog at `path`, checked against the streams offered.

    `incremental` is each offered stream's support for incremental reads: asked
    of a full-table stream, it is read in full (noted), as Airbyte expects.
    """
    value = read_json(path, "--catalog")
    entries = value.get("streams") if isinstance(value, dict) else None
    if not isinstance(entries, list):
        msg = "--catalog: must be a configured catalog, an object with a streams list"
        raise InputError(msg)
    request = ReadRequest()
    for position, entry in enumerate(entries):
        where = f"--catalog: streams[{position}]"
        stream = entry.get("stream") if isinstance(entry, dict) else None
        name = stream.get("name") if isinstance(stream, dict) else None
        if not isinstance(name, str):
            msg = f"{where} needs a stream object with a name"
            raise InputError(msg)
        if name not in incremental:
            msg = (
                f"{where}: source-metronome has no stream {one_line(name, 60)} "
                f"(its streams: {', '.join(sorted(incremental))})"
            )
            raise InputError(msg)
        if name in request.streams:
            msg = f"{where}: stream {name} is configured twice"
            raise InputError(msg)
        mode = entry.get("sync_mode")
        if mode not in SYNC_MODES:
            msg = (
                f"{where}: sync_mode must be full_refresh or incremental, not "
                f"{one_line(mode, 40)}"
            )
            raise InputError(msg)
        if mode == "incremental" and not incremental[name]:
            request.notes.append(
                f"{name}: incremental was asked of a full-table stream; it is read in full"
            )
        request.streams[name] = mode == "incremental" and incremental[name]
    return request


def read_state(path: str | None) -> dict[str, dict[str, Any]]:
    """Stream name -> Singer stream state, from an array of per-stream Airbyte states.

    Accepts what PyAirbyte and the platform write (extra keys, nulls included),
    `[]`, and a missing file. LEGACY and GLOBAL states are refused: the source
    never writes them, so they belong to another connector.
    """
    if path is None:
        return {}
    value = read_json(path, "--state")
    if value is None or value == {}:
        return {}
    if not isinstance(value, list):
        msg = "--state: must be a JSON array of per-stream state messages"
        raise InputError(msg)
    state: dict[str, dict[str, Any]] = {}
    for position, message in enumerate(value):
        where = f"--state: [{position}]"
        if not isinstance(message, dict):
            msg = f"{where} must be an object"
            raise InputError(msg)
        kind = message.get("type") or ("STREAM" if "stream" in message else None)
        if kind != "STREAM":
            msg = (
                f"{where} is {one_line(kind, 20)} state; source-metronome reads and "
                "writes per-stream (STREAM) state only"
            )
            raise InputError(msg)
        stream = message.get("stream")
        descriptor = (
            stream.get("stream_descriptor") if isinstance(stream, dict) else None
        )
        name = descriptor.get("name") if isinstance(descriptor, dict) else None
        if not isinstance(name, str):
            msg = f"{where}.stream.stream_descriptor.name must be a string"
            raise InputError(msg)
        blob = stream.get("stream_state") if isinstance(stream, dict) else None
        if blob is None:
            blob = {}
        if not isinstance(blob, dict):
            msg = f"{where}.stream.stream_state must be an object (stream {name})"
            raise InputError(msg)
        state[name] = blob
    return state


def singer_catalog(
    discovered: dict[str, Any], selected: Mapping[str, bool]
) -> dict[str, Any]:
    """The tap's own catalog with exactly the configured streams selected."""
    catalog = copy.deepcopy(discovered)
    for entry in catalog["streams"]:
        for item in entry.get("metadata", []):
            if item.get("breadcrumb") == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in selected
    return catalog
