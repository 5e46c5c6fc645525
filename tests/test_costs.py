"""customer_costs: reshaping, windows, lookback, resume, new customers, state size."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tap_metronome.bookmarks import CustomerBookmarks
from tap_metronome.records import cost_rows
from tap_metronome.settings import parse_settings
from tap_metronome.streams import CustomerCostsStream
from tap_metronome.windows import (
    Window,
    day_windows,
    end_of_today,
    start_for,
)
from tests.conftest import run_tap, run_until_killed, tap_config
from tests.fake_metronome import EXACT_COSTS, FakeData
from tests.stream_classes import (
    ACCOUNT_LISTINGS,
    ACCOUNT_WIDE_PATHS,
    MAX_STATE_MESSAGES,
    PER_CUSTOMER,
    PER_PLAN,
    paths,
)

START = "2024-01-01"
END = "2024-12-31"  # exclusive: 365 days of 2024 (a leap year), 4 windows of <= 100
LOOKBACK = 35


def costs_requests(app) -> list[tuple[str, str, str]]:
    """(customer id, starting_on, ending_before) of every costs request served."""
    with app.lock:
        return [
            (path.split("/")[3], args["starting_on"], args["ending_before"])
            for path, args in app.requests
            if path.endswith("/costs")
        ]


def by_key(records) -> dict[tuple, dict]:
    return {
        (r["customer_id"], r["start_timestamp"], r["credit_type_id"]): r
        for r in records
    }


# -- windows ---------------------------------------------------------------------------


def test_windows_cover_a_leap_year_without_gaps_or_overlap():
    windows = list(day_windows(date(2024, 1, 1), date(2025, 1, 1), 100))
    assert [w.days for w in windows] == [100, 100, 100, 66]
    assert windows[0].start == date(2024, 1, 1)
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert windows[-1].end == date(2025, 1, 1)
    leap = Window(date(2024, 2, 28), date(2024, 3, 1))
    assert leap.days == 2
    assert leap.params() == {
        "starting_on": "2024-02-28T00:00:00Z",
        "ending_before": "2024-03-01T00:00:00Z",
    }


def test_window_length_follows_page_size():
    assert [w.days for w in day_windows(date(2024, 1, 1), date(2024, 1, 11), 3)] == [
        3,
        3,
        3,
        1,
    ]
    assert list(day_windows(date(2024, 1, 1), date(2024, 1, 1), 3)) == []


NOW = datetime(2026, 11, 22, 13, 5, tzinfo=UTC)


def costs_days(start_date: str, end_date: str | None = None) -> tuple[date, date]:
    config = {"auth_token": "t", "start_date": start_date, "end_date": end_date}
    settings, errors, _ = parse_settings(config, now=NOW)
    assert settings is not None, errors
    return settings.first_day(), settings.end_day(NOW)


def test_start_and_end_dates_align_to_utc_days():
    assert costs_days("2024-02-29")[0] == date(2024, 2, 29)
    assert costs_days("2024-02-29T23:59:59Z")[0] == date(2024, 2, 29)
    assert costs_days("2024-03-01T01:00:00+02:00")[0] == date(2024, 2, 29)
    # end_date is exclusive: midnight ends the previous day, a time inside a day
    # includes that whole day (costs are whole days).
    assert costs_days("2024-01-01", "2024-03-01")[1] == date(2024, 3, 1)
    assert costs_days("2024-01-01", "2024-03-01T00:00:00Z")[1] == date(2024, 3, 1)
    assert costs_days("2024-01-01", "2024-02-29T12:00:00Z")[1] == date(2024, 3, 1)


def test_default_end_includes_today():
    assert end_of_today(NOW) == date(2026, 11, 23)
    assert costs_days("2024-01-01")[1] == date(2026, 11, 23)


def test_end_date_never_reaches_past_today():
    """Days after today cannot have costs: a later end_date reads through today."""
    for end_date in (
        "2030-01-01",
        "9999-12-31",
        "9999-12-31T23:59:59Z",
        "2026-11-23T00:00:01Z",
    ):
        assert costs_days("2024-01-01", end_date)[1] == date(2026, 11, 23)


def test_lookback_and_backfill_start():
    assert start_for(None, start=date(2024, 1, 1), lookback_days=35) == date(2024, 1, 1)
    assert start_for(
        date(2024, 6, 1), start=date(2024, 1, 1), lookback_days=35
    ) == date(2024, 4, 27)
    assert start_for(
        date(2024, 1, 10), start=date(2024, 1, 1), lookback_days=35
    ) == date(2024, 1, 1)


def test_bookmarks_round_trip_grouped_by_date():
    bookmarks = CustomerBookmarks()
    bookmarks.advance("b", date(2024, 3, 1))
    bookmarks.advance("a", date(2024, 3, 1))
    bookmarks.advance("c", date(2024, 2, 1))
    bookmarks.advance("c", date(2024, 1, 1))  # never goes back
    state = bookmarks.to_state()
    assert state == {"2024-02-01": ["c"], "2024-03-01": ["a", "b"]}
    again, future = CustomerBookmarks.from_state(
        {"synced_until": state},
        latest=date(2024, 3, 1),
        stream="customer_costs",
        key="synced_until",
    )
    assert again.to_state() == state
    assert future == {}
    assert again.keep_only(["a"]) == 2
    assert again.to_state() == {"2024-03-01": ["a"]}


def test_bookmarks_of_customers_no_longer_listed_are_counted_not_read():
    """A state may hold millions of customers long gone (issue 23, item 11): they
    are left out as the bookmarks are read, not copied and then deleted."""
    upper = str(uuid.UUID(int=7)).upper()
    state = {
        "synced_until": {"2024-03-01": ["a", "gone-1", upper], "2024-02-01": ["gone-2"]}
    }
    bookmarks, future = CustomerBookmarks.from_state(
        state,
        latest=date(2024, 3, 1),
        stream="customer_costs",
        key="synced_until",
        listed=["a", str(uuid.UUID(int=7))],
    )
    assert bookmarks.to_state() == {"2024-03-01": sorted(["a", str(uuid.UUID(int=7))])}
    assert bookmarks.forgotten == 2
    assert future == {}


def test_a_clean_state_is_kept_as_it_is_not_copied():
    """Checking a large state builds no second copy of it; a state with future
    bookmarks or ids in another case is rebuilt without them."""
    grouped = {"2024-03-01": ["a", str(uuid.UUID(int=1))], "2024-02-01": ["b"]}
    kept, future = CustomerBookmarks.checked_state(
        {"synced_until": grouped}, latest=date(2024, 3, 1), stream="customer_costs",
        key="synced_until",
    )  # fmt: skip
    assert kept is grouped
    assert future == {}
    upper = {"2024-03-01": [str(uuid.UUID(int=1)).upper()], "2099-01-01": ["b"]}
    kept, future = CustomerBookmarks.checked_state(
        {"synced_until": upper}, latest=date(2024, 3, 1), stream="customer_costs",
        key="synced_until",
    )  # fmt: skip
    assert kept == {"2024-03-01": [str(uuid.UUID(int=1))]}
    assert future == {"b": date(2099, 1, 1)}


@pytest.mark.slow
def test_a_large_state_of_customers_gone_is_forgotten_once(fake_api, tmp_path):
    """200,000 bookmarks of customers no longer listed: dropped in the run, said
    once, in no STATE message but the SDK's echo of the state it was given."""
    server = fake_api(FakeData.generate(customers=5, archived=0, plans=0))
    config = tap_config(server)
    gone = [str(uuid.UUID(int=n + (1 << 100))) for n in range(200_000)]
    listed = [c["id"] for c in server.app.data.customers]
    state = {
        "bookmarks": {
            "customer_costs": {"synced_until": {"2024-06-03": gone + listed[:2]}}
        }
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    run = run_tap(config, tmp_path, args=("--state", "state.json"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert (
        run.stderr.count("forgot the bookmarks of 200000 customers no longer listed")
        == 1
    )
    states = [m["value"] for m in run.messages if m["type"] == "STATE"]
    # Echoed only until the customers listing is read (the SDK's echo of the
    # state given, an account-wide stream before any per-customer one).
    listed_at = next(
        n
        for n, m in enumerate(run.messages)
        if m["type"] == "RECORD" and "customer_id" in m["record"]
    )
    echoing = [
        n
        for n, m in enumerate(run.messages)
        if m["type"] == "STATE" and gone[0] in json.dumps(m["value"])
    ]
    assert echoing, "the state given is echoed at the start (the SDK's own)"
    assert max(echoing) < listed_at, "dead bookmarks carried after the listing"
    final = states[-1]["bookmarks"]["customer_costs"]["synced_until"]
    assert sorted(cid for ids in final.values() for cid in ids) == sorted(listed)


# -- reshaping ---------------------------------------------------------------------------


def test_missing_optional_fields_become_nulls():
    item = {
        "start_timestamp": "2024-01-01T00:00:00Z",
        "end_timestamp": "2024-01-02T00:00:00Z",
        "credit_types": {"ct": {}},
    }
    assert cost_rows("cust", item, where="test") == [
        {
            "customer_id": "cust",
            "start_timestamp": "2024-01-01T00:00:00Z",
            "end_timestamp": "2024-01-02T00:00:00Z",
            "credit_type_id": "ct",
            "credit_type_name": None,
            "cost": None,
            "line_item_breakdown": None,
        }
    ]


def reassemble(rows) -> dict[tuple[str, str], dict]:
    """Rows back into the API's items, keyed by (customer, day)."""
    items: dict[tuple[str, str], dict] = {}
    for row in rows:
        item = items.setdefault(
            (row["customer_id"], row["start_timestamp"]),
            {
                "start_timestamp": row["start_timestamp"],
                "end_timestamp": row["end_timestamp"],
                "credit_types": {},
            },
        )
        entry = {
            "name": row["credit_type_name"],
            "cost": row["cost"],
            "line_item_breakdown": row["line_item_breakdown"],
        }
        item["credit_types"][row["credit_type_id"]] = {
            k: v for k, v in entry.items() if v is not None
        }
    return items


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A backfill of 2024 for 24 customers (2 unsupported, 2 idle, 1 deleted)."""
    from tests.fake_metronome import FakeMetronomeApp, FakeMetronomeServer

    data = FakeData.generate(
        customers=20, archived=4, unsupported_every=12, idle_every=10
    )
    data.deleted.add(data.customers[3]["id"])
    with FakeMetronomeServer(FakeMetronomeApp(data)) as server:
        run = run_tap(
            tap_config(server, start_date=START, end_date=END),
            tmp_path_factory.mktemp("full"),
        )
        requests = costs_requests(server.app)
    assert run.returncode == 0, run.stderr
    return data, run, requests


@pytest.mark.slow
def test_rows_reassemble_into_the_api_items_exactly(full_run):
    data, run, _ = full_run
    rows = run.records("customer_costs")
    skipped = data.unsupported | data.deleted
    expected = {
        (cid, item["start_timestamp"]): item
        for cid in data.all_customer_ids()
        if cid not in skipped
        for item in data.costs(cid, date(2024, 1, 1), date(2024, 12, 31))
        if item["credit_types"]
    }
    assert reassemble(rows) == expected
    assert len(by_key(rows)) == len(rows), "primary keys are unique"
    costs = {r["cost"] for r in rows} | {
        line["cost"] for r in rows for line in (r["line_item_breakdown"] or [])
    }
    assert set(EXACT_COSTS) & costs, "exact amounts travelled as Decimal"
    assert all(isinstance(c, int | Decimal) for c in costs if c is not None)
    # Idle customers are synced (bookmarked) but have no rows.
    assert not {r["customer_id"] for r in rows} & data.idle


@pytest.mark.slow
def test_skipped_customers_are_named_and_counted(full_run):
    data, run, _ = full_run
    for customer_id in data.unsupported:
        assert (
            f"Skipping customer {customer_id} in customer_costs: HTTP 400: Costs are not supported"
            in run.stderr
        )
    (deleted,) = data.deleted
    assert (
        f"Skipping customer {deleted} in customer_costs: HTTP 404: Customer not found"
        in run.stderr
    )
    assert "customer_costs: 21 customers synced, 3 skipped" in run.stderr
    final = run.final_state["bookmarks"]["customer_costs"]["synced_until"]
    assert sorted(final["2024-12-31"]) == sorted(
        set(data.all_customer_ids()) - data.unsupported - data.deleted
    )


@pytest.mark.slow
def test_backfill_requests_are_the_windows(full_run):
    data, _, requests = full_run
    windows = [
        w.params() for w in day_windows(date(2024, 1, 1), date(2024, 12, 31), 100)
    ]
    expected = []
    for cid in data.all_customer_ids():
        for window in windows:
            expected.append((cid, window["starting_on"], window["ending_before"]))
            if cid in data.unsupported | data.deleted:
                break  # the first answer skips the customer
    assert sorted(requests) == sorted(expected)  # no request repeated, none missing


@pytest.mark.slow
def test_state_messages_are_bounded_and_cover_written_records(full_run):
    _, run, _ = full_run
    states = [m for m in run.messages if m["type"] == "STATE"]
    # costs, invoices and invoice_line_items write bookmarks about 20 times each;
    # every other stream once.
    assert len(states) <= MAX_STATE_MESSAGES
    # Every customer named in a STATE message already had all its rows written.
    written: set[str] = set()
    rows_by_customer: dict[str, int] = {}
    for row in run.records("customer_costs"):
        rows_by_customer[row["customer_id"]] = (
            rows_by_customer.get(row["customer_id"], 0) + 1
        )
    seen_rows: dict[str, int] = {}
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == "customer_costs":
            cid = message["record"]["customer_id"]
            seen_rows[cid] = seen_rows.get(cid, 0) + 1
        if message["type"] == "STATE":
            synced = (
                message["value"]["bookmarks"]
                .get("customer_costs", {})
                .get("synced_until", {})
            )
            for customer_ids in synced.values():
                for cid in customer_ids:
                    assert seen_rows.get(cid, 0) == rows_by_customer.get(cid, 0)
                    written.add(cid)
    assert written


# -- incremental -------------------------------------------------------------------------


@pytest.mark.slow
def test_incremental_run_rereads_exactly_the_lookback_and_picks_up_changes(
    fake_api, tmp_path
):
    data = FakeData.generate(customers=8, archived=2)
    server = fake_api(data)
    config = tap_config(server, start_date=START, end_date=END, lookback_days=LOOKBACK)
    (tmp_path / "1").mkdir()
    first = run_tap(config, tmp_path / "1")
    assert first.returncode == 0, first.stderr
    assert len(costs_requests(server.app)) == 10 * 4

    end = date(2024, 12, 31)
    data.revise_costs(since=end - timedelta(days=10))
    server.app.reset_requests()
    (tmp_path / "2").mkdir()
    second = run_tap(config, tmp_path / "2", state=first.final_state)
    assert second.returncode == 0, second.stderr
    since = (end - timedelta(days=LOOKBACK)).isoformat() + "T00:00:00Z"
    # The 2 archived customers were archived in 2023, long before their bookmark
    # minus the lookback: their costs cannot change, and cost no request.
    active = [c["id"] for c in data.customers]
    assert sorted(costs_requests(server.app)) == sorted(
        (cid, since, "2024-12-31T00:00:00Z") for cid in active
    )
    assert "2 archived customers not re-read" in second.stderr
    # A daily run: one costs request per active customer plus the listings
    # (customers: active and archived; plans, each of the 4 plans' per-plan
    # endpoints, each pricing catalog listing), and one request per active
    # customer for each other per-customer endpoint: customer plans, invoices
    # (shared by invoice_line_items), contracts and balances. The 2 archived
    # customers, read by the first run years after archiving, are settled in
    # every per-customer stream (tests/test_archived.py).
    # (usage and audit_logs are counted in tests/test_account_streams.py.)
    per_customer = paths(PER_CUSTOMER) - {CustomerCostsStream.path}
    assert server.app.count(lambda p: p not in ACCOUNT_WIDE_PATHS) == (
        8 + 2 + 1 + 4 * len(paths(PER_PLAN)) + len(ACCOUNT_LISTINGS)
    ) + 8 * len(per_customer)

    rows = second.records("customer_costs")
    assert {r["start_timestamp"] for r in rows} <= {
        f"{(end - timedelta(days=d)).isoformat()}T00:00:00Z"
        for d in range(1, LOOKBACK + 1)
    }
    expected = {
        (cid, item["start_timestamp"]): item
        for cid in active  # archived customers' costs are not re-read
        for item in data.costs(cid, end - timedelta(days=LOOKBACK), end)
        if item["credit_types"]
    }
    assert reassemble(rows) == expected
    # The revised days really changed, and the second run carries the new values.
    before = by_key(first.records("customer_costs"))
    after = by_key(rows)
    changed = [k for k in after if k in before and after[k] != before[k]]
    assert changed
    assert (
        second.final_state["bookmarks"]["customer_costs"]["synced_until"]
        == (first.final_state["bookmarks"]["customer_costs"]["synced_until"])
    )


@pytest.mark.slow
def test_idle_customer_bookmark_advances(fake_api, tmp_path):
    data = FakeData.generate(customers=3, archived=0, idle_every=3)
    server = fake_api(data)
    run = run_tap(tap_config(server, start_date=START, end_date=END), tmp_path)
    (idle,) = data.idle
    synced = run.final_state["bookmarks"]["customer_costs"]["synced_until"]
    assert idle in synced["2024-12-31"]
    assert not [r for r in run.records("customer_costs") if r["customer_id"] == idle]


@pytest.mark.slow
def test_new_customer_is_backfilled_from_start_date(fake_api, tmp_path):
    data = FakeData.generate(customers=5, archived=0)
    server = fake_api(data)
    config = tap_config(server, start_date=START, end_date=END)
    (tmp_path / "1").mkdir()
    first = run_tap(config, tmp_path / "1")
    (new_id,) = data.add_customers(1)
    server.app.reset_requests()
    (tmp_path / "2").mkdir()
    second = run_tap(config, tmp_path / "2", state=first.final_state)
    assert second.returncode == 0, second.stderr
    requests = costs_requests(server.app)
    new_requests = [r for r in requests if r[0] == new_id]
    # A customer's windows may be fetched at once (on several workers).
    assert sorted(r[1] for r in new_requests) == [
        w.params()["starting_on"]
        for w in day_windows(date(2024, 1, 1), date(2024, 12, 31), 100)
    ]
    assert len(requests) == 5 + 4
    assert (
        new_id
        in second.final_state["bookmarks"]["customer_costs"]["synced_until"][
            "2024-12-31"
        ]
    )


def test_customer_ids_restrict_the_sync_without_listing(fake_api, tmp_path):
    data = FakeData.generate(customers=6, archived=0)
    server = fake_api(data)
    chosen = [data.customers[1]["id"], data.customers[4]["id"]]
    catalog_run = run_tap(
        tap_config(
            server, start_date=START, end_date="2024-01-31", customer_ids=chosen
        ),
        tmp_path,
    )
    assert catalog_run.returncode == 0, catalog_run.stderr
    assert {r["customer_id"] for r in catalog_run.records("customer_costs")} == set(
        chosen
    )
    assert {r[0] for r in costs_requests(server.app)} == set(chosen)


def test_other_client_errors_stop_the_run_with_one_line(fake_api, tmp_path):
    data = FakeData.generate(customers=4, archived=0)
    data.forced_status[data.customers[2]["id"]] = 422
    server = fake_api(data)
    # Sequential, so the customers before the failing one are certainly written.
    run = run_tap(
        tap_config(server, start_date=START, end_date="2024-02-01", max_concurrency=1),
        tmp_path,
    )
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert (
        f"Metronome API error 422 on GET /v1/customers/{data.customers[2]['id']}/costs"
        in last
    )
    assert "Forced error" in last
    # What was emitted before the error is valid Singer and its state is usable.
    assert run.records("customer_costs")


# -- resume --------------------------------------------------------------------------------


def costs_states(messages: list[dict]) -> int:
    """How many STATE messages so far carry customer_costs bookmarks."""
    return sum(
        1
        for m in messages
        if m["type"] == "STATE"
        and "synced_until" in m["value"]["bookmarks"].get("customer_costs", {})
    )


@pytest.mark.slow
def test_interrupted_backfill_resumes_without_refetching(fake_api, tmp_path):
    data = FakeData.generate(customers=40, archived=0)
    server = fake_api(data)
    config = tap_config(server, start_date=START, end_date=END)
    (tmp_path / "clean").mkdir()
    clean = run_tap(config, tmp_path / "clean")
    assert clean.returncode == 0

    server.app.reset_requests()
    (tmp_path / "killed").mkdir()
    partial = run_until_killed(
        config, tmp_path / "killed", stop=lambda messages: costs_states(messages) >= 5
    )
    last_state = next(m["value"] for m in reversed(partial) if m["type"] == "STATE")
    done, _ = CustomerBookmarks.from_state(
        last_state["bookmarks"]["customer_costs"],
        latest=end_of_today(),
        stream="customer_costs",
        key="synced_until",
    )
    assert 0 < len(done) < 40

    server.app.quiesce()
    server.app.reset_requests()
    (tmp_path / "resumed").mkdir()
    resumed = run_tap(config, tmp_path / "resumed", state=last_state)
    assert resumed.returncode == 0, resumed.stderr
    second_requests = costs_requests(server.app)
    lookback_start = (
        date(2024, 12, 31) - timedelta(days=35)
    ).isoformat() + "T00:00:00Z"
    # Customers the last STATE covers cost only their lookback: one request each.
    completed = [r for r in second_requests if done.get(r[0]) is not None]
    assert sorted(r[0] for r in completed) == sorted(
        cid for cid in data.all_customer_ids() if done.get(cid) is not None
    )
    assert {r[1] for r in completed} == {lookback_start}
    # The others are backfilled from start_date.
    others = {r[0] for r in second_requests if done.get(r[0]) is None}
    assert len(others) == 40 - len(done)
    assert len(second_requests) == len(done) + 4 * len(others)

    union = by_key(
        [
            m["record"]
            for m in partial
            if m["type"] == "RECORD" and m["stream"] == "customer_costs"
        ]
        + resumed.records("customer_costs")
    )
    assert union == by_key(clean.records("customer_costs"))
    assert (
        resumed.final_state["bookmarks"]["customer_costs"]["synced_until"]
        == (clean.final_state["bookmarks"]["customer_costs"]["synced_until"])
    )


# -- state size --------------------------------------------------------------------------


@pytest.mark.slow
def test_state_of_ten_thousand_customers_is_small():
    """The final state's size, measured directly: <= 1.5 MB at 10,000 customers."""
    bookmarks = CustomerBookmarks()
    for n in range(10_000):
        # Caught-up customers share a day; some lag behind on days of their own.
        day = date(2024, 6, 2) if n % 10 else date(2024, 1, 1) + timedelta(days=n % 150)
        bookmarks.advance(str(uuid.UUID(int=n * 7919 + 1)), day)
    state = {"bookmarks": {"customer_costs": {"synced_until": bookmarks.to_state()}}}
    size = len(json.dumps(state, separators=(",", ":")).encode())
    print(f"final state of 10,000 customers: {size} B")
    assert size <= 1_500_000


@pytest.mark.slow
def test_state_messages_grow_linearly_with_customers(fake_api, tmp_path):
    """About STATE_WRITES_PER_SYNC STATE messages per sync, whatever the customer count."""
    data = FakeData.generate(customers=380, archived=20, plans=1)
    server = fake_api(data)
    config = tap_config(server, start_date="2024-06-01", end_date="2024-06-02")
    (tmp_path / "1").mkdir()
    first = run_tap(config, tmp_path / "1")
    assert first.returncode == 0, first.stderr[-2000:]
    (tmp_path / "2").mkdir()
    second = run_tap(config, tmp_path / "2", state=first.final_state)
    assert second.returncode == 0, second.stderr[-2000:]
    for run in (first, second):
        states = [
            line
            for line in run.stdout.splitlines()
            if line.startswith('{"type":"STATE"')
        ]
        final_bytes = len(states[-1].encode())
        # Costs and both invoice streams write bookmarks about 20 times each;
        # other streams add one each.
        assert len(states) <= MAX_STATE_MESSAGES
        assert sum(len(line.encode()) for line in states) <= len(states) * final_bytes
        synced = run.final_state["bookmarks"]["customer_costs"]["synced_until"]
        assert len(synced["2024-06-02"]) == 400
    # Request economy: one costs request per customer, and none in the second run
    # for the 20 customers archived (in 2023) before their bookmark - lookback.
    assert server.app.count(lambda p: p.endswith("/costs")) == 400 + 380


def test_progress_lines_report_customers_requests_and_time_left(fake_api, tmp_path):
    server = fake_api(FakeData.generate(customers=6, archived=0))
    run = run_tap(
        tap_config(server, progress_interval_seconds=0.000001, max_concurrency=1),
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    lines = [
        line for line in run.stderr.splitlines() if "customer_costs progress:" in line
    ]
    assert lines
    assert "6/6 customers, 6 requests" in lines[-1]
    assert "0 retries" in lines[-1]
    assert "about 0s left" in lines[-1]
