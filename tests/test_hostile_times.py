"""Odd time values in every field the tap bookmarks or keys on, run twice.

Issue 23, items 2 and 8. For each stream with a time cursor or a time in its
primary key (audit_logs `timestamp`, usage `start_timestamp`, customer_costs
`start_timestamp`, the invoice streams' `start_timestamp`), the API sends odd
values: not a date, empty, a leap second, lower-case `t`/`z`, another fraction,
`+00:00`, `+01:00` (the same instant), year 9999, an offset that leaves the
years a UTC date can hold, and null. The tap runs, then runs again from the
first run's final state, and must:

- never be refused by its own state check in run 2 (nothing run 1 wrote is a
  bookmark the next run refuses);
- stop, when it stops, with one line naming the stream (exit 2), both times;
- never write one (customer, day, credit type) or one usage window twice,
  whatever the spelling of the instant (`check` in test_hostile also holds).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_tap
from tests.fake_metronome import FakeMetronomeApp, FakeMetronomeServer
from tests.test_hostile import SECRET, check, config_for, run_cli, small_data

#: A value, or how to make it from the value the API sent.
Odd = Any


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))


def lower(text: str) -> str:
    return text.replace("T", "t").replace("Z", "z")


def other_fraction(text: str) -> str:
    """`.000Z` where there was none, none where there was one."""
    moment = _moment(text).astimezone(UTC)
    if "." in text:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def plus_zero(text: str) -> str:
    return _moment(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def plus_one(text: str) -> str:
    """The same instant, one hour ahead of UTC."""
    moment = _moment(text).astimezone(UTC) + timedelta(hours=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S+01:00")


#: (case, the odd value or a function of the value sent).
ODD_VALUES: list[tuple[str, Odd]] = [
    ("not-a-date", "not-a-date"),
    ("empty", ""),
    ("leap-second", "2016-12-31T23:59:60Z"),
    ("lower-t-z", lower),
    ("other-fraction", other_fraction),
    ("plus-00-00", plus_zero),
    ("plus-01-00", plus_one),
    ("year-9999", "9999-12-31T23:59:59Z"),
    ("past-year-9999-in-utc", "9999-12-31T23:30:00-01:00"),
    ("null", None),
]

#: Per stream: the selected streams, the endpoint, the field, and the exit code
#: of both runs for each case (0: read and bookmarked; 2: one line, stopped).
STREAMS: dict[str, tuple[set[str], str, str, dict[str, int]]] = {
    "audit_logs": (
        {"audit_logs"},
        "/v1/auditLogs",
        "timestamp",
        {"not-a-date": 2, "empty": 2, "past-year-9999-in-utc": 2},
    ),
    "usage": (
        {"usage"},
        "/v1/usage",
        "start_timestamp",
        {"not-a-date": 2, "empty": 2, "past-year-9999-in-utc": 2, "null": 2},
    ),
    "customer_costs": (
        {"customer_costs"},
        "/costs",
        "start_timestamp",
        # A leap second of 2016 or a day of 9999 is outside the days asked for.
        {
            "not-a-date": 2,
            "empty": 2,
            "leap-second": 2,
            "year-9999": 2,
            "past-year-9999-in-utc": 2,
            "null": 2,
        },
    ),
    "invoices": (
        {"invoices", "invoice_line_items"},
        "/invoices",
        "start_timestamp",
        {"not-a-date": 2, "empty": 2, "past-year-9999-in-utc": 2, "null": 2},
    ),
}


def _value(odd: Odd, sent: Any) -> Any:
    return odd(sent) if callable(odd) else odd


def replace_first(
    fragment: str, field: str, odd: Odd
) -> Callable[[str, dict[str, Any]], Any]:
    """The first item of every page with `field` odd (a copy: the fake's data stays)."""

    def tamper(path: str, body: dict[str, Any]) -> Any:
        if fragment in path and body.get("data"):
            item = dict(body["data"][0])
            item[field] = _value(odd, item[field])
            body = {**body, "data": [item, *body["data"][1:]]}
        return body

    return tamper


def only_last(field: str, odd: Odd) -> Callable[[str, dict[str, Any]], Any]:
    """Audit log pages of one entry, the last, with `field` odd: the bookmark.

    Alone on its page, so that the sort check (an entry earlier than one listed
    before stops the run) does not speak for values such as 2016's leap second.
    """

    def tamper(path: str, body: dict[str, Any]) -> Any:
        if path == "/v1/auditLogs" and body.get("data"):
            item = dict(body["data"][-1])
            item[field] = _value(odd, item[field])
            body = {**body, "data": [item]}
        return body

    return tamper


def repeat_first(
    fragment: str, field: str, spell: Callable[[str], str]
) -> Callable[[str, dict[str, Any]], Any]:
    """The first item of every page listed again right after it, `field` spelled anew."""

    def tamper(path: str, body: dict[str, Any]) -> Any:
        if fragment in path and body.get("data"):
            again = dict(body["data"][0])
            again[field] = spell(again[field])
            data = body["data"]
            body = {**body, "data": [data[0], again, *data[1:]]}
        return body

    return tamper


@pytest.fixture(scope="module")
def discovered(tmp_path_factory) -> dict[str, Any]:
    with FakeMetronomeServer(FakeMetronomeApp(small_data())) as server:
        run = run_tap(
            config_for(server.url),
            tmp_path_factory.mktemp("discover"),
            args=("--discover",),
        )
    assert run.returncode == 0, run.stderr
    catalog: dict[str, Any] = json.loads(run.stdout)
    return catalog


def selecting(catalog: dict[str, Any], selected: set[str]) -> str:
    catalog = json.loads(json.dumps(catalog))
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in selected
    return json.dumps(catalog)


def run_twice(
    tmp_path: Path,
    tamper: Callable[[str, dict[str, Any]], Any],
    catalog: str,
    **overrides: Any,
) -> tuple[Any, Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """Two runs, the second from the first's final state; both runs' messages."""
    (tmp_path / "catalog.json").write_text(catalog)
    args = ("--catalog", str(tmp_path / "catalog.json"))
    app = FakeMetronomeApp(small_data(), token=SECRET, tamper=tamper)
    with FakeMetronomeServer(app) as server:
        config = config_for(server.url, **overrides)
        first = run_cli(tmp_path, config=config, args=args)
        states = [
            line for line in first.stdout.splitlines() if '"type":"STATE"' in line
        ]
        state = json.loads(states[-1])["value"] if states else {}
        second = run_cli(
            tmp_path, config=config, args=args, state_text=json.dumps(state)
        )
    return first, second, _messages(first), _messages(second)


def _messages(run: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def _errors(run: Any) -> list[str]:
    return [line for line in run.stderr.splitlines() if "| ERROR" in line]


CASES = [
    pytest.param(stream, case, odd, id=f"{stream}-{case}")
    for stream in STREAMS
    for case, odd in ODD_VALUES
]


@pytest.mark.slow
@pytest.mark.parametrize(("stream", "case", "odd"), CASES)
def test_an_odd_time_is_never_a_bookmark_the_next_run_refuses(
    tmp_path, discovered, stream, case, odd
):
    selected, fragment, field, stops = STREAMS[stream]
    tamper = (
        only_last(field, odd)
        if stream == "audit_logs"
        else replace_first(fragment, field, odd)
    )
    first, second, _, _ = run_twice(tmp_path, tamper, selecting(discovered, selected))
    code = stops.get(case, 0)
    for run in (first, second):
        check(run, code, stream if code else None)
        assert not any("state: " in line for line in _errors(run)), _errors(run)
        if code:
            assert len(_errors(run)) == 1, _errors(run)
            # The SDK syncs invoice_line_items first: "Stream invoice_line_items".
            assert f"Stream {stream.rstrip('s')}" in _errors(run)[0], _errors(run)


def _instant(text: str) -> datetime:
    return _moment(text).astimezone(UTC)


SPELLINGS = [
    ("lower-t-z", lower),
    ("other-fraction", other_fraction),
    ("plus-00-00", plus_zero),
    ("plus-01-00", plus_one),
]


@pytest.mark.parametrize(("case", "spell"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_one_cost_day_spelled_twice_is_one_row(tmp_path, discovered, case, spell):
    """Repeats are found by instant, and the day is written in one form."""
    first, second, *outputs = run_twice(
        tmp_path,
        repeat_first("/costs", "start_timestamp", spell),
        selecting(discovered, {"customer_costs"}),
    )
    for run, messages in zip((first, second), outputs, strict=True):
        check(run, 0, "listed twice")
        rows = [
            m["record"]
            for m in messages
            if m["type"] == "RECORD" and m["stream"] == "customer_costs"
        ]
        assert rows
        keys = [
            (r["customer_id"], _instant(r["start_timestamp"]), r["credit_type_id"])
            for r in rows
        ]
        assert len(keys) == len(set(keys))
        for row in rows:  # one form: UTC midnight, `T`, `Z`, no fraction
            day = _instant(row["start_timestamp"]).date()
            assert row["start_timestamp"] == f"{day}T00:00:00Z"
            assert row["end_timestamp"] == f"{day + timedelta(days=1)}T00:00:00Z"


@pytest.mark.slow
@pytest.mark.parametrize(("case", "spell"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_one_usage_window_spelled_twice_is_one_row(tmp_path, discovered, case, spell):
    first, second, *outputs = run_twice(
        tmp_path,
        repeat_first("/v1/usage", "start_timestamp", spell),
        selecting(discovered, {"usage"}),
    )
    for run, messages in zip((first, second), outputs, strict=True):
        check(run, 0, "listed")
        rows = [
            m["record"]
            for m in messages
            if m["type"] == "RECORD" and m["stream"] == "usage"
        ]
        assert rows
        keys = [
            (r["customer_id"], r["billable_metric_id"], _instant(r["start_timestamp"]))
            for r in rows
        ]
        assert len(keys) == len(set(keys))
