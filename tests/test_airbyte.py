"""`source-metronome`: the Airbyte protocol, line by line, against the fake API.

Every line of every command is validated against the protocol's JSON Schema
(`tests/airbyte/protocol.json`, from the published protocol models), and a
`read` is compared with Singer mode on the same config and data: the same
records, and the same final state per stream.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import Draft7Validator

from tap_metronome.streams import STREAM_TYPES
from tests import tap_process
from tests.conftest import catalog_selecting, clean_env, run_tap, tap_config
from tests.fake_metronome import FakeData, unexpected_values
from tests.stream_classes import INCREMENTAL

PROTOCOL = Draft7Validator(
    json.loads((Path(__file__).parent / "airbyte" / "protocol.json").read_text())
)
#: The member each message type carries (the schema alone does not tie them).
PAYLOAD = {
    "RECORD": "record",
    "STATE": "state",
    "LOG": "log",
    "SPEC": "spec",
    "CONNECTION_STATUS": "connectionStatus",
    "CATALOG": "catalog",
    "TRACE": "trace",
}
TRACE_PAYLOAD = {"ERROR": "error", "STREAM_STATUS": "stream_status"}
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
ALL_STREAMS = len(STREAM_TYPES)


@dataclass
class SourceRun:
    """One `source-metronome` process: exit code, Airbyte messages, stderr."""

    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"]["data"]
            for m in self.of_type("RECORD")
            if m["record"]["stream"] == stream
        ]

    def states(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.of_type("STATE")]

    def final_states(self) -> dict[str, Any]:
        """Stream -> its last state blob, as the platform would keep them."""
        return {
            s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"]
            for s in self.states()
        }

    def statuses(self, stream: str) -> list[str]:
        return [
            m["trace"]["stream_status"]["status"]
            for m in self.of_type("TRACE")
            if m["trace"]["type"] == "STREAM_STATUS"
            and m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream
        ]

    def errors(self) -> list[dict[str, Any]]:
        return [
            m["trace"]["error"]
            for m in self.of_type("TRACE")
            if m["trace"]["type"] == "ERROR"
        ]


def protocol_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line as a message valid under the protocol schema."""
    out = []
    for number, line in enumerate(stdout.splitlines(), 1):
        message = _DECODER.decode(line)
        errors = [e.message for e in PROTOCOL.iter_errors(json.loads(line))]
        assert not errors, f"line {number} is not an AirbyteMessage: {errors[:3]}"
        assert PAYLOAD[message["type"]] in message, f"line {number}: {line[:200]}"
        if message["type"] == "TRACE":
            assert TRACE_PAYLOAD[message["trace"]["type"]] in message["trace"]
        if message["type"] == "STATE":
            assert message["state"]["type"] == "STREAM", "never LEGACY or GLOBAL"
        out.append(message)
    return out


def run_source(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> SourceRun:
    proc = tap_process.run(
        list(args), cwd=tmp_path, env=clean_env(env), program=tap_process.SOURCE
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return SourceRun(
        proc.returncode, proc.stdout, proc.stderr, protocol_lines(proc.stdout)
    )


def read_source(
    tmp_path: Path, config_path: str, catalog_path: str, state_path: str | None = None
) -> SourceRun:
    """`source-metronome read`, with `--state` when given, to its end."""
    state = () if state_path is None else ("--state", state_path)
    return run_source(
        tmp_path, "read", "--config", config_path, "--catalog", catalog_path, *state
    )


def costs_catalog(tmp_path: Path, config_path: str) -> str:
    """A configured catalog of customer_costs alone, from `discover`."""
    (message,) = run_source(tmp_path, "discover", "--config", config_path).messages
    return write(
        tmp_path, "catalog.json", configured(message["catalog"], {"customer_costs"})
    )


def start_read(
    tmp_path: Path, config_path: str, catalog_path: str
) -> tap_process.TapProcess:
    """`source-metronome read` under way, its stdout a pipe, to be stopped by the test."""
    return tap_process.TapProcess(
        ["read", "--config", config_path, "--catalog", catalog_path],
        cwd=tmp_path,
        env=clean_env(),
        stdout=tap_process.PIPE,
        stderr=tap_process.DEVNULL,
        program=tap_process.SOURCE,
    )


def write(tmp_path: Path, name: str, value: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(value, default=str))
    return str(path)


def configured(
    catalog: dict[str, Any], streams: set[str] | None = None, *, mode: str = "best"
) -> dict[str, Any]:
    """A configured catalog as PyAirbyte writes one: incremental where supported."""
    entries = []
    for stream in catalog["streams"]:
        if streams is not None and stream["name"] not in streams:
            continue
        incremental = "incremental" in stream["supported_sync_modes"]
        sync_mode = (
            mode
            if mode != "best"
            else ("incremental" if incremental else "full_refresh")
        )
        entries.append(
            {
                "stream": stream,
                "sync_mode": sync_mode,
                "destination_sync_mode": "append_dedup",
                "cursor_field": stream.get("default_cursor_field", []),
                "primary_key": stream["source_defined_primary_key"],
                "generation_id": 1,
                "minimum_generation_id": 0,
                "sync_id": 1,
            }
        )
    return {"streams": entries}


def as_pyairbyte_state(run: SourceRun) -> list[dict[str, Any]]:
    """The final per-stream states as PyAirbyte stores them (extra null keys)."""
    return [
        {
            "type": "STREAM",
            "stream": {
                "stream_descriptor": {"name": name, "namespace": None},
                "stream_state": blob,
            },
            "global": None,
            "data": None,
            "sourceStats": None,
            "destinationStats": None,
        }
        for name, blob in run.final_states().items()
    ]


@pytest.fixture
def discovered(fake_api, tmp_path):
    data = FakeData.generate(customers=8, archived=2, plans=3, unsupported_every=5)
    server = fake_api(data)
    config = tap_config(server)
    config_path = write(tmp_path, "config.json", config)
    run = run_source(tmp_path, "discover", "--config", config_path)
    assert run.returncode == 0, run.stderr[-3000:]
    (message,) = run.messages
    return data, server, config, config_path, message["catalog"]


def test_spec_is_the_settings_with_the_token_secret(tmp_path):
    from tap_metronome.settings import SETTING_NAMES

    run = run_source(tmp_path, "spec")
    assert run.returncode == 0
    (message,) = run.messages
    schema = message["spec"]["connectionSpecification"]
    assert schema["properties"]["auth_token"]["airbyte_secret"] is True
    assert set(schema["properties"]) == set(SETTING_NAMES)
    assert "stream_maps" not in schema["properties"], "Singer-only SDK settings"
    assert schema["required"] == ["auth_token", "start_date"]
    Draft7Validator.check_schema(schema)


def test_check_succeeds_with_one_small_request(fake_api, tmp_path):
    server = fake_api(FakeData.generate(customers=3))
    config_path = write(tmp_path, "config.json", tap_config(server))
    server.app.reset_requests()
    run = run_source(tmp_path, "check", "--config", config_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.messages == [
        {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}}
    ]
    assert server.app.requests == [("/v1/customers", {"limit": "1"})]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"auth_token": "wrong-token-abcdef123456"}, "rejected the auth_token"),
        ({"page_size": 500}, "page_size: 500 is not an integer (1..100)"),
        ({"start_date": "01/02/2024"}, "start_date"),
    ],
)
def test_check_fails_with_the_taps_one_line(fake_api, tmp_path, override, needle):
    server = fake_api(FakeData.generate(customers=2))
    config = {**tap_config(server), **override}
    run = run_source(tmp_path, "check", "--config", write(tmp_path, "c.json", config))
    assert run.returncode == 0
    (message,) = run.messages
    status = message["connectionStatus"]
    assert status["status"] == "FAILED"
    assert needle in status["message"]
    assert "\n" not in status["message"]
    assert "wrong-token-abcdef123456" not in run.stdout + run.stderr


def test_discover_offers_every_stream_with_keys_and_cursors(discovered):
    from tap_metronome import streams

    *_, catalog = discovered
    offered = {s["name"]: s for s in catalog["streams"]}
    assert set(offered) == set(streams.STREAM_NAMES)
    assert len(offered) == ALL_STREAMS
    incremental = {n for n, s in offered.items() if s.get("source_defined_cursor")}
    assert incremental == INCREMENTAL
    for name, stream in offered.items():
        assert stream["json_schema"]["type"] == "object"
        assert stream["source_defined_primary_key"], name
        if name in incremental:
            assert stream["supported_sync_modes"] == ["full_refresh", "incremental"]
            assert (
                stream["default_cursor_field"][0] in stream["json_schema"]["properties"]
            )
        else:
            assert stream["supported_sync_modes"] == ["full_refresh"]
            assert "default_cursor_field" not in stream
    assert offered["customer_costs"]["source_defined_primary_key"] == [
        ["customer_id"],
        ["start_timestamp"],
        ["credit_type_id"],
    ]


def _key(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


@pytest.mark.slow
def test_read_equals_singer_mode_and_resumes_incrementally(discovered, tmp_path):
    data, server, config, config_path, catalog = discovered
    catalog_path = write(tmp_path, "catalog.json", configured(catalog))
    server.app.reset_requests()
    read = read_source(tmp_path, config_path, catalog_path)
    assert read.returncode == 0, read.stderr[-3000:]
    airbyte_requests = Counter(path for path, _ in server.app.requests)

    singer_dir = tmp_path / "singer"
    singer_dir.mkdir()
    singer_catalog = catalog_selecting(
        config, singer_dir, {s["name"] for s in catalog["streams"]}
    )
    server.app.reset_requests()
    singer = run_tap(config, singer_dir, catalog=singer_catalog)
    assert singer.returncode == 0, singer.stderr[-3000:]
    assert Counter(path for path, _ in server.app.requests) == airbyte_requests

    for stream in catalog["streams"]:
        name = stream["name"]
        got, want = read.records(name), singer.records(name)
        assert sorted(map(_key, got)) == sorted(map(_key, want)), name
        # STARTED, RUNNING (when it has records), then COMPLETE, once each.
        assert read.statuses(name) == (
            ["STARTED", "RUNNING", "COMPLETE"] if want else ["STARTED", "COMPLETE"]
        ), name
    assert sum(len(read.records(s["name"])) for s in catalog["streams"]) > 300
    # Money: exact decimals, as in Singer mode (a float would differ here).
    costs = [r["cost"] for r in read.records("customer_costs") if r["cost"] is not None]
    assert costs
    assert all(isinstance(c, Decimal | int) for c in costs)
    # emitted_at in milliseconds.
    stamps = [m["record"]["emitted_at"] for m in read.of_type("RECORD")]
    assert all(1_600_000_000_000 < s < 4_000_000_000_000 for s in stamps)

    # The same checkpoints: each change of a stream's Singer state is one STATE.
    for name in {s["name"] for s in catalog["streams"]}:
        changes: list[Any] = []
        for value in singer.states():
            blob = value.get("bookmarks", {}).get(name)
            if blob is not None and (not changes or blob != changes[-1]):
                changes.append(blob)
        sent = [
            m["stream"]["stream_state"]
            for m in read.states()
            if m["stream"]["stream_descriptor"]["name"] == name
        ]
        assert len(sent) == max(len(changes), 1), name

    singer_final = singer.final_state["bookmarks"]
    final = read.final_states()
    assert set(final) == {s["name"] for s in catalog["streams"]}
    for name, blob in final.items():
        assert blob == singer_final.get(name, {}), name
    # Checkpoints: a STATE for a stream appears only after records it covers, and
    # the stream's last STATE comes before its COMPLETE.
    position = {id(m): i for i, m in enumerate(read.messages)}
    for name in final:
        last_state = max(
            position[id(m)]
            for m in read.of_type("STATE")
            if m["state"]["stream"]["stream_descriptor"]["name"] == name
        )
        complete = next(
            position[id(m)]
            for m in read.of_type("TRACE")
            if m["trace"]["type"] == "STREAM_STATUS"
            and m["trace"]["stream_status"]["stream_descriptor"]["name"] == name
            and m["trace"]["stream_status"]["status"] == "COMPLETE"
        )
        assert last_state < complete, name

    # The state as PyAirbyte passes it back: an incremental second read.
    state_path = write(tmp_path, "state.json", as_pyairbyte_state(read))
    server.app.reset_requests()
    second = read_source(tmp_path, config_path, catalog_path, state_path)
    assert second.returncode == 0, second.stderr[-3000:]
    archived = {c["id"] for c in data.archived_customers} - data.unsupported
    costs_requests = server.app.count(lambda p: p.endswith("/costs"))
    assert costs_requests == len(data.all_customer_ids()) - len(archived)
    assert len(second.records("customer_costs")) <= len(read.records("customer_costs"))
    assert second.final_states()["customer_costs"] == final["customer_costs"]


def test_read_accepts_empty_state_and_incremental_on_a_full_table_stream(
    discovered, tmp_path
):
    _, _, _, config_path, catalog = discovered
    catalog_path = write(
        tmp_path,
        "catalog.json",
        configured(catalog, {"customers", "plans"}, mode="incremental"),
    )
    run = read_source(
        tmp_path, config_path, catalog_path, write(tmp_path, "state.json", [])
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.records("customers")) == 10
    assert run.records("plans")
    assert not run.records("customer_costs"), "only the configured streams"
    assert "customers: incremental was asked of a full-table stream" in run.stderr


def _failed_read(
    tmp_path, config_path, catalog_path, state_path: str | None = None
) -> SourceRun:
    run = read_source(tmp_path, config_path, catalog_path, state_path)
    assert run.returncode != 0
    (error,) = run.errors()
    assert "\n" not in error["message"]
    assert run.messages[-1]["trace"]["type"] == "ERROR", "the error comes last"
    return run


def test_a_rejected_token_is_a_config_error(discovered, tmp_path):
    _, _, config, _, catalog = discovered
    config_path = write(
        tmp_path, "bad.json", {**config, "auth_token": "nope-987654321abc"}
    )
    catalog_path = write(tmp_path, "catalog.json", configured(catalog, {"customers"}))
    run = _failed_read(tmp_path, config_path, catalog_path)
    (error,) = run.errors()
    assert error["failure_type"] == "config_error"
    assert "auth_token" in error["message"]
    assert run.returncode == 2
    assert run.statuses("customers") == ["STARTED", "INCOMPLETE"]
    assert "nope-987654321abc" not in run.stdout + run.stderr


def test_retries_running_out_is_a_transient_error(fake_api, tmp_path):
    from tests.fake_metronome import Faults

    server = fake_api(FakeData.generate(customers=2), faults=Faults({"503": 1.0}))
    config = tap_config(server, max_retries=1, retry_backoff_seconds=0.01)
    catalog = json.loads(
        run_source(
            tmp_path, "discover", "--config", write(tmp_path, "c.json", config)
        ).stdout
    )["catalog"]
    run = _failed_read(
        tmp_path,
        write(tmp_path, "c.json", config),
        write(tmp_path, "catalog.json", configured(catalog, {"plans"})),
    )
    (error,) = run.errors()
    assert error["failure_type"] == "transient_error"
    assert run.returncode == 2


def test_a_bad_stream_map_ends_as_in_singer_mode(discovered, tmp_path):
    # `tap-metronome` exits 1 naming stream_maps (tests/test_hostile.py); the
    # Airbyte source ends the same run the same way, not as a bug.
    _, _, config, _, catalog = discovered
    config_path = write(
        tmp_path, "maps.json", {**config, "stream_maps": {"plans": {"x": "1 +"}}}
    )
    catalog_path = write(tmp_path, "catalog.json", configured(catalog, {"plans"}))
    run = _failed_read(tmp_path, config_path, catalog_path)
    (error,) = run.errors()
    assert error["failure_type"] == "config_error"
    assert error["message"].startswith("stream_maps: ")
    assert "internal_message" not in error
    assert run.returncode == 1


@pytest.mark.parametrize(
    ("catalog_value", "state_value", "needle"),
    [
        (
            {"streams": [{"stream": {"name": "nope"}, "sync_mode": "full_refresh"}]},
            None,
            "no stream nope",
        ),
        ({"streams": "all"}, None, "--catalog"),
        (None, {"type": "LEGACY", "data": {}}, "--state"),
        (None, [{"type": "LEGACY", "data": {}}], "LEGACY state"),
        (
            None,
            [{"type": "STREAM", "stream": {"stream_descriptor": {}}}],
            "name must be a string",
        ),
        (
            None,
            [
                {
                    "type": "STREAM",
                    "stream": {
                        "stream_descriptor": {"name": "customer_costs"},
                        "stream_state": {"synced_until": {"soon": ["x"]}},
                    },
                }
            ],
            "customer_costs",
        ),
    ],
)
def test_a_bad_catalog_or_state_is_one_config_error(
    discovered, tmp_path, catalog_value, state_value, needle
):
    _, _, _, config_path, catalog = discovered
    catalog_path = write(
        tmp_path,
        "catalog.json",
        catalog_value or configured(catalog, {"customer_costs"}),
    )
    state_path = None if state_value is None else write(tmp_path, "s.json", state_value)
    run = _failed_read(tmp_path, config_path, catalog_path, state_path)
    (error,) = run.errors()
    assert error["failure_type"] == "config_error"
    assert needle in error["message"]
    assert run.returncode == 1
    assert not run.of_type("RECORD")


def test_a_killed_read_resumes_from_its_last_state_without_loss(fake_api, tmp_path):
    data = FakeData.generate(customers=60, archived=0, plans=1)
    server = fake_api(data, latency=0.002)
    config = tap_config(server, max_concurrency=2, lookback_days=1)
    config_path = write(tmp_path, "config.json", config)
    catalog_path = costs_catalog(tmp_path, config_path)
    proc = start_read(tmp_path, config_path, catalog_path)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.decode())
        states = [s for s in lines if '"type":"STATE"' in s and "synced_until" in s]
        if len(states) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    proc.stdout.close()
    partial = SourceRun(-9, "", "", protocol_lines("".join(lines)))
    state_path = write(tmp_path, "state.json", as_pyairbyte_state(partial))
    resumed = read_source(tmp_path, config_path, catalog_path, state_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    key = ("customer_id", "start_timestamp", "credit_type_id")
    union = {tuple(r[k] for k in key) for r in partial.records("customer_costs")} | {
        tuple(r[k] for k in key) for r in resumed.records("customer_costs")
    }
    expected = set(data.cost_rows(*_costs_range(config)))
    assert union == expected
    assert len(resumed.records("customer_costs")) < len(expected), "it resumed"


def _costs_range(config: dict[str, Any]):
    from datetime import date

    return date.fromisoformat(config["start_date"]), date.fromisoformat(
        config["end_date"]
    )


def test_sigterm_stops_a_read_with_incomplete_streams_and_a_transient_error(
    fake_api, tmp_path
):
    server = fake_api(FakeData.generate(customers=40, archived=0), latency=0.02)
    config_path = write(tmp_path, "config.json", tap_config(server))
    catalog_path = costs_catalog(tmp_path, config_path)
    proc = start_read(tmp_path, config_path, catalog_path)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.decode())
        if '"type":"RECORD"' in lines[-1]:
            proc.send_signal(signal.SIGTERM)
            break
    lines += [line.decode() for line in proc.stdout]
    proc.wait(timeout=30)
    proc.stdout.close()
    run = SourceRun(proc.returncode or 0, "", "", protocol_lines("".join(lines)))
    assert proc.returncode == 128 + signal.SIGTERM
    assert run.statuses("customer_costs")[-1] == "INCOMPLETE"
    (error,) = run.errors()
    assert error["failure_type"] == "transient_error"
    assert "SIGTERM" in error["message"]
    assert run.messages[-1]["trace"]["type"] == "ERROR"


def test_unexpected_values_are_carried_in_airbyte_records(fake_api, tmp_path):
    """Airbyte mode writes the same kept rows: the value null, the original in
    `_unexpected_values`, which the catalog declares."""
    server = fake_api(
        FakeData.generate(customers=4, archived=1, plans=1), tamper=unexpected_values
    )
    config_path = write(tmp_path, "config.json", tap_config(server))
    (message,) = run_source(tmp_path, "discover", "--config", config_path).messages
    streams = {s["name"]: s for s in message["catalog"]["streams"]}
    assert all(
        "_unexpected_values" in s["json_schema"]["properties"] for s in streams.values()
    )
    catalog_path = write(
        tmp_path,
        "catalog.json",
        configured(message["catalog"], {"customers", "invoices"}),
    )
    read = read_source(tmp_path, config_path, catalog_path)
    assert read.returncode == 0, read.stderr[-3000:]
    kept = [r for r in read.records("customers") if r.get("_unexpected_values")]
    assert [r["_unexpected_values"] for r in kept] == [
        {"/name": 12345, "/created_at": "2016-12-31T23:59:60Z"}
    ] * 2
    assert all(r["name"] is None and r["created_at"] is None for r in kept)
    invoices = read.records("invoices")
    assert any(
        r["_unexpected_values"] == {"/billable_status": {"value": "billable"}}
        and r["billable_status"] is None
        for r in invoices
    )
