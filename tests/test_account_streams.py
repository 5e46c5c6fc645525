"""Account-wide incremental streams: usage and the audit log.

Records equal the fake account's data (values exact), each stream costs the
requests the API's paging allows and no more, an incremental run after late
usage and new audit entries reads only the lookback and the new entries, and a
kill mid-stream resumes without loss.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tap_metronome.errors import EXIT_INPUT
from tests.conftest import catalog_selecting, run_tap, run_until_killed, tap_config
from tests.fake_metronome import EXACT_AMOUNTS, FakeData
from tests.stream_classes import ACCOUNT_INCREMENTAL, names

#: usage and audit_logs.
ACCOUNT = set(names(ACCOUNT_INCREMENTAL))
TODAY = datetime.now(UTC).date()


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def expected_usage(
    data: FakeData, start: date, end: date, *, hours: bool = False
) -> dict[tuple[str, str, str], dict[str, Any]]:
    step = timedelta(hours=1) if hours else timedelta(days=1)
    rows = {}
    for customer_id, metric in data.usage_series(None, None):
        moment = midnight(start)
        while moment < midnight(end):
            stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            rows[customer_id, metric["id"], stamp] = data.usage_row(
                customer_id, metric, moment, moment + step
            )
            moment += step
    return rows


def usage_by_key(rows) -> dict[tuple[str, str, str], dict[str, Any]]:
    keyed = {
        (r["customer_id"], r["billable_metric_id"], r["start_timestamp"]): r
        for r in rows
    }
    assert len(keyed) == len(rows), "a usage row was emitted twice"
    return keyed


def recent_account(customers: int = 12, entries: int = 30, **options) -> FakeData:
    """An account whose audit log covers the last weeks."""
    data = FakeData.generate(customers=customers, archived=2, idle_every=5, **options)
    data.audit_logs.clear()
    data.add_audit_entries(entries, after=midnight(TODAY - timedelta(days=40)))
    return data


def usage_bodies(server) -> list[dict[str, Any]]:
    return [fields for path, fields in server.app.requests if path == "/v1/usage"]


def audit_queries(server) -> list[dict[str, Any]]:
    return [fields for path, fields in server.app.requests if path == "/v1/auditLogs"]


@pytest.fixture(scope="module")
def first_sync(tmp_path_factory):
    from tests.fake_metronome import FakeMetronomeApp, FakeMetronomeServer

    data = recent_account()
    start = TODAY - timedelta(days=60)
    run_dir = tmp_path_factory.mktemp("account")
    with FakeMetronomeServer(FakeMetronomeApp(data, empty_page_every=0)) as server:
        config = tap_config(server, start_date=start.isoformat(), end_date=None)
        catalog = catalog_selecting(config, run_dir, ACCOUNT)
        server.app.reset_requests()
        run = run_tap(config, run_dir, catalog=catalog)
        requests = list(server.app.requests)
    assert run.returncode == 0, run.stderr[-3000:]
    return data, start, run, requests


def test_usage_equals_the_account_with_exact_values(first_sync):
    data, start, run, _ = first_sync
    got = usage_by_key(run.records("usage"))
    assert got == expected_usage(data, start, TODAY + timedelta(days=1))
    values = [r["value"] for r in got.values()]
    assert all(isinstance(v, int | Decimal) or v is None for v in values)
    assert any(v in EXACT_AMOUNTS for v in values), "the exact amounts arrived"
    # Exact numbers in the output: Decimal('1E-7') is written as 1E-7, not 1e-07.
    assert "0.0000001" in run.stdout or "1E-7" in run.stdout


def test_usage_costs_one_request_per_series_and_no_customer_fan_out(first_sync):
    data, start, _, requests = first_sync
    bodies = [fields for path, fields in requests if path == "/v1/usage"]
    assert len(bodies) == len(data.usage_series(None, None))
    assert not any(path.startswith("/v1/customers") for path, _ in requests)
    first = bodies[0]
    assert first["window_size"] == "day"
    assert first["starting_on"] == f"{start}T00:00:00Z"
    assert first["ending_before"] == f"{TODAY + timedelta(days=1)}T00:00:00Z"
    assert "customer_ids" not in first
    assert "limit" not in first  # the endpoint has no page size


def test_audit_logs_equal_the_account_and_end_on_the_empty_page(first_sync):
    data, _, run, requests = first_sync
    assert run.records("audit_logs") == data.audit_logs
    queries = [fields for path, fields in requests if path == "/v1/auditLogs"]
    # 30 entries at 100 a page, then the empty last page (which has a cursor).
    assert len(queries) == 2
    assert queries[0]["sort"] == "date_asc"
    assert "starting_on" in queries[0]
    assert "starting_on" not in queries[1]
    assert "next_page" in queries[1]


def test_bookmarks_are_the_query_end_and_the_last_entry(first_sync):
    data, _, run, _ = first_sync
    bookmarks = run.final_state["bookmarks"]
    assert bookmarks["usage"]["synced_until"] == (TODAY + timedelta(days=1)).isoformat()
    assert (
        bookmarks["audit_logs"]["replication_key_value"]
        == data.audit_logs[-1]["timestamp"]
    )


@pytest.mark.slow
def test_an_incremental_run_reads_the_lookback_and_new_entries_only(fake_api, tmp_path):
    """Late usage and new audit entries (one in the bookmark's own second) between
    runs: the second run re-reads usage from its bookmark minus the lookback and
    the audit log from its bookmark; the union downstream has no duplicate and
    equals the account."""
    data = recent_account()
    server = fake_api(data, empty_page_every=0)
    start = TODAY - timedelta(days=90)
    config = tap_config(server, start_date=start.isoformat(), end_date=None)
    catalog = catalog_selecting(config, tmp_path, ACCOUNT)
    first = run_tap(config, tmp_path, catalog=catalog)
    assert first.returncode == 0, first.stderr[-3000:]

    data.revise_costs(TODAY - timedelta(days=3))  # late usage events
    added = data.add_audit_entries(4, same_second=True)
    server.app.reset_requests()
    second = run_tap(config, tmp_path, catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr[-3000:]

    bodies = usage_bodies(server)
    assert {b["starting_on"] for b in bodies} == {
        f"{TODAY + timedelta(days=1) - timedelta(days=35)}T00:00:00Z"
    }
    assert len(bodies) == len(data.usage_series(None, None))
    queries = audit_queries(server)
    assert (
        queries[0]["starting_on"]
        == first.final_state["bookmarks"]["audit_logs"]["replication_key_value"]
    )
    # The entry at the bookmark's second is read again (and upserts), the new
    # entries arrive, nothing older is read.
    seen = [e["id"] for e in second.records("audit_logs")]
    at_bookmark = [
        e["id"]
        for e in data.audit_logs
        if e["timestamp"] == queries[0]["starting_on"] and e not in added
    ]
    assert seen == at_bookmark + [e["id"] for e in added]

    union = usage_by_key(first.records("usage")) | usage_by_key(second.records("usage"))
    assert union == expected_usage(data, start, TODAY + timedelta(days=1))
    revised = [
        r
        for r in second.records("usage")
        if r["start_timestamp"] >= f"{TODAY - timedelta(days=3)}"
        and r["value"] is not None
    ]
    assert revised, "late usage re-read"
    entries = {e["id"]: e for e in first.records("audit_logs")} | {
        e["id"]: e for e in second.records("audit_logs")
    }
    assert list(entries.values()) == data.audit_logs


def test_hour_windows_and_customer_ids(fake_api, tmp_path):
    data = recent_account(customers=4)
    server = fake_api(data)
    customer = data.customers[1]["id"]
    start = TODAY - timedelta(days=2)
    config = tap_config(
        server,
        start_date=start.isoformat(),
        end_date=TODAY.isoformat(),
        usage_window_size="HOUR",
        customer_ids=[customer],
    )
    run = run_tap(
        config, tmp_path, catalog=catalog_selecting(config, tmp_path, {"usage"})
    )
    assert run.returncode == 0, run.stderr[-3000:]
    expected = {
        key: row
        for key, row in expected_usage(data, start, TODAY, hours=True).items()
        if key[0] == customer
    }
    assert usage_by_key(run.records("usage")) == expected
    assert len(expected) == 48 * sum(
        1 for c, _ in data.usage_series(None, None) if c == customer
    )
    body = usage_bodies(server)[0]
    assert body["window_size"] == "hour"
    assert json.loads(body["customer_ids"]) == [customer]


@pytest.mark.slow
def test_a_kill_mid_audit_log_resumes_without_loss(fake_api, tmp_path):
    """STATE is written every 1,000 entries while the sorted listing runs: killed
    after one, the next run continues from it, and the union is the whole log."""
    data = recent_account(customers=3, entries=2600)
    server = fake_api(data, latency=0.01)
    config = tap_config(
        server, start_date=(TODAY - timedelta(days=60)).isoformat(), end_date=None
    )
    catalog = catalog_selecting(config, tmp_path, {"audit_logs"})
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    partial = run_until_killed(
        config,
        tmp_path,
        lambda ms: sum(m.get("stream") == "audit_logs" for m in ms) >= 1500,
        args=("--catalog", "catalog.json"),
    )
    states = [m["value"] for m in partial if m["type"] == "STATE"]
    mark = states[-1]["bookmarks"]["audit_logs"]["replication_key_value"]
    assert mark == data.audit_logs[999]["timestamp"]
    server.app.reset_requests()
    resumed = run_tap(config, tmp_path, catalog=catalog, state=states[-1])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert audit_queries(server)[0]["starting_on"] == mark
    partial_records = [m["record"] for m in partial if m["type"] == "RECORD"]
    union = {e["id"]: e for e in partial_records} | {
        e["id"]: e for e in resumed.records("audit_logs")
    }
    assert sorted(union) == sorted(e["id"] for e in data.audit_logs)
    assert len(resumed.records("audit_logs")) < len(data.audit_logs)


@pytest.mark.parametrize(
    ("stream_state", "needle"),
    [
        ({"usage": {"synced_until": "yesterday"}}, "bookmarks.usage.synced_until"),
        ({"usage": {"synced_until": 20240101}}, "bookmarks.usage.synced_until"),
        (
            {"audit_logs": {"replication_key_value": "soon"}},
            "bookmarks.audit_logs.replication_key_value",
        ),
    ],
)
def test_an_unreadable_bookmark_stops_with_one_line(
    fake_api, tmp_path, stream_state, needle
):
    server = fake_api(recent_account(customers=2))
    config = tap_config(server)
    run = run_tap(config, tmp_path, state={"bookmarks": stream_state})
    assert run.returncode == EXIT_INPUT
    last = run.stderr.strip().splitlines()[-1]
    assert needle in last, last
    assert "Traceback" not in run.stderr
    assert not any(m["type"] == "RECORD" for m in run.messages)


def test_a_future_bookmark_is_dropped_with_a_warning(fake_api, tmp_path):
    data = recent_account(customers=2)
    server = fake_api(data)
    start = TODAY - timedelta(days=5)
    config = tap_config(server, start_date=start.isoformat(), end_date=None)
    state = {
        "bookmarks": {
            "usage": {"synced_until": "2999-01-01"},
            "audit_logs": {"replication_key_value": "2999-01-01T00:00:00Z"},
        }
    }
    run = run_tap(
        config,
        tmp_path,
        catalog=catalog_selecting(config, tmp_path, ACCOUNT),
        state=state,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "usage bookmark 2999-01-01 is in the future" in run.stderr
    assert "audit_logs bookmark 2999-01-01T00:00:00Z is in the future" in run.stderr
    assert usage_bodies(server)[0]["starting_on"] == f"{start}T00:00:00Z"
    assert "2999" not in json.dumps(run.final_state)


def test_a_bad_window_size_is_one_line_naming_the_setting(fake_api, tmp_path):
    server = fake_api(FakeData.generate(customers=1, archived=0))
    run = run_tap(tap_config(server, usage_window_size="minute"), tmp_path)
    assert run.returncode == EXIT_INPUT
    assert "usage_window_size: minute is not day or hour" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_usage_series_listed_again_is_skipped_once_counted_and_logged(
    fake_api, tmp_path
):
    """The API repeats a row within a page, and a whole series on a later page:
    each row is emitted once, and the repeats are counted and logged."""
    pages: list[list[dict[str, Any]]] = []

    def repeat(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/usage" and body["data"]:
            pages.append(list(body["data"]))
            if len(pages) == 1:
                body["data"].append(dict(body["data"][0]))
            elif len(pages) == 3:
                body["data"] = pages[0] + body["data"]
        return body

    data = recent_account(customers=4)
    server = fake_api(data, empty_page_every=0, tamper=repeat)
    start = TODAY - timedelta(days=7)
    config = tap_config(
        server, start_date=start.isoformat(), end_date=TODAY.isoformat()
    )
    run = run_tap(
        config, tmp_path, catalog=catalog_selecting(config, tmp_path, {"usage"})
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert usage_by_key(run.records("usage")) == expected_usage(data, start, TODAY)
    assert "listed twice" in run.stderr
    assert "again; skipped 7 rows already emitted" in run.stderr
    assert "8 repeated rows skipped" in run.stderr


def test_todays_late_usage_is_read_again_by_the_next_run(fake_api, tmp_path):
    """The bookmark is the end of today, and the smallest lookback (1 day) still
    re-reads today: usage that arrives later today is not lost."""
    data = recent_account(customers=3)
    server = fake_api(data, empty_page_every=0)
    start = TODAY - timedelta(days=5)
    config = tap_config(
        server, start_date=start.isoformat(), end_date=None, usage_lookback_days=1
    )
    catalog = catalog_selecting(config, tmp_path, {"usage"})
    first = run_tap(config, tmp_path, catalog=catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    data.revise_costs(TODAY)  # more of today's usage arrives after the run
    server.app.reset_requests()
    second = run_tap(config, tmp_path, catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {b["starting_on"] for b in usage_bodies(server)} == {f"{TODAY}T00:00:00Z"}
    today = expected_usage(data, TODAY, TODAY + timedelta(days=1))
    assert usage_by_key(second.records("usage")) == today
    before = usage_by_key(first.records("usage"))
    assert any(before[key]["value"] != row["value"] for key, row in today.items())


def test_widening_customer_ids_reads_the_new_customers_from_start_date(
    fake_api, tmp_path
):
    """The usage bookmark is for the customers it was read for: with another
    `customer_ids`, the next run starts from start_date, not the lookback."""
    data = recent_account(customers=3)
    server = fake_api(data, empty_page_every=0)
    start = TODAY - timedelta(days=90)
    one = data.customers[1]["id"]
    narrow = tap_config(
        server, start_date=start.isoformat(), end_date=None, customer_ids=[one]
    )
    catalog = catalog_selecting(narrow, tmp_path, {"usage"})
    first = run_tap(narrow, tmp_path, catalog=catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.final_state["bookmarks"]["usage"]["customer_filter"] != "all"

    wide = tap_config(server, start_date=start.isoformat(), end_date=None)
    server.app.reset_requests()
    second = run_tap(wide, tmp_path, catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert usage_bodies(server)[0]["starting_on"] == f"{start}T00:00:00Z"
    assert "customer_ids changed since the bookmark" in second.stderr
    assert usage_by_key(second.records("usage")) == expected_usage(
        data, start, TODAY + timedelta(days=1)
    )
    assert second.final_state["bookmarks"]["usage"]["customer_filter"] == "all"

    server.app.reset_requests()  # the same filter again: only the lookback
    third = run_tap(wide, tmp_path, catalog=catalog, state=second.final_state)
    assert third.returncode == 0, third.stderr[-3000:]
    assert usage_bodies(server)[0]["starting_on"] == (
        f"{TODAY + timedelta(days=1) - timedelta(days=35)}T00:00:00Z"
    )


def test_an_audit_entry_out_of_order_is_written_then_stops_the_run(fake_api, tmp_path):
    """STATE written mid-listing is only safe when the listing is sorted: an entry
    earlier than one already emitted is written, then the run stops naming the
    stream, with no traceback, and nothing listed is lost."""
    data = recent_account(customers=2, entries=300)
    late = data.audit_logs[50]

    def move(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/auditLogs" and body["data"]:
            ids = [e["id"] for e in body["data"]]
            if late["id"] in ids:
                body["data"].remove(late)
            elif data.audit_logs[150]["id"] in ids:
                body["data"].insert(70, late)
        return body

    server = fake_api(data, empty_page_every=0, tamper=move)
    config = tap_config(
        server, start_date=(TODAY - timedelta(days=60)).isoformat(), end_date=None
    )
    run = run_tap(
        config, tmp_path, catalog=catalog_selecting(config, tmp_path, {"audit_logs"})
    )
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert "Stream audit_logs" in last, last
    assert late["id"] in last, last
    assert "Traceback" not in run.stderr
    emitted = [e["id"] for e in run.records("audit_logs")]
    assert emitted[-1] == late["id"]
    assert set(emitted) == {e["id"] for e in data.audit_logs[:170]}


def audit_logs_from(fake_api, tmp_path, bookmark: str):
    """A run of audit_logs (start_date 60 days back) from a state with `bookmark`."""
    data = recent_account(customers=2)
    server = fake_api(data)
    config = tap_config(
        server, start_date=(TODAY - timedelta(days=60)).isoformat(), end_date=None
    )
    run = run_tap(
        config,
        tmp_path,
        catalog=catalog_selecting(config, tmp_path, {"audit_logs"}),
        state={"bookmarks": {"audit_logs": {"replication_key_value": bookmark}}},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return data, server, run


@pytest.mark.parametrize(
    "typed", ["{day}t10:00:00z", " {day}T10:00:00Z", "{day}T12:00:00+02:00"]
)
def test_an_audit_bookmark_typed_loosely_is_read_in_the_tap_form(
    fake_api, tmp_path, typed
):
    day = TODAY - timedelta(days=20)
    data, server, run = audit_logs_from(fake_api, tmp_path, typed.format(day=day))
    assert audit_queries(server)[0]["starting_on"] == f"{day}T10:00:00Z"
    assert run.records("audit_logs") == [
        e for e in data.audit_logs if e["timestamp"] >= f"{day}T10:00:00Z"
    ]


def test_an_audit_bookmark_later_today_is_in_the_future(fake_api, tmp_path):
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    data, server, run = audit_logs_from(fake_api, tmp_path, later)
    start = TODAY - timedelta(days=60)
    assert f"audit_logs bookmark {later} is in the future" in run.stderr
    assert audit_queries(server)[0]["starting_on"] == f"{start}T00:00:00Z"
    assert run.records("audit_logs") == data.audit_logs
