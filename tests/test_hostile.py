"""Hostile input: what a careless user, a flaky network and an attacker would send.

Every case runs the tap as users do (a subprocess) and checks the same things:
the exit code; one clear log line naming the setting, the state, or the stream
and endpoint; no traceback; the token nowhere in stdout or stderr; and stdout
made of whole Singer messages, each RECORD valid against the SCHEMA the tap
emitted for it, no primary key twice.
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator

from tap_metronome.errors import one_line
from tap_metronome.streams import STREAM_TYPES
from tap_metronome.streams.base import ListStream
from tap_metronome.streams.partitions import PARENT_KEYS, PARENT_NOUNS
from tap_metronome.unexpected import FORMATS
from tests import tap_process
from tests.conftest import catalog_selecting, clean_env, start_tap
from tests.fake_metronome import (
    FakeData,
    FakeMetronomeApp,
    FakeMetronomeServer,
    what_metronome_may_add,
)
from tests.hostile_server import HostileServer, answer, echo_authorization, trickle
from tests.stream_classes import parent_of, template_pattern
from tests.test_costs import costs_requests

SECRET = "sk-HOSTILE-SECRET-0042-visible"
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
TODAY = datetime.now(UTC).date()
#: The start of the runs that go on to today (no end_date): 20 days back, so that
#: they sync a few weeks whatever the date, as the runs with an end_date do (from
#: 2024-06-01 they grew by a month of costs and usage every month).
RECENT = (TODAY - timedelta(days=20)).isoformat()


# -- running and checking ------------------------------------------------------------------


def run_cli(
    tmp_path: Path,
    *,
    config: dict[str, Any] | None = None,
    config_text: str | bytes | None = None,
    state_text: str | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    command: list[str] = []
    if config is not None or config_text is not None:
        path = tmp_path / "config.json"
        if config_text is None:
            config_text = json.dumps(config)
        if isinstance(config_text, bytes):
            path.write_bytes(config_text)
        else:
            path.write_text(config_text)
        command += ["--config", str(path)]
    if state_text is not None:
        (tmp_path / "state.json").write_text(state_text)
        command += ["--state", str(tmp_path / "state.json")]
    return tap_process.run(
        command + list(args), cwd=tmp_path, env=clean_env(env), timeout=timeout
    )


def singer_messages(stdout: str) -> list[dict[str, Any]]:
    """Parse stdout, checking every line is whole and every RECORD honest."""
    schemas: dict[str, Any] = {}
    keys: dict[str, list[str]] = {}
    seen: set[tuple[Any, ...]] = set()
    messages = []
    for line in stdout.splitlines():
        message = _DECODER.decode(line)  # a broken line fails here
        messages.append(message)
        if message["type"] == "SCHEMA":
            schemas[message["stream"]] = Draft202012Validator(
                message["schema"], format_checker=FORMATS
            )
            keys[message["stream"]] = message["key_properties"]
        elif message["type"] == "RECORD":
            stream = message["stream"]
            errors = [
                error
                for error in schemas[stream].iter_errors(message["record"])
                # Ids of another form pass as keys, as the tap has always let
                # them (issue 23 is about ids); every other form is checked.
                if not (
                    error.validator == "format"
                    and error.validator_value == "uuid"
                    and list(error.absolute_path) in ([k] for k in keys[stream])
                )
            ]
            assert not errors, (stream, errors[0].message)
            key = (stream, *(message["record"][k] for k in keys[stream]))
            assert key not in seen, f"duplicate RECORD {key}"
            seen.add(key)
    return messages


def check(
    run: subprocess.CompletedProcess[str], code: int, needle: str | None = None
) -> list[dict[str, Any]]:
    """The common bar for every hostile case; returns the Singer messages."""
    assert run.returncode == code, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert SECRET not in run.stdout + run.stderr
    assert SECRET[3:-3] not in run.stdout + run.stderr
    lines = run.stderr.splitlines()
    assert all(len(line) < 25_000 for line in lines)
    assert not any(line.startswith("2026-01-01 | ERROR | forged") for line in lines)
    # The first ERROR is the tap's own line, not the SDK's "unhandled error".
    assert not any(
        "| ERROR" in line and "An unhandled error occurred" in line for line in lines
    )
    if needle is not None:
        flagged = [line for line in lines if "| ERROR" in line or "| WARNING" in line]
        assert any(needle in line for line in flagged), run.stderr[-3000:]
    if code != 0:
        assert "Traceback" not in run.stderr
    return singer_messages(run.stdout)


def small_data() -> FakeData:
    return FakeData.generate(customers=6, archived=2, plans=2, charges_per_plan=2)


def config_for(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "auth_token": SECRET,
        "api_url": url,
        "start_date": "2024-06-01",
        "end_date": "2024-06-08",
        "max_requests_per_second": 1000,
        "request_timeout": 5,
        "retry_backoff_seconds": 0.01,
        "max_retries": 1,
        **overrides,
    }


@pytest.fixture
def server():
    app = FakeMetronomeApp(small_data(), token=SECRET)
    with FakeMetronomeServer(app) as running:
        yield running


# -- settings --------------------------------------------------------------------------

BAD_SETTINGS = [
    ({"auth_token": ["a", "b"]}, "auth_token"),
    ({"auth_token": {"value": SECRET}}, "auth_token"),
    ({"auth_token": 4242}, "auth_token"),
    ({"auth_token": True}, "auth_token"),
    ({"auth_token": f"Bearer {SECRET}"}, "auth_token"),
    ({"auth_token": f"{SECRET[:10]}\n{SECRET[10:]}"}, "auth_token"),
    ({"auth_token": f"{SECRET}é"}, "auth_token"),
    ({"auth_token": f"{SECRET[:5]}\u2028{SECRET[5:]}"}, "auth_token"),
    ({"auth_token": f"{SECRET[:5]}\x00{SECRET[5:]}"}, "auth_token"),
    ({"auth_token": "   "}, "auth_token"),
    ({"auth_token": None}, "auth_token"),
    ({"start_date": "01/10/2026"}, "start_date"),
    ({"start_date": "10/01/2026"}, "start_date"),
    ({"start_date": "2024-02-30"}, "start_date"),
    ({"start_date": "20240101"}, "start_date"),
    ({"start_date": "2024-01-01T00:00:00+25:00"}, "start_date"),
    ({"start_date": 20240101}, "start_date"),
    ({"start_date": None}, "start_date"),
    ({"start_date": "0001-01-01"}, "start_date"),
    ({"end_date": "next week"}, "end_date"),
    ({"page_size": None, "max_retries": "lots"}, "max_retries"),
    ({"page_size": "1e400"}, "page_size"),
    ({"request_timeout": "Infinity"}, "request_timeout"),
    ({"request_timeout": 1e308}, "request_timeout"),
    ({"max_requests_per_second": -0.5}, "max_requests_per_second"),
    ({"max_concurrency": 10**20}, "max_concurrency"),
    ({"lookback_days": [35]}, "lookback_days"),
    ({"include_archived_customers": "sometimes"}, "include_archived_customers"),
    ({"customer_ids": []}, "customer_ids"),
    ({"customer_ids": [None]}, "customer_ids"),
    ({"customer_ids": {"a": 1}}, "customer_ids"),
    ({"user_agent": "tap\r\nX-Injected: 1"}, "user_agent"),
]


@pytest.mark.parametrize(("override", "setting"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it(server, tmp_path, override, setting):
    run = run_cli(tmp_path, config=config_for(server.url, **override))
    check(run, 1, f"{setting}: ")
    assert run.stdout == ""
    assert server.app.count() == 0


BAD_URLS = [
    "http://127.1:{port}\\@127.0.0.1:1",
    "http://127.0.0.1:{port}\\@example.com",
    "http://user:pass@127.0.0.1:{port}",
    "https://{secret}@api.metronome.com",
    "http://127.0.0.1:{port}/v1",
    "http://127.0.0.1:{port}/?x=1",
    "http://127.0.0.1:{port}#frag",
    "http://127.0.0.1 :{port}",
    "http://localhost.example.com:{port}",
    "http://0x7f.1:{port}",
    "http://example.com",
    "javascript:alert(1)",
    "ftp://127.0.0.1:{port}",
    "http://127.0.0.1:99999",
    "//127.0.0.1:{port}",
    "http://[::1",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_api_url_allows_no_way_around_https(server, tmp_path, url):
    url = url.format(port=server.port, secret=SECRET)
    run = run_cli(tmp_path, config=config_for(url))
    check(run, 1, "api_url: ")
    assert server.app.count() == 0


def test_nulls_mean_defaults(server, tmp_path):
    nulls = {
        "page_size": None,
        "request_timeout": None,
        "max_retries": None,
        "max_retry_seconds": None,
        "retry_backoff_seconds": None,
        "max_concurrency": None,
        "lookback_days": None,
        "progress_interval_seconds": None,
        "include_archived_customers": None,
        "customer_ids": None,
        "user_agent": None,
        "end_date": None,
    }
    config = {**config_for(server.url, start_date=RECENT), **nulls}
    run = run_cli(tmp_path, config=config)
    messages = check(run, 0)
    customers = [
        m for m in messages if m.get("stream") == "customers" and m["type"] == "RECORD"
    ]
    assert len(customers) == 8, (
        "null include_archived_customers means the default, true"
    )


@pytest.mark.slow
def test_a_token_with_surrounding_whitespace_is_trimmed_not_echoed(server, tmp_path):
    run = run_cli(tmp_path, config=config_for(server.url, auth_token=f"{SECRET}\n"))
    check(run, 0, "auth_token: removed whitespace")
    (tmp_path / "env").mkdir()
    config = config_for(server.url)
    del config["auth_token"]
    run = run_cli(
        tmp_path / "env",
        config=config,
        env={"TAP_METRONOME_AUTH_TOKEN": f" {SECRET}\r\n"},
    )
    check(run, 0, "auth_token: removed whitespace")


def test_settings_from_the_environment_are_parsed_and_named(server, tmp_path):
    config = {
        "start_date": "2024-06-01",
        "end_date": "2024-06-03",
        "api_url": server.url,
    }
    env = {
        "TAP_METRONOME_AUTH_TOKEN": SECRET,
        "TAP_METRONOME_MAX_REQUESTS_PER_SECOND": "500.5",
        "TAP_METRONOME_PAGE_SIZE": "7",
        "TAP_METRONOME_INCLUDE_ARCHIVED_CUSTOMERS": "false",
    }
    run = run_cli(tmp_path, config=config, env=env)
    messages = check(run, 0)
    customers = [
        m for m in messages if m.get("stream") == "customers" and m["type"] == "RECORD"
    ]
    assert len(customers) == 6
    # Every endpoint that takes a page size (usage, the credit ledger, alerts and
    # billing providers take none).
    unlimited = {t.path for t in STREAM_TYPES if not t.page_style.takes_limit}
    assert {
        args.get("limit") for path, args in server.app.requests if path not in unlimited
    } == {"7"}
    for variable, setting in [
        ("TAP_METRONOME_PAGE_SIZE", "page_size"),
        ("TAP_METRONOME_MAX_CONCURRENCY", "max_concurrency"),
        ("TAP_METRONOME_REQUEST_TIMEOUT", "request_timeout"),
        ("TAP_METRONOME_CUSTOMER_IDS", "customer_ids"),
    ]:
        (tmp_path / setting).mkdir()
        run = run_cli(tmp_path / setting, config=config, env={**env, variable: "abc"})
        check(run, 1, f"{setting}: ")


def test_customer_ids_are_canonical_before_sending(server, tmp_path):
    customer = small_data().customers[0]["id"]
    variants = [customer.upper(), "{" + customer + "}", f"urn:uuid:{customer}"]
    run = run_cli(tmp_path, config=config_for(server.url, customer_ids=variants))
    check(run, 0)
    costs = {path for path, _ in server.app.requests if path.endswith("/costs")}
    assert costs == {f"/v1/customers/{customer}/costs"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "--config"),
        ("[1, 2]", "--config"),
        (b"\xff\xfe{}", "--config"),
        ("", "--config"),
        ('"just a string"', "--config"),
    ],
)
def test_an_unreadable_config_file_is_named(tmp_path, text, needle):
    check(run_cli(tmp_path, config_text=text), 1, needle)


def test_a_missing_config_file_is_named(tmp_path):
    run = run_cli(tmp_path, args=("--config", str(tmp_path / "nope.json")))
    check(run, 1, "--config")


# -- dates and bookmarks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "end_date", ["2030-01-01", "9999-12-31", "9999-12-31T23:59:59Z"]
)
def test_no_bookmark_passes_the_end_of_today(tmp_path, end_date):
    data = FakeData.generate(customers=3, archived=0, plans=1)
    app = FakeMetronomeApp(data, token=SECRET)
    with FakeMetronomeServer(app) as server:
        start = (TODAY - timedelta(days=20)).isoformat()
        run = run_cli(
            tmp_path, config=config_for(server.url, start_date=start, end_date=end_date)
        )
        messages = check(run, 0)
    final = [m for m in messages if m["type"] == "STATE"][-1]["value"]
    days = final["bookmarks"]["customer_costs"]["synced_until"]
    assert list(days) == [(TODAY + timedelta(days=1)).isoformat()]
    assert max(ending for _, _, ending in costs_requests(app)) <= (
        f"{(TODAY + timedelta(days=1)).isoformat()}T00:00:00Z"
    )


def test_a_future_bookmark_is_re_read_from_start_date(server, tmp_path):
    ids = [c["id"] for c in small_data().customers]
    past = date.fromisoformat(RECENT) + timedelta(days=7)
    state = {
        "bookmarks": {
            "customer_costs": {
                "synced_until": {"2030-01-01": ids[:2], past.isoformat(): ids[2:]}
            }
        }
    }
    config = config_for(server.url, start_date=RECENT, end_date=None, lookback_days=3)
    run = run_cli(tmp_path, config=config, state_text=json.dumps(state))
    check(run, 0, f"bookmark of customer {ids[0]} is in the future")
    starts: dict[str, str] = {}
    for cid, starting, _ in costs_requests(server.app):
        starts[cid] = min(starting, starts.get(cid, starting))
    assert starts[ids[0]] == starts[ids[1]] == f"{RECENT}T00:00:00Z"
    # Its bookmark minus 3 days.
    assert starts[ids[2]] == f"{past - timedelta(days=3)}T00:00:00Z"


@pytest.mark.parametrize(
    "state",
    [
        "not json",
        "[]",
        '{"bookmarks": []}',
        '{"bookmarks": {"customer_costs": []}}',
        '{"bookmarks": {"customer_costs": {"synced_until": []}}}',
        '{"bookmarks": {"customer_costs": {"synced_until": {"yesterday": ["a"]}}}}',
        '{"bookmarks": {"customer_costs": {"synced_until": {"2024-01-01": "abc"}}}}',
        '{"bookmarks": {"customer_costs": {"synced_until": {"2024-01-01": [1, 2]}}}}',
        '{"bookmarks": {"customer_costs": {"synced_until": {"2024-1-1": ["a"]}}}}',
        '{"bookmarks": {"customers": 5}}',
    ],
)
def test_a_state_of_the_wrong_shape_is_named(server, tmp_path, state):
    run = run_cli(tmp_path, config=config_for(server.url), state_text=state)
    check(run, 1, "state")
    assert server.app.count() == 0


def _wrapped_states(state: dict[str, Any]) -> list[tuple[str, Any]]:
    message = {"type": "STATE", "value": state}
    return [
        ("singer_state", {"singer_state": state}),
        ("message", message),
        ("singer_state of a message", {"singer_state": message}),
        (
            "message of a singer_state",
            {"type": "STATE", "value": {"singer_state": state}},
        ),
    ]


@pytest.mark.slow
def test_a_wrapped_state_is_unwrapped_never_read_as_no_state(server, tmp_path):
    """What orchestrators store (`singer_state`, a whole STATE message, or both)
    reads as the state inside it, with an INFO line: the same requests as the
    plain state, not a full backfill."""
    first = run_cli(tmp_path, config=config_for(server.url))
    state = [m for m in check(first, 0) if m["type"] == "STATE"][-1]["value"]
    server.app.reset_requests()
    plain = run_cli(
        tmp_path, config=config_for(server.url), state_text=json.dumps(state)
    )
    check(plain, 0)
    incremental = sorted(costs_requests(server.app))
    for name, wrapped in _wrapped_states(state):
        server.app.reset_requests()
        run = run_cli(
            tmp_path, config=config_for(server.url), state_text=json.dumps(wrapped)
        )
        check(run, 0)
        assert any(
            "| INFO" in line and "state: reading the " in line
            for line in run.stderr.splitlines()
        ), name
        assert sorted(costs_requests(server.app)) == incremental, name


@pytest.mark.parametrize(
    "state",
    [
        {"value": {"bookmarks": {}}},
        {"singer_state": {"bookmarks": {}}, "completed_state": {}},
        {"state": {"bookmarks": {}}},
        {"type": "STATE"},
        {"singer_state": 5},
        {"singer_state": {"singer_state": {"singer_state": {"singer_state": {}}}}},
        {"Bookmarks": {"customer_costs": {}}},
    ],
)
def test_a_state_without_bookmarks_is_refused_not_a_silent_backfill(
    server, tmp_path, state
):
    run = run_cli(tmp_path, config=config_for(server.url), state_text=json.dumps(state))
    check(run, 1, "state")
    assert "state: " in run.stderr.strip().splitlines()[-1]
    assert server.app.count() == 0


@pytest.mark.parametrize("state", [{}, {"currently_syncing": None}])
def test_an_empty_state_is_a_full_sync(server, tmp_path, state):
    run = run_cli(tmp_path, config=config_for(server.url), state_text=json.dumps(state))
    check(run, 0)


def test_an_ancient_bookmark_is_harmless(server, tmp_path):
    ids = [c["id"] for c in small_data().customers]
    state = {"bookmarks": {"customer_costs": {"synced_until": {"0001-01-01": ids}}}}
    run = run_cli(tmp_path, config=config_for(server.url), state_text=json.dumps(state))
    check(run, 0)


# -- API answers the spec rules out --------------------------------------------------------


def on(fragment: str, change: Callable[[dict[str, Any]], None]):
    def tamper(path: str, body: dict[str, Any]) -> Any:
        if fragment in path and body["data"]:
            change(body)
        return body

    return tamper


def first(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        if value is KeyError:
            body["data"][0].pop(field, None)
        else:
            body["data"][0][field] = value

    return change


def first_credit_type(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        for item in body["data"]:
            for entry in item["credit_types"].values():
                entry[field] = value
                return

    return change


def replace_body(value: Any) -> Callable[[str, dict[str, Any]], Any]:
    return lambda path, body: value if path == "/v1/plans" else body


BAD_ANSWERS = [
    ("no-id", on("/v1/customers", first("id", KeyError)), "customers"),
    ("id-number", on("/v1/customers", first("id", 12345)), "customers"),
    ("id-list", on("/v1/customers", first("id", ["a"])), "customers"),
    (
        "item-string",
        on("/v1/plans", lambda b: b["data"].__setitem__(0, "oops")),
        "plans",
    ),
    ("item-null", on("/v1/plans", lambda b: b["data"].__setitem__(0, None)), "plans"),
    ("credit-types-null", on("/costs", first("credit_types", None)), "credit_types"),
    (
        "credit-types-missing",
        on("/costs", first("credit_types", KeyError)),
        "credit_types",
    ),
    ("credit-types-list", on("/costs", first("credit_types", [])), "credit_types"),
    ("end-null", on("/costs", first("end_timestamp", None)), "end_timestamp"),
    ("cost-string", on("/costs", first_credit_type("cost", "12.50")), "cost"),
    ("cost-bool", on("/costs", first_credit_type("cost", True)), "cost"),
    ("page-null", replace_body(None), "plans"),
    ("page-list", replace_body([]), "plans"),
    ("page-no-data", replace_body({"items": [], "next_page": None}), "plans"),
    ("cursor-number", replace_body({"data": [], "next_page": 5}), "plans"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "tamper", "needle"), BAD_ANSWERS, ids=[c[0] for c in BAD_ANSWERS]
)
def test_an_answer_the_spec_rules_out_stops_with_one_line(
    tmp_path, case, tamper, needle
):
    app = FakeMetronomeApp(small_data(), token=SECRET, tamper=tamper)
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
    check(run, 2, needle)
    last = run.stderr.strip().splitlines()[-1]
    assert "| ERROR" in last, last
    assert "Stream " in last, last
    assert "GET /v1/" in last, last


#: Dates the tap computes with that do not parse: (case, tamper, request, field).
BAD_STRICT_DATES = [
    (
        "usage-end",
        on("/v1/usage", first("end_timestamp", "garbage")),
        "POST /v1/usage",
        "end_timestamp",
    ),
    (
        "usage-start-second-60",  # a leap second is only 23:59:60 UTC
        on("/v1/usage", first("start_timestamp", "2016-12-31T23:58:60Z")),
        "POST /v1/usage",
        "start_timestamp",
    ),
    (
        "audit-not-a-date",
        on("/v1/auditLogs", first("timestamp", "not-a-date")),
        "GET /v1/auditLogs",
        "timestamp",
    ),
    (
        "audit-empty",
        on("/v1/auditLogs", first("timestamp", "")),
        "GET /v1/auditLogs",
        "timestamp",
    ),
]


@pytest.mark.parametrize(
    ("case", "tamper", "request_line", "field"),
    BAD_STRICT_DATES,
    ids=[c[0] for c in BAD_STRICT_DATES],
)
def test_a_date_the_tap_computes_with_that_does_not_parse_stops_the_run(
    tmp_path, case, tamper, request_line, field
):
    """Never nulled, never written: a target would refuse it, a bookmark cannot
    be made of it; one line naming the stream, request and field, exit 2."""
    app = FakeMetronomeApp(small_data(), token=SECRET, tamper=tamper)
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
    check(run, 2, field)
    last = run.stderr.strip().splitlines()[-1]
    assert "| ERROR" in last, last
    assert f"{request_line} returned an item whose {field} does not match" in last


#: Values of the wrong type in fields the tap does not compute with: (case,
#: tamper, stream, JSON Pointer of the value, the value as sent).
KEPT_ANSWERS = [
    ("name-number", on("/v1/customers", first("name", 5)), "customers", "/name", 5),
    (
        "prices-string",
        on("/charges", first("prices", "free")),
        "plan_charges",
        "/prices",
        "free",
    ),
    (
        "lines-object",
        on("/costs", first_credit_type("line_item_breakdown", {})),
        "customer_costs",
        "/line_item_breakdown",
        {},
    ),
    (
        "line-cost-string",
        on(
            "/costs",
            first_credit_type("line_item_breakdown", [{"name": "x", "cost": "1"}]),
        ),
        "customer_costs",
        "/line_item_breakdown/0/cost",
        "1",
    ),
    (
        "external-id-object",
        on("/v1/customers", first("external_id", {"a": ["b"]})),
        "customers",
        "/external_id",
        {"a": ["b"]},
    ),
    (
        "created-at-not-a-date",
        on("/v1/customers", first("created_at", "2016-12-31T23:59:60Z")),
        "customers",
        "/created_at",
        "2016-12-31T23:59:60Z",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "tamper", "stream", "where", "value"),
    KEPT_ANSWERS,
    ids=[c[0] for c in KEPT_ANSWERS],
)
def test_an_unexpected_value_is_kept_and_the_run_goes_on(
    tmp_path, case, tamper, stream, where, value
):
    app = FakeMetronomeApp(small_data(), token=SECRET, tamper=tamper)
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
        failing = run_cli(
            tmp_path, config=config_for(server.url, unexpected_values="fail")
        )
    messages = check(run, 0)  # every RECORD validates against its SCHEMA
    kept = [
        m["record"]
        for m in messages
        if m["type"] == "RECORD"
        and m["stream"] == stream
        and m["record"].get("_unexpected_values")
    ]
    assert kept  # the tamper changes the first item of every page
    for record in kept:
        assert record["_unexpected_values"] == {where: value}
        place = record
        for part in where.split("/")[1:]:
            place = place[int(part) if isinstance(place, list) else part]
        assert place is None
    field = "/".join("*" if p.isdigit() else p for p in where.split("/")[1:])
    warnings = [line for line in run.stderr.splitlines() if "| WARNING" in line]
    assert sum(f"Stream {stream}:" in w and f" in {field}," in w for w in warnings) == 1
    assert any(
        line.startswith(f"{stream}: ") or f"| {stream}: " in line
        for line in run.stderr.splitlines()
        if f"{len(kept)} records with unexpected values kept" in line
    ), run.stderr[-2000:]
    check(failing, 2, where.split("/")[-1] if case != "lines-object" else "line_item")
    assert "unexpected" in failing.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_what_the_api_may_add_passes_and_validates(tmp_path):
    app = FakeMetronomeApp(small_data(), token=SECRET, tamper=what_metronome_may_add)
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
    messages = check(run, 0)  # every RECORD validates against its SCHEMA
    records = {
        stream: [
            m["record"]
            for m in messages
            if m["type"] == "RECORD" and m["stream"] == stream
        ]
        for stream in ("customers", "plans", "plan_charges", "customer_costs")
    }
    assert all(records.values())
    charge = records["plan_charges"][0]
    assert charge["charge_type"] == "usage_v2"
    # A field the schema does not know yet is left out by the SDK, with a WARNING
    # naming it (once per stream and set of fields), never silently.
    assert "added_in_2027" not in charge["credit_type"]
    assert any(
        "| WARNING" in line
        and "'credit_type.added_in_2027'" in line
        and "'added_in_2027') were present in the 'plan_charges' stream" in line
        for line in run.stderr.splitlines()
    )
    # Inside a line item breakdown (kept as the API sent it) it stays.
    lines = [
        line
        for record in records["customer_costs"]
        for line in record["line_item_breakdown"] or []
    ]
    assert lines
    assert all(line["added_in_2027"]["flag"] is True for line in lines)


def test_an_id_with_line_breaks_forges_no_log_line(tmp_path):
    forged = "0b6c0f1e\n2026-01-01 | ERROR | forged line"
    app = FakeMetronomeApp(
        small_data(), token=SECRET, tamper=on("/v1/customers", first("id", forged))
    )
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
    check(run, 0, "Skipping customer 0b6c0f1e\\n2026-01-01")


#: Ids that could steer a request path (issue 23), and their neighbours: none of
#: them is sent in a path; each partition is skipped with one WARNING line.
STEERING_IDS = [
    (".", "dot"),
    ("..", "dot-dot"),
    ("%2e%2e", "encoded-dot-dot"),
    ("%2E%2E", "encoded-dot-dot-upper"),
    (".%2e", "half-encoded-dot-dot"),
    ("..%2f", "dot-dot-encoded-slash"),
    ("a/../b", "dot-dot-between-slashes"),
    ("a/b", "slash"),
    ("/", "only-slash"),
    ("a\\..\\b", "backslashes"),
    ("a?limit=1", "question-mark"),
    ("a#b", "hash"),
    ("..;", "dot-dot-semicolon"),
    ("a;b", "semicolon"),
    (" a b\t", "whitespace"),
    ("x" * 5000, "very-long"),
    ("kund\u00e9-\u20ac", "non-ascii"),
    ("\uff0e\uff0e", "fullwidth-dots"),
    ("a\x00b", "nul"),
    ("a\r\nb", "line-break"),
]
#: Per-parent streams whose path holds the parent's id: (stream, noun), e.g.
#: ("customer_plans", "customer"), ("plan_charges", "plan").
PATH_PARTITIONS = [
    (t.name, PARENT_NOUNS[parent])
    for t in STREAM_TYPES
    if (parent := parent_of(t)) and f"{{{PARENT_KEYS[parent]}}}" in t.path
]
#: Per-parent endpoints with the parent's id in the JSON body (contracts, balances).
BODY_PARTITION_PATHS = sorted(
    {
        t.path
        for t in STREAM_TYPES
        if issubclass(t, ListStream) and t.parent and t.parent_in == "body"
    }
)


def only_the_tap_s_endpoints(app: FakeMetronomeApp, data: FakeData) -> None:
    """Every path `app` received, as sent and as decoded, is one of the tap's
    endpoints, with a real customer or plan id where its template has one."""
    customers = {c["id"] for c in data.customers + data.archived_customers}
    plans = {p["id"] for p in data.plans}
    allowed: set[str] = set()
    for stream_type in STREAM_TYPES:
        template = stream_type.path
        if "{customer_id}" in template:
            allowed |= {template.replace("{customer_id}", c) for c in customers}
        elif "{plan_id}" in template:
            allowed |= {template.replace("{plan_id}", p) for p in plans}
        else:
            allowed.add(template)
    assert app.raw_paths
    assert set(app.raw_paths) <= allowed, set(app.raw_paths) - allowed
    assert {path for path, _ in app.requests} <= allowed


def first_listed_id(value: str) -> Callable[[str, dict[str, Any]], Any]:
    """A `tamper` that gives the first customer and plan of each listing `value`."""

    def tamper(path: str, body: dict[str, Any]) -> Any:
        if path in {"/v1/customers", "/v1/plans"} and body["data"]:
            body["data"][0]["id"] = value
        return body

    return tamper


@pytest.mark.slow
@pytest.mark.parametrize(
    "hostile", [c[0] for c in STEERING_IDS], ids=[c[1] for c in STEERING_IDS]
)
def test_an_id_that_could_steer_a_path_is_never_sent_in_one(tmp_path, hostile):
    data = small_data()
    app = FakeMetronomeApp(data, token=SECRET, tamper=first_listed_id(hostile))
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
    messages = check(run, 0, "cannot go in a URL path")
    for stream, noun in PATH_PARTITIONS:
        line = f"Skipping {noun} {one_line(hostile, 80)} in {stream}: {noun}_id cannot"
        assert line in run.stderr, (stream, run.stderr[-3000:])
    only_the_tap_s_endpoints(app, data)
    customers = {c["id"] for c in data.customers + data.archived_customers}
    plans = {p["id"] for p in data.plans}
    # No record of a customer's or plan's stream is put on the hostile id.
    for message in messages:
        if message["type"] != "RECORD" or message["stream"] in PARENT_KEYS:
            continue  # the parent listings themselves
        record = message["record"]
        if "customer_id" in record and message["stream"] != "contracts":
            assert record["customer_id"] in customers, message["stream"]
        if "plan_id" in record and message["stream"] == "plan_charges":
            assert record["plan_id"] in plans, message["stream"]
    # An id in a JSON body cannot steer a path: it is sent exactly as listed.
    for endpoint in BODY_PARTITION_PATHS:
        sent = {
            fields.get("customer_id")
            for path, fields in app.requests
            if path == endpoint
        }
        assert hostile in sent, endpoint


def test_an_empty_listed_id_stops_the_run_before_any_request_with_it(tmp_path):
    data = small_data()
    app = FakeMetronomeApp(data, token=SECRET, tamper=first_listed_id(""))
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
    check(run, 2, "returned an item without a string id")
    only_the_tap_s_endpoints(app, data)


# -- hostile HTTP ----------------------------------------------------------------------------


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_request_timeout_bounds_a_whole_trickling_response(tmp_path, in_headers):
    with HostileServer(trickle(interval=0.2, in_headers=in_headers)) as hostile:
        started = time.monotonic()
        run = run_cli(
            tmp_path,
            config=config_for(hostile.url, request_timeout=1, max_retries=0),
            timeout=60,
        )
        elapsed = time.monotonic() - started
    check(run, 2, "no complete response within 1s")
    # Generous: the point is that it ends, where before it never did.
    assert elapsed < 30


def test_a_redirect_is_not_followed(server, tmp_path):
    location = f"{server.url}/v1/customers"
    with HostileServer(answer("302 Found", b"", {"Location": location})) as hostile:
        run = run_cli(tmp_path, config=config_for(hostile.url))
    check(run, 2, "redirect")
    assert server.app.count() == 0, "the token went to the redirect target"


def test_an_error_message_that_echoes_the_token_is_cut_and_redacted(tmp_path):
    with HostileServer(echo_authorization) as hostile:
        run = run_cli(tmp_path, config=config_for(hostile.url))
    check(run, 2, "bad request from Bearer <auth_token>\\n2026-01-01")
    assert max(len(line) for line in run.stderr.splitlines()) < 2000


@pytest.mark.parametrize(
    ("scenario", "needle"),
    [
        (answer("200 OK", b"{not json"), "not valid JSON"),
        (answer("204 No Content", b""), "not valid JSON"),
        (answer("200 OK", b"null"), "did not answer a list page"),
        (
            answer("200 OK", b'{"data": [], "next_page": null}' + b"x" * 10),
            "not valid JSON",
        ),
        (
            answer("200 OK", b"x" * 100, {"Content-Encoding": "gzip"}),
            "connection error",
        ),
        (lambda head, sock, stopped: None, "connection error"),
        (answer("999 Nonsense", b"{}"), "999"),
        (answer("418 I'm a teapot", b'{"message": "\\u001b[31mred\\u0007"}'), "418"),
    ],
)
def test_broken_http_answers_end_in_one_line(tmp_path, scenario, needle):
    with HostileServer(scenario) as hostile:
        run = run_cli(tmp_path, config=config_for(hostile.url))
    check(run, 2, needle)
    assert "\x1b" not in run.stderr
    assert "\x07" not in run.stderr


# -- found by a hostile review (each failed before its fix) ---------------------------------


def test_a_retry_after_no_server_means_falls_back_to_the_backoff(tmp_path):
    """Issue 23: a Retry-After out of datetime's range raised OverflowError (exit 3)."""
    bad = [
        {"Retry-After": "Mon, 01 Jan 99999999999 00:00:00 GMT"},
        {"Retry-After": "12345678901234567890"},
        {"retry-after-ms": "1e309", "Retry-After": "inf"},
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"Retry-After": "-5 é" + "9" * 5000},
    ]
    answered = iter(bad)

    def limited_then_empty(head: bytes, sock: Any, stopped: Any) -> None:
        headers = next(answered, None)
        if headers is None:
            answer("200 OK", b'{"data": [], "next_page": null}')(head, sock, stopped)
        else:
            answer("429 Too Many Requests", b"{}", headers)(head, sock, stopped)

    with HostileServer(limited_then_empty) as hostile:
        run = run_cli(tmp_path, config=config_for(hostile.url, max_retries=len(bad)))
    check(run, 0)
    retries = [line for line in run.stderr.splitlines() if "Retrying" in line]
    assert len(retries) == len(bad), run.stderr[-3000:]
    waits = [float(line.rsplit("waiting ", 1)[1].rstrip("s")) for line in retries]
    assert all(wait < 1 for wait in waits), waits  # the 0.01 s backoff, doubling


def test_proxy_variables_never_carry_the_token_over_plain_http(server, tmp_path):
    with HostileServer(answer("503 Service Unavailable", b"{}")) as proxy:
        env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "ALL_PROXY": proxy.url}
        run = run_cli(tmp_path, config=config_for(server.url), env=env)
    check(run, 0)
    assert proxy.heads == []


def test_endless_empty_pages_end_in_one_line(tmp_path):
    def endless(head: bytes, sock: Any, stopped: Any) -> None:
        cursor = f"c{time.monotonic_ns()}".encode()
        answer("200 OK", b'{"data": [], "next_page": "' + cursor + b'"}')(
            head, sock, stopped
        )

    with HostileServer(endless) as hostile:
        run = run_cli(tmp_path, config=config_for(hostile.url))
    check(run, 2, "empty pages in a row")
    # audit_logs (first by name) ends on its first empty page, as it must; the
    # next stream gives up after 200.
    assert len(hostile.heads) == 1 + 200


@pytest.fixture(scope="module")
def discovered(tmp_path_factory) -> dict[str, Any]:
    """The tap's catalog, no stream selected (discovery sends no request)."""
    config = config_for("http://127.0.0.1:9")
    return catalog_selecting(config, tmp_path_factory.mktemp("discover"), set())


def only(catalog: dict[str, Any], stream: str) -> dict[str, Any]:
    """`catalog` with only `stream` selected."""
    chosen = copy.deepcopy(catalog)
    for entry in chosen["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] == stream
    return chosen


@pytest.mark.slow
@pytest.mark.parametrize("stream_type", STREAM_TYPES, ids=lambda t: t.name)
def test_a_listing_that_ignores_the_cursor_stops_with_one_line(
    tmp_path, discovered, stream_type
):
    """The API answers the first page again, under a fresh cursor, forever.

    Before the progress rule: customers, costs, invoices, plans, usage, ... paged
    until killed (700..4,200 requests in 10 s); customer_plans, contracts and
    invoice_line_items stopped after 1,177..1,832 requests on customers whose
    listing was empty; audit_logs stopped on its sort check.
    """
    name = stream_type.name
    endpoint = template_pattern(stream_type.path)
    app = FakeMetronomeApp(
        small_data(), token=SECRET, ignores_cursor=lambda p: bool(endpoint.fullmatch(p))
    )
    (tmp_path / "catalog.json").write_text(json.dumps(only(discovered, name)))
    with FakeMetronomeServer(app) as server:
        run = run_cli(
            tmp_path,
            config=config_for(server.url),
            args=("--catalog", str(tmp_path / "catalog.json")),
            timeout=30,
        )
    requests = app.count(lambda p: bool(endpoint.fullmatch(p)))
    print(f"{name}: {requests} requests, exit {run.returncode}")
    messages = check(run, 2, "stopping instead of paging forever")
    lines = run.stderr.splitlines()
    stops = [line for line in lines if "pages in a row" in line]
    assert len(stops) == 1, stops
    assert [line for line in lines if "| ERROR" in line] == stops
    stop = stops[-1].split(" | ", 3)[-1]
    assert stop.startswith(f"Stream {name}: {stream_type.method} "), stop
    assert endpoint.fullmatch(stop.split()[3]), stop
    # One listing reads a first page and the repeats that stop it; a fan-out
    # stops at its first such listing, with each of its 8 workers (the default
    # max_concurrency) about as far along: twice that, for a loaded machine.
    # The page, its second sighting, then MetronomeCursorPaginator.MAX_REPEATED_PAGES.
    per_listing = 2 + 5
    if parent_of(stream_type):
        assert requests <= 2 * 8 * (per_listing + 1), requests
    else:
        assert requests == per_listing, requests
    # No listing of the stream ended: no bookmark may claim one did.
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    bookmark = states[-1]["bookmarks"].get(name, {}) if states else {}
    assert not bookmark.get("synced_until"), bookmark
    assert not bookmark.get("reread_from"), bookmark
    assert "replication_key_value" not in bookmark, bookmark


@pytest.mark.slow
@pytest.mark.parametrize(
    "fragment", ["/v1/plans", "/charges", "/costs", "/v1/customers"]
)
def test_an_item_listed_twice_is_emitted_once_and_logged(tmp_path, fragment):
    def repeat(body: dict[str, Any]) -> None:
        body["data"].append(body["data"][0])

    app = FakeMetronomeApp(small_data(), token=SECRET, tamper=on(fragment, repeat))
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
    check(run, 0, "twice")  # `check` fails on any primary key emitted twice


def test_a_costs_item_outside_the_window_asked_for_is_refused(tmp_path):
    app = FakeMetronomeApp(
        small_data(),
        token=SECRET,
        tamper=on("/costs", first("start_timestamp", "9999-12-31T00:00:00Z")),
    )
    with FakeMetronomeServer(app) as server:
        run = run_cli(tmp_path, config=config_for(server.url))
    messages = check(run, 2, "outside the requested days")
    assert "9999" not in json.dumps([m for m in messages if m["type"] == "STATE"])


@pytest.mark.slow
def test_no_state_message_carries_a_future_bookmark(server, tmp_path):
    ids = [c["id"] for c in small_data().customers]
    state = {
        "bookmarks": {
            "customer_costs": {
                "synced_until": {"2030-01-01": ids},
                "replication_key": "end_timestamp",
                "replication_key_value": "9999-12-31T00:00:00Z",
                "progress_markers": {"replication_key_value": "9999-12-31T00:00:00Z"},
            },
            "customers": {"replication_key_value": "9999-12-31", "partitions": "x"},
        }
    }
    run = run_cli(tmp_path, config=config_for(server.url), state_text=json.dumps(state))
    messages = check(run, 0, "is in the future")
    states = json.dumps([m for m in messages if m["type"] == "STATE"])
    assert "2030-01-01" not in states
    assert "9999" not in states


@pytest.mark.parametrize(
    "catalog",
    [
        {"streams": None},
        {"streams": {"a": 1}},
        {"streams": ["customers"]},
        {"streams": [{"tap_stream_id": "customers", "schema": None}]},
        {"streams": [{"tap_stream_id": "customers", "schema": {}, "metadata": None}]},
        {"streams": [{"tap_stream_id": "customers", "schema": {}, "metadata": [1]}]},
    ],
)
def test_a_catalog_of_the_wrong_shape_is_named(server, tmp_path, catalog):
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    run = run_cli(
        tmp_path,
        config=config_for(server.url),
        args=("--catalog", str(tmp_path / "catalog.json")),
    )
    check(run, 1, "--catalog")
    assert server.app.count() == 0


@pytest.mark.parametrize(
    ("config_text", "needle"),
    [
        (
            '{"auth_token": "x", "start_date": "2024-01-01", "request_timeout": NaN}',
            "--config",
        ),
        (
            '{"auth_token": "x", "start_date": "0001-01-01T00:00:00+01:00"}',
            "start_date",
        ),
        (
            '{"auth_token": "x", "start_date": "2024-01-01", '
            '"end_date": "9999-12-31T23:59:59-01:00"}',
            "end_date",
        ),
        (
            '{"auth_token": "x", "start_date": "2024-01-01", "max_requests_per_second": 1e-300}',
            "max_requests_per_second",
        ),
    ],
)
def test_out_of_range_inputs_are_named_not_reported_as_bugs(
    tmp_path, config_text, needle
):
    run = run_cli(tmp_path, config_text=config_text)
    check(run, 1, needle)
    assert "a bug" not in run.stderr


def test_a_bad_stream_map_is_named(server, tmp_path):
    config = config_for(server.url, stream_maps={"plans": {"x": "1 +"}})
    run = run_cli(tmp_path, config=config)
    check(run, 1, "stream_maps")
    assert "a bug" not in run.stderr


def test_a_bad_log_level_is_one_line(server, tmp_path):
    run = run_cli(
        tmp_path, config=config_for(server.url), env={"TAP_METRONOME_LOGLEVEL": "LOUD"}
    )
    check(run, 1)
    assert run.stderr.strip() == (
        "TAP_METRONOME_LOGLEVEL: LOUD is not a log level (DEBUG, INFO, WARNING, ERROR or "
        "CRITICAL)"
    )


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"data": [], "next_page": null, "x": "\xff\xfe"}'],
    ids=["deep", "not-utf8"],
)
def test_undecodable_bodies_are_retried_then_named(tmp_path, body):
    with HostileServer(answer("200 OK", body)) as hostile:
        run = run_cli(tmp_path, config=config_for(hostile.url))
    check(run, 2, "not valid JSON")


def test_a_fragment_of_the_token_echoed_by_the_server_is_redacted(tmp_path):
    message = (
        b'{"message": "token prefix '
        + SECRET[:10].lower().encode()
        + b'... is invalid"}'
    )
    with HostileServer(answer("400 Bad Request", message)) as hostile:
        run = run_cli(tmp_path, config=config_for(hostile.url))
    check(run, 2, "token prefix <auth_token>")
    assert SECRET[:8].lower() not in run.stderr.lower()


def test_a_body_cut_by_the_deadline_is_not_taken_as_whole(tmp_path):
    def http10(head: bytes, sock: Any, stopped: Any) -> None:
        sock.sendall(b'HTTP/1.0 200 OK\r\n\r\n{"data": [], "next_page": null}')
        stopped.wait(30)  # the connection stays open: the body never "ends"

    with HostileServer(http10) as hostile:
        run = run_cli(
            tmp_path, config=config_for(hostile.url, request_timeout=1, max_retries=0)
        )
    check(run, 2, "no complete response within 1s")


def test_sigterm_ends_a_request_in_flight_at_once(tmp_path):
    import signal

    with HostileServer(trickle(interval=0.2)) as hostile:
        proc = start_tap(
            config_for(hostile.url, request_timeout=60),
            tmp_path,
            stdout=tap_process.PIPE,
            stderr=tap_process.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not hostile.heads and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - started
    assert proc.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    assert stopped_in < 20  # not the 60 s request_timeout


def test_stdout_that_cannot_be_written_ends_in_one_line(server, tmp_path):
    # A target that stops reading after 100 bytes.
    proc = start_tap(
        config_for(server.url),
        tmp_path,
        stdout=tap_process.PIPE,
        stderr=tap_process.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.read(100)
    proc.stdout.close()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    proc.wait(timeout=60)
    assert proc.returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "stdout: cannot write Singer messages (the target stopped reading)" in stderr
    # A full disk.
    run = tap_process.run(
        ["--config", "config.json"], cwd=tmp_path, env=clean_env(), stdout="/dev/full"
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "stdout: cannot write Singer messages" in run.stderr


# -- found by a code review (each failed before its fix) ------------------------------------


def test_a_burst_of_signals_during_retry_waits_never_hangs(tmp_path):
    """The main thread sleeps in Event.wait between retries; signals must not deadlock it."""
    import signal

    with HostileServer(answer("503 Service Unavailable", b"{}")) as hostile:
        config = config_for(hostile.url, max_retries=1000, retry_backoff_seconds=0.02)
        proc = start_tap(
            config,
            tmp_path,
            stdout=tap_process.DEVNULL,
            stderr=tap_process.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while len(hostile.heads) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        for n in range(60):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):  # it may just have exited
                proc.send_signal(signal.SIGTERM if n % 2 == 0 else signal.SIGINT)
            time.sleep(0.002)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr


def test_https_sessions_keep_the_environment_ca_bundle_and_all_proxy(monkeypatch):
    from tap_metronome.transport import new_session

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.corp:3128")
    https = new_session("https://api.metronome.com", {})
    assert https.verify == "/etc/corp-ca.pem"
    assert https.proxies == {"https": "http://proxy.corp:3128"}
    plain = new_session("http://127.0.0.1:9", {})
    assert plain.proxies == {}
    assert plain.trust_env is False  # no proxy, no ~/.netrc for plain http


def test_redaction_survives_text_whose_lower_case_is_longer():
    from tap_metronome.logs import SafeLines

    lines = SafeLines()
    lines.add_secrets({"sk-live-1234567890abcdef"})
    out = lines.redact(
        "İ" * 20 + " token sk-live-1234567 is invalid; ...7890abcdef revoked"
    )
    assert "sk-live-12" not in out
    assert "7890abcdef" not in out


def test_customer_ids_in_a_saved_state_are_canonical_too():
    from tap_metronome.bookmarks import CustomerBookmarks

    raw = "0B6C0F1E-8A2B-4C3D-9E4F-5A6B7C8D9E0F"
    bookmarks, _ = CustomerBookmarks.from_state(
        {"synced_until": {"2024-06-08": [raw, "{" + raw.lower() + "}"]}},
        latest=TODAY + timedelta(days=1),
        stream="customer_costs",
        key="synced_until",
    )
    assert bookmarks.to_state() == {"2024-06-08": [raw.lower()]}


def test_the_sdk_path_forms_of_config_and_state_still_work(server, tmp_path):
    from tap_metronome.tap import TapMetronome

    (tmp_path / "config.json").write_text(json.dumps(config_for(server.url)))
    (tmp_path / "state.json").write_text('{"bookmarks": {}}')
    tap = TapMetronome(
        config=str(tmp_path / "config.json"), state=str(tmp_path / "state.json")
    )
    assert tap.services.settings.api_url == server.url


def upper_case_ids(path: str, body: Any) -> Any:
    """A `tamper`: the customers listing writes its uuids in upper case."""
    if path == "/v1/customers" and isinstance(body, dict):
        body = {
            **body,
            "data": [{**item, "id": item["id"].upper()} for item in body["data"]],
        }
    return body


@pytest.mark.slow
def test_ids_in_another_case_keep_their_bookmarks(tmp_path):
    """Upper-case uuids in the listing: bookmarks are kept in the one canonical
    form (lower case) and found again by the next run, which neither forgets nor
    backfills them; records keep the id as the API sent it."""
    app = FakeMetronomeApp(small_data(), token=SECRET, tamper=upper_case_ids)
    with FakeMetronomeServer(app) as server:
        config = config_for(
            server.url, start_date=RECENT, end_date=None, lookback_days=3
        )
        first = run_cli(tmp_path, config=config)
        messages = check(first, 0)
        state = [m for m in messages if m["type"] == "STATE"][-1]["value"]
        synced = state["bookmarks"]["customer_costs"]["synced_until"]
        saved = {cid for ids in synced.values() for cid in ids}
        assert saved
        assert all(cid == cid.lower() for cid in saved)
        costs = [
            m["record"]
            for m in messages
            if m["type"] == "RECORD" and m["stream"] == "customer_costs"
        ]
        assert costs
        assert all(r["customer_id"] == r["customer_id"].upper() for r in costs)
        app.reset_requests()
        second = run_cli(tmp_path, config=config, state_text=json.dumps(state))
        check(second, 0)
    assert "no longer listed" not in second.stderr
    starts = [starting for _, starting, _ in costs_requests(app)]
    assert starts
    assert min(starts) > f"{RECENT}T00:00:00Z", (
        "a customer was backfilled from start_date"
    )


def test_a_large_state_of_an_unknown_stream_is_not_echoed(server, tmp_path):
    """A stream this version does not know: a bookmark or two are carried along,
    megabytes are dropped with a WARNING instead of being copied into every STATE."""
    state = {
        "bookmarks": {
            "future_stream": {"replication_key_value": "2024-06-01T00:00:00Z"},
            "huge_stream": {"blob": "x" * (2 << 20)},
        }
    }
    run = run_cli(tmp_path, config=config_for(server.url), state_text=json.dumps(state))
    messages = check(run, 0, "huge_stream")
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    assert states
    assert all("huge_stream" not in s["bookmarks"] for s in states)
    assert (
        states[-1]["bookmarks"]["future_stream"] == state["bookmarks"]["future_stream"]
    )
    # Not copied into any message (stdout holds megabytes of records too).
    assert "x" * 4096 not in run.stdout
