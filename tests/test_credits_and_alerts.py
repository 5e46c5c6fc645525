"""Credit grants and their ledger (account-wide), customer alerts and billing
provider configurations (per customer).

Records equal the fake account's data in Singer and Airbyte mode (money exact),
each stream costs the requests its paging allows (the credit streams do not fan
out per customer), a customer an endpoint refuses is skipped with the one skip
rule, and a second run of the ledger reads only its lookback, with the same keys.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import catalog_selecting, run_tap, tap_config
from tests.fake_metronome import EXACT_AMOUNTS, FakeData, FakeMetronomeApp
from tests.test_airbyte import configured, read_source, run_source, write

STREAMS = {
    "credit_grants",
    "credit_ledger_entries",
    "customer_alerts",
    "billing_provider_configurations",
}
LEDGER = "/v1/credits/listEntries"
GRANTS = "/v1/credits/listGrants"
ALERTS = "/v1/customer-alerts/list"
BILLING_PROVIDERS = "/v1/getCustomerBillingProviderConfigurations"


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def z(moment: datetime) -> str:
    """An instant as the tap writes one (UTC, Z, no zero fraction)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def expected_ledger(data: FakeData, since: datetime | None = None) -> list[dict]:
    """The ledger rows of the account, entries effective at or after `since`,
    without the tap's `entry_key`."""
    rows = []
    for customer_id, item in data.credit_ledgers.items():
        for ledger in item["ledgers"]:
            for pending, kind in ((False, "entries"), (True, "pending_entries")):
                for entry in ledger[kind]:
                    moment = instant(entry["effective_at"])
                    if since is not None and moment < since:
                        continue
                    rows.append(
                        {
                            "customer_id": customer_id,
                            "credit_type_id": ledger["credit_type"]["id"],
                            "credit_type_name": ledger["credit_type"]["name"],
                            "pending": pending,
                            **entry,
                            "effective_at": z(moment),
                        }
                    )
    return rows


def _exact(value: Any) -> Any:
    """Numbers (int or Decimal, at any depth) as one exact spelling."""
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(Decimal(value).normalize())
    return value


def _text(row: dict[str, Any]) -> str:
    """A row as comparable text: exact numbers in one spelling, no tap key."""
    return json.dumps(
        _exact(
            {
                k: v
                for k, v in row.items()
                if k not in {"entry_key", "_unexpected_values"}
            }
        ),
        sort_keys=True,
    )


def same_rows(got: list[dict], want: list[dict]) -> bool:
    return Counter(map(_text, got)) == Counter(map(_text, want))


def _without_none_unexpected(rows: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in r.items() if not (k == "_unexpected_values" and v is None)}
        for r in rows
    ]


def expected_alerts(data: FakeData, skipped: set[str]) -> list[dict]:
    return [
        {"customer_id": c, "alert_id": alert["alert"]["id"], **alert}
        for c in data.all_customer_ids()
        if c not in skipped
        for alert in data.customer_alerts(c)
    ]


def expected_configurations(data: FakeData, skipped: set[str]) -> list[dict]:
    return [
        item
        for c in data.all_customer_ids()
        if c not in skipped
        for item in data.billing_provider_configurations(c)
    ]


def _sorted(rows: list[dict], *keys: str) -> list[dict]:
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))


@pytest.fixture(scope="module")
def account() -> tuple[FakeData, dict[str, str]]:
    """90 customers (30 with credit ledgers); one refused by the alerts (400),
    one by the billing providers (404), one deleted after the listing (404)."""
    data = FakeData.generate(customers=80, archived=10)
    ids = data.all_customer_ids()
    refused = {"alerts": ids[4], "billing_providers": ids[5], "deleted": ids[6]}
    data.forced[("alerts", refused["alerts"])] = 400
    data.forced[("billing_providers", refused["billing_providers"])] = 404
    data.deleted.add(refused["deleted"])
    return data, refused


@pytest.fixture(scope="module")
def synced(account, tmp_path_factory):
    """One Singer sync of the four streams, small pages, no empty pages."""
    from tests.fake_metronome import FakeMetronomeServer

    data, refused = account
    run_dir = tmp_path_factory.mktemp("credits")
    with FakeMetronomeServer(FakeMetronomeApp(data, empty_page_every=0)) as server:
        config = tap_config(server, start_date="2024-01-01", end_date=None, page_size=7)
        catalog = catalog_selecting(config, run_dir, STREAMS)
        server.app.reset_requests()
        run = run_tap(config, run_dir, catalog=catalog)
        requests = list(server.app.requests)
    assert run.returncode == 0, run.stderr[-3000:]
    return data, refused, run, requests


@pytest.mark.slow
def test_credit_grants_equal_the_account_with_exact_money(synced):
    data, _, run, _ = synced
    assert _without_none_unexpected(run.records("credit_grants")) == data.credit_grants
    amounts = {g["grant_amount"]["amount"] for g in run.records("credit_grants")}
    assert EXACT_AMOUNTS[2] in amounts
    assert all(isinstance(a, Decimal | int) for a in amounts)


@pytest.mark.slow
def test_ledger_entries_equal_the_account_one_row_each_with_a_stable_key(synced):
    data, _, run, _ = synced
    rows = run.records("credit_ledger_entries")
    want = expected_ledger(data, since=datetime(2024, 1, 1, tzinfo=UTC))
    assert same_rows(rows, want)
    assert {r["pending"] for r in rows} == {True, False}
    keys = [(r["customer_id"], r["credit_type_id"], r["entry_key"]) for r in rows]
    assert len(keys) == len(set(keys))
    # Two identical deductions (same grant, instant, reason, invoice): #2.
    assert any(r["entry_key"].endswith("#2") for r in rows)
    assert -EXACT_AMOUNTS[1] in {r["amount"] for r in rows}


@pytest.mark.slow
def test_customer_alerts_equal_the_account_every_status(synced):
    data, refused, run, _ = synced
    skipped = {refused["alerts"], refused["deleted"]}
    rows = _without_none_unexpected(run.records("customer_alerts"))
    want = expected_alerts(data, skipped)
    keys = ("customer_id", "alert_id")
    assert _sorted(rows, *keys) == _sorted(want, *keys)
    assert {r["alert"]["status"] for r in rows} == {"enabled", "disabled", "archived"}
    assert EXACT_AMOUNTS[0] in {r["alert"]["threshold"] for r in rows}


@pytest.mark.slow
def test_billing_provider_configurations_equal_the_account_archived_included(
    synced,
):
    data, refused, run, _ = synced
    skipped = {refused["billing_providers"], refused["deleted"]}
    rows = _without_none_unexpected(run.records("billing_provider_configurations"))
    want = expected_configurations(data, skipped)
    assert _sorted(rows, "id") == _sorted(want, "id")
    assert any(r["archived_at"] is not None for r in rows)


@pytest.mark.slow
def test_requests_account_wide_once_and_per_customer_once(synced):
    """Grants: a page of 7; the ledger: the API's pages (25 customers); alerts
    and billing providers: one request per customer (no page size / no paging)."""
    data, _, _, requests = synced
    count = Counter(path for path, _ in requests)
    customers = len(data.all_customer_ids())
    assert count[GRANTS] == -(-len(data.credit_grants) // 7)
    assert count[LEDGER] == -(-len(data.credit_ledgers) // 25)
    assert count[ALERTS] == customers
    assert count[BILLING_PROVIDERS] == customers
    # Listed once (pages of 7, active then archived) for both per-customer streams.
    assert count["/v1/customers"] == -(-len(data.customers) // 7) + -(
        -len(data.archived_customers) // 7
    )
    assert set(count) == {GRANTS, LEDGER, ALERTS, BILLING_PROVIDERS, "/v1/customers"}
    bodies = dict(requests)
    assert json.loads(bodies[ALERTS]["alert_statuses"]) == [
        "ENABLED",
        "DISABLED",
        "ARCHIVED",
    ]
    assert bodies[BILLING_PROVIDERS]["include_archived"] == "true"
    first_ledger = next(fields for path, fields in requests if path == LEDGER)
    assert first_ledger["starting_on"] == "2024-01-01T00:00:00Z"
    assert "limit" not in first_ledger
    assert "ending_before" not in first_ledger


@pytest.mark.slow
def test_a_refused_customer_is_skipped_with_the_one_rule(synced):
    _, refused, run, _ = synced
    assert (
        f"Skipping customer {refused['alerts']} in customer_alerts: HTTP 400"
        in run.stderr
    )
    assert (
        f"Skipping customer {refused['billing_providers']} in "
        "billing_provider_configurations: HTTP 404" in run.stderr
    )
    for stream in ("customer_alerts", "billing_provider_configurations"):
        assert f"Skipping customer {refused['deleted']} in {stream}: HTTP 404" in (
            run.stderr
        )
        assert f"{stream}: 88 customers synced, 2 skipped" in run.stderr


@pytest.mark.slow
def test_airbyte_mode_reads_the_same_records(account, synced, fake_api, tmp_path):
    data, _, singer, _ = synced
    server = fake_api(data, empty_page_every=0)
    config = tap_config(server, start_date="2024-01-01", end_date=None, page_size=7)
    config_path = write(tmp_path, "config.json", config)
    (message,) = run_source(tmp_path, "discover", "--config", config_path).messages
    catalog_path = write(
        tmp_path, "catalog.json", configured(message["catalog"], STREAMS)
    )
    read = read_source(tmp_path, config_path, catalog_path)
    assert read.returncode == 0, read.stderr[-3000:]
    for stream in STREAMS:
        assert same_rows(read.records(stream), singer.records(stream)), stream
    assert _without_none_unexpected(read.records("credit_grants")) == (
        data.credit_grants
    )
    state = read.final_states()["credit_ledger_entries"]
    assert state == singer.final_state["bookmarks"]["credit_ledger_entries"]


@pytest.mark.slow
def test_a_second_ledger_run_reads_only_the_lookback_with_the_same_keys(
    fake_api, tmp_path
):
    """The bookmark is the latest effective_at written (the pending deductions of
    2025-01-01); the next run asks from 35 days (`lookback_days`) before it: it
    reads the entries posted late inside that window and nothing older, and an
    entry read twice keeps its key."""
    data = FakeData.generate(customers=30, archived=3)
    server = fake_api(data)
    config = tap_config(server, start_date="2024-01-01", end_date=None)
    catalog = catalog_selecting(config, tmp_path, {"credit_ledger_entries"})
    first = run_tap(config, tmp_path, catalog=catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    bookmark = first.final_state["bookmarks"]["credit_ledger_entries"]
    assert bookmark["replication_key_value"] == "2025-01-01T00:00:00Z"

    late = data.post_ledger_entries(datetime(2024, 12, 20, 5, tzinfo=UTC))
    server.app.reset_requests()
    second = run_tap(config, tmp_path, catalog=catalog, state=first.final_state)
    assert second.returncode == 0, second.stderr[-3000:]
    since = datetime(2025, 1, 1, tzinfo=UTC) - timedelta(days=35)
    bodies = [fields for path, fields in server.app.requests if path == LEDGER]
    assert bodies
    assert {b["starting_on"] for b in bodies if "starting_on" in b} == {z(since)}
    rows = second.records("credit_ledger_entries")
    assert same_rows(rows, expected_ledger(data, since=since))
    assert len(rows) < len(first.records("credit_ledger_entries")) / 4
    assert {(c, e["invoice_id"]) for c, e in late} <= {
        (r["customer_id"], r.get("invoice_id")) for r in rows
    }

    def keyed(run):
        return {
            (r["customer_id"], r["credit_type_id"], r["entry_key"]): _text(r)
            for r in run.records("credit_ledger_entries")
        }

    again = keyed(first).keys() & keyed(second).keys()
    assert again, "entries of the lookback are read again"
    assert all(keyed(first)[k] == keyed(second)[k] for k in again)
    # Downstream, the two runs upsert to the whole ledger.
    union = keyed(first) | keyed(second)
    assert Counter(union.values()) == Counter(map(_text, expected_ledger(data)))


@pytest.mark.slow
def test_a_future_entry_never_moves_the_bookmark_past_the_run(fake_api, tmp_path):
    data = FakeData.generate(customers=9, archived=0)
    data.post_ledger_entries(datetime.now(UTC) + timedelta(days=30), every=1)
    server = fake_api(data)
    config = tap_config(server, start_date="2024-01-01", end_date=None)
    catalog = catalog_selecting(config, tmp_path, {"credit_ledger_entries"})
    run = run_tap(config, tmp_path, catalog=catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    assert any(
        instant(r["effective_at"]) > datetime.now(UTC)
        for r in run.records("credit_ledger_entries")
    )
    bookmark = run.final_state["bookmarks"]["credit_ledger_entries"]
    assert instant(bookmark["replication_key_value"]) <= datetime.now(UTC)
