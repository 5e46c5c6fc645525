"""Flattening (`flattening_enabled`) keeps every value of every stream's records.

singer-sdk 0.54.9 stops on a record key named like a schema keyword (a balances
item's `description`); `tap_metronome.flattening` is the tap's guard. Records
here carry every property of their stream's schema at every level, and keys
named after schema keywords at every level, and go through the stream maps the
tap builds from its settings: what a sync calls right after the SDK's conformance
(which drops keys outside the schema, except in customer_costs and in maps such as
`custom_fields`; here every key reaches flattening). The syncs at the end run the
tap against the fake API.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from singer_sdk.helpers._flattening import flatten_key
from singer_sdk.mapper import PluginMapper

from tap_metronome.flattening import (
    FLATTENED_KEY_LENGTH,
    PropertiesFlattening,
    flattening_config,
)
from tap_metronome.streams import STREAM_NAMES
from tap_metronome.tap import TapMetronome
from tests.conftest import catalog_selecting, run_tap, tap_config
from tests.fake_metronome import FakeData

STREAMS = tuple(sorted(STREAM_NAMES))
#: Keys added to every object of a record (when it has no property of that name).
KEYWORDS = (
    "description",
    "title",
    "type",
    "properties",
    "items",
    "required",
    "format",
    "additionalProperties",
)
#: What a keyword key holds: text with "type" in it, which the SDK's check
#: (`"type" in schema[key]`) finds in a string.
KEYWORD_VALUE = "a type of thing"
SEPARATOR = "__"


def flattening_tap(depth: int, **settings: Any) -> TapMetronome:
    return TapMetronome(
        config={
            "auth_token": "token",
            "start_date": "2024-01-01",
            "flattening_enabled": True,
            "flattening_max_depth": depth,
            **settings,
        }
    )


@pytest.fixture(scope="module")
def taps() -> dict[int, TapMetronome]:
    return {depth: flattening_tap(depth) for depth in (1, 3)}


def example(schema: dict[str, Any], path: str) -> Any:
    """A value of `schema` with every property (arrays: one element), plus keyword keys."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "object" in types or "properties" in schema:
        return example_object(schema, path)
    if "array" in types:
        return [example(schema.get("items", {}), f"{path}[]")]
    if "string" in types:
        return {
            "uuid": "5c0a3f2e-8d1b-4c6e-9f7a-1b2c3d4e5f60",
            "date-time": "2024-06-01T00:00:00Z",
            "date": "2024-06-01",
        }.get(schema.get("format", ""), f"{path}: a type")
    if "integer" in types:
        return 7
    if "number" in types:
        return Decimal("12345678901234.56")
    if "boolean" in types:
        return True
    return f"{path}: untyped"


def example_object(schema: dict[str, Any], path: str) -> dict[str, Any]:
    properties = schema.get("properties", {})
    value = {name: example(sub, f"{path}.{name}") for name, sub in properties.items()}
    extra = schema.get("additionalProperties")
    if not properties and isinstance(extra, dict):  # a map such as custom_fields
        value["some_key"] = example(extra, f"{path}.some_key")
    for keyword in KEYWORDS:
        if keyword not in value:
            value[keyword] = (
                example(extra, f"{path}.{keyword}")
                if isinstance(extra, dict)
                else KEYWORD_VALUE
            )
    return value


def leaves(
    node: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of each value that is not a non-empty object."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    else:
        yield path, node


def flattened_value(flat: dict[str, Any], path: tuple[str, ...], depth: int) -> Any:
    """The value at `path` in the flattened record: under its own key, or inside
    the JSON text of an ancestor (objects past `depth` levels, arrays)."""
    for length in range(1, min(len(path), depth + 1) + 1):
        # The SDK's name, shortened as the tap asks (`FLATTENED_KEY_LENGTH`).
        key = flatten_key(
            path[length - 1],
            list(path[: length - 1]),
            SEPARATOR,
            max_key_length=FLATTENED_KEY_LENGTH,
        )
        if key in flat:
            held = flat[key]
            if length == len(path) and not isinstance(held, str):
                return held
            if isinstance(held, str) and (length < len(path) or held[:1] in "[{"):
                held = json.loads(held, parse_float=Decimal)
            for part in path[length:]:
                assert isinstance(held, dict), f"{'.'.join(path)}: {held!r} at {part}"
                assert part in held, f"{'.'.join(path)} is not in {key}"
                held = held[part]
            return held
    msg = f"{'.'.join(path)} is not in the flattened record"
    raise AssertionError(msg)


def check_maps(stream_maps: list[Any], record: dict[str, Any], depth: int) -> int:
    """Flatten `record` through each stream map and check it; values checked."""
    checked = 0
    for stream_map in stream_maps:
        flat = stream_map.transform(copy.deepcopy(record))
        assert flat is not None
        Draft202012Validator(stream_map.transformed_schema).validate(flat)
        for key, value in flat.items():
            assert not isinstance(value, dict | list), key
        for path, value in leaves(record):
            assert flattened_value(flat, path, depth) == value, path
            checked += 1
    return checked


def full_record(schema: dict[str, Any], stream_name: str) -> dict[str, Any]:
    record = example_object(schema, stream_name)
    Draft202012Validator(schema).validate(record)  # the example is valid
    return record


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("stream_name", STREAMS)
def test_flattening_keeps_every_value_of_every_stream(taps, stream_name, depth):
    stream = taps[depth].streams[stream_name]
    record = full_record(stream.schema, stream_name)
    assert check_maps(stream.stream_maps, record, depth) > len(KEYWORDS)
    stream_map = stream.stream_maps[0]
    assert stream_map.flattening_enabled
    assert isinstance(stream_map, PropertiesFlattening)


@pytest.mark.parametrize("stream_name", STREAMS)
def test_flattening_does_not_depend_on_the_schema_wording(taps, stream_name):
    """Today only some schemas say "type" in their description or title (which the
    SDK's lookup of a `description` or `title` key trips on); any may tomorrow."""
    tap = taps[1]
    stream = tap.streams[stream_name]
    schema = {**stream.schema, "title": "type", "description": "Any type of item."}
    mapper = type(tap.mapper)(
        plugin_config=flattening_config(dict(tap.config)), logger=tap.logger
    )
    mapper.register_raw_stream_schema(stream_name, schema, stream.primary_keys)
    record = full_record(schema, stream_name)
    assert check_maps(mapper.stream_maps[stream_name], record, 1) > len(KEYWORDS)


def test_keyword_keys_reach_flattening_at_the_top_and_nested(taps):
    """The records above do carry the keys that crashed the SDK, where it looks."""
    record = example_object(taps[1].streams["balances"].schema, "balances")
    assert record["description"] == "balances.description: a type"
    assert record["title"] == KEYWORD_VALUE
    assert record["contract"]["description"] == KEYWORD_VALUE
    assert record["contract"]["properties"] == KEYWORD_VALUE
    flat = taps[1].streams["balances"].stream_maps[0].transform(record)
    assert flat["description"] == "balances.description: a type"
    assert flat["contract__description"] == KEYWORD_VALUE
    assert json.loads(flat["access_schedule__credit_type"])["title"] == KEYWORD_VALUE


def test_stream_maps_and_flattening_together():
    """`stream_maps` (the SDK's CustomStreamMap, and an alias) flatten the same way."""
    tap = flattening_tap(
        1,
        stream_maps={
            "balances": {"name": "md5(name)"},
            "balances_copy": {"__source__": "balances"},
        },
    )
    stream_maps = tap.streams["balances"].stream_maps
    assert [m.stream_alias for m in stream_maps] == ["balances", "balances_copy"]
    record = example_object(tap.streams["balances"].schema, "balances")
    mapped, copied = (m.transform(copy.deepcopy(record)) for m in stream_maps)
    assert mapped is not None
    assert copied is not None
    for stream_map, flat in zip(stream_maps, (mapped, copied), strict=True):
        Draft202012Validator(stream_map.transformed_schema).validate(flat)
    assert mapped["description"] == copied["description"] == record["description"]
    assert mapped["contract__description"] == KEYWORD_VALUE
    assert len(mapped["name"]) == 32
    assert copied["name"] == record["name"]
    assert all(isinstance(m, PropertiesFlattening) for m in stream_maps)


def test_the_sdk_mapper_alone_still_crashes():
    """The bug the guard is for; when this fails, the SDK is fixed: drop the guard."""
    tap = flattening_tap(1)
    mapper = PluginMapper(plugin_config=dict(tap.config), logger=tap.logger)
    mapper.register_raw_streams_from_catalog(tap.catalog)
    stream_map = mapper.stream_maps["balances"][0]
    with pytest.raises(TypeError, match="string indices must be integers"):
        stream_map.transform({"id": "x", "description": "a commit"})


def with_keyword_keys(path: str, body: Any) -> Any:
    """A `tamper` that gives every listed item a `description` (and a `title`)."""
    for item in body.get("data", []) if isinstance(body, dict) else []:
        if isinstance(item, dict):
            item["description"] = f"{path}: a commit of type PREPAID"
            item.setdefault("title", "a type")
    return body


@pytest.mark.parametrize("depth", [1, 3])
def test_a_flattened_sync_of_every_stream(fake_api, tmp_path, depth):
    """A real sync with flattening on: exit 0, every RECORD valid against its SCHEMA."""
    server = fake_api(
        FakeData.generate(customers=4, archived=1, plans=2), tamper=with_keyword_keys
    )
    config = tap_config(server, flattening_enabled=True, flattening_max_depth=depth)
    run = run_tap(config, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    validators: dict[str, Draft202012Validator] = {}
    counts = dict.fromkeys(STREAMS, 0)
    for message in run.messages:
        if message["type"] == "SCHEMA":
            validators[message["stream"]] = Draft202012Validator(message["schema"])
        elif message["type"] == "RECORD":
            record = message["record"]
            validators[message["stream"]].validate(record)
            assert not any(isinstance(v, dict | list) for v in record.values())
            counts[message["stream"]] += 1
    assert all(counts.values()), counts
    balances = run.records("balances")
    assert {r["description"] for r in balances} == {
        "/v1/contracts/customerBalances/list: a commit of type PREPAID"
    }
    # Contract-level commits carry their contract's id under its flattened key.
    assert any("contract__id" in r for r in balances)
    assert not any("contract" in r for r in balances)


def test_a_flattened_sync_of_balances_alone(fake_api, tmp_path):
    """The run of issue 22: balances selected alone, depth 1, items with `description`."""
    server = fake_api(
        FakeData.generate(customers=3, archived=0, plans=1), tamper=with_keyword_keys
    )
    config = tap_config(server, flattening_enabled=True, flattening_max_depth=1)
    catalog = catalog_selecting(config, tmp_path, {"balances"})
    run = run_tap(config, tmp_path, catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.records("balances")
    assert all("description" in r for r in run.records("balances"))


@pytest.mark.parametrize("depth", [1, 3])
def test_unexpected_values_stay_one_declared_column(taps, depth):
    # The column's pointers are not spread into columns no schema declares
    # (`_unexpected_values__/name`): it is kept, as JSON text.
    stream_map = taps[depth].streams["customers"].stream_maps[0]
    record = {"id": "c1", "name": None, "_unexpected_values": {"/name": 5}}
    flat = stream_map.transform(record)
    assert flat["_unexpected_values"] == '{"/name":5}'
    schema = stream_map.transformed_schema
    assert schema["properties"]["_unexpected_values"]["type"] == ["string", "null"]
    assert set(flat) <= set(schema["properties"])
