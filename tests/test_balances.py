"""Balances, their ledger entries and daily snapshots: one read for three streams.

Records equal the fake account's data (every ledger entry type of the spec,
amounts exact), each customer's commits and credits are requested once whichever
of the three streams are selected, a customer the endpoint refuses is skipped
by all three, ledger entry keys are the same in every run, and a snapshot
replaces the same day's row and adds the next day's.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tap_metronome.streams.balances import BALANCES_PATH, ledger_entry_keys
from tests.conftest import TapRun, catalog_selecting, run_tap, tap_config
from tests.fake_metronome import FakeData
from tests.pinned_clock.cli import PROGRAM as PINNED_CLOCK
from tests.spec_items import spec_items

FAMILY = ("balances", "balance_ledger_entries", "balance_snapshots")
REPO = Path(__file__).resolve().parent.parent
DAY = "2026-03-31"


def expected_balances(data: FakeData, customers: list[str]) -> list[dict[str, Any]]:
    """The commits and credits as served, with the customer, without the ledger."""
    return [
        {
            "customer_id": c,
            **{
                k: v for k, v in item.items() if not k.startswith("_") and k != "ledger"
            },
        }
        for c in customers
        for item in data.balances(c)
    ]


def contract_of(item: dict[str, Any]) -> Any:
    contract = item.get("contract")
    return contract.get("id") if isinstance(contract, dict) else None


def expected_entries(data: FakeData, customers: list[str]) -> list[dict[str, Any]]:
    """One row per ledger entry, with its commit's or credit's ids and key."""
    rows = []
    for c in customers:
        for item in data.balances(c):
            entries = item.get("ledger") or []
            for key, entry in zip(ledger_entry_keys(entries), entries, strict=True):
                rows.append(
                    {
                        **entry,
                        "customer_id": c,
                        "commit_or_credit_id": item["id"],
                        "commit_or_credit_type": item["type"],
                        "commit_or_credit_contract_id": contract_of(item),
                        "entry_key": key,
                    }
                )
    return rows


def expected_snapshots(
    data: FakeData, customers: list[str], day: str
) -> list[dict[str, Any]]:
    """One narrow row per commit or credit, dated `day`."""
    rows = []
    for c in customers:
        for item in data.balances(c):
            product = item.get("product") or {}
            schedule = item.get("access_schedule") or {}
            credit_type = schedule.get("credit_type") or {}
            rows.append(
                {
                    "id": item["id"],
                    "snapshot_date": day,
                    "customer_id": c,
                    "contract_id": contract_of(item),
                    "type": item["type"],
                    "name": item.get("name"),
                    "product_id": product.get("id"),
                    "product_name": product.get("name"),
                    "credit_type_id": credit_type.get("id"),
                    "credit_type_name": credit_type.get("name"),
                    "balance": item["balance"],
                }
            )
    return rows


def by_key(rows: list[dict[str, Any]], *keys: str) -> dict[tuple, dict]:
    keyed = {tuple(row[k] for k in keys): row for row in rows}
    assert len(keyed) == len(rows), "no key twice"
    return keyed


def run_on(day: str, config: dict[str, Any], run_dir: Path, **kwargs: Any) -> TapRun:
    """A run of the tap whose clock says it is noon (UTC) of `day`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {"TAP_TESTS_UTC_NOW": f"{day}T12:00:00Z", "PYTHONPATH": str(REPO)}
    run = run_tap(config, run_dir, program=PINNED_CLOCK, env=env, **kwargs)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """One sync of the three streams on DAY (small pages: every listing pages)."""
    from tests.fake_metronome import FakeMetronomeApp, FakeMetronomeServer

    data = FakeData.generate(customers=40, archived=6)
    deleted = data.customers[7]["id"]
    data.deleted.add(deleted)
    refused = data.customers[10]["id"]
    data.forced[("balances", refused)] = 400
    run_dir = tmp_path_factory.mktemp("balances")
    with FakeMetronomeServer(FakeMetronomeApp(data)) as server:
        config = tap_config(server, page_size=3, start_date="2024-01-01")
        catalog = catalog_selecting(config, run_dir, set(FAMILY))
        server.app.reset_requests()
        run = run_on(DAY, config, run_dir, catalog=catalog)
        requests = list(server.app.requests)
    customers = [c for c in data.all_customer_ids() if c not in {deleted, refused}]
    return data, run, requests, customers, (deleted, refused)


def test_balances_equal_the_account_without_ledgers(family):
    data, run, _, customers, _ = family
    rows = run.records("balances")
    assert by_key(rows, "id") == by_key(expected_balances(data, customers), "id")
    assert not any("ledger" in row for row in rows)
    # Stripped by the tap, not dropped by the SDK's conformance (with a WARNING).
    assert "not found in catalog schema" not in run.stderr
    assert {r["type"] for r in rows} == {"PREPAID", "CREDIT"}


def test_ledger_entries_equal_the_account_with_every_entry_type(family):
    data, run, _, customers, _ = family
    rows = run.records("balance_ledger_entries")
    keys = ("commit_or_credit_id", "entry_key")
    assert by_key(rows, *keys) == by_key(expected_entries(data, customers), *keys)
    every_type = set()
    for kind in ("CommitLedger", "CreditLedger"):
        for variant in spec_items().document["components"]["schemas"][kind]["oneOf"]:
            entry = spec_items().resolve(variant)
            every_type |= set(entry["properties"]["type"]["enum"])
    assert len(every_type) == 22
    assert {r["type"] for r in rows} == every_type
    assert any(r["entry_key"].endswith("#2") for r in rows), "an entry twice"
    assert {r["commit_or_credit_type"] for r in rows} == {"PREPAID", "CREDIT"}


def test_snapshots_are_the_balances_of_the_runs_day(family):
    data, run, _, customers, _ = family
    rows = run.records("balance_snapshots")
    keys = ("id", "snapshot_date")
    assert by_key(rows, *keys) == by_key(
        expected_snapshots(data, customers, DAY), *keys
    )
    assert any(r["credit_type_id"] for r in rows), "the balance's unit"
    bookmark = run.final_state["bookmarks"]["balance_snapshots"]
    assert bookmark["replication_key_value"] == DAY


def test_money_is_exact(family):
    data, run, _, customers, _ = family
    amounts = [r["amount"] for r in run.records("balance_ledger_entries")]
    assert all(isinstance(a, int | Decimal) for a in amounts)
    assert sum(amounts) == sum(r["amount"] for r in expected_entries(data, customers))
    assert '"amount":71234567890123.4567890123' in run.stdout
    assert '"balance":4999.9999999' in run.stdout


def test_one_request_per_customer_and_page_for_the_three_streams(family):
    data, _, requests, _, (deleted, refused) = family
    bodies = [args for path, args in requests if path == BALANCES_PATH]
    per_customer = Counter(b["customer_id"] for b in bodies)
    assert set(per_customer) == set(data.all_customer_ids())
    for customer_id, sent in per_customer.items():
        pages = -(-len(data.balances(customer_id)) // 3) or 1
        if customer_id in {deleted, refused}:
            pages = 1  # its 404 or 400, once
        # At most the pages plus the fake's occasional empty page; never twice.
        assert pages <= sent <= pages + 1, customer_id
    assert all(b["include_ledgers"] == "true" for b in bodies)


def test_a_customer_the_endpoint_refuses_is_skipped_by_all_three(family):
    _, run, _, _, (deleted, refused) = family
    for stream in FAMILY:
        assert f"Skipping customer {refused} in {stream}: HTTP 400" in run.stderr
        assert f"Skipping customer {deleted} in {stream}: HTTP 404" in run.stderr
        assert f"{stream}: 44 customers synced, 2 skipped" in run.stderr
        assert not any(
            r["customer_id"] in {deleted, refused} for r in run.records(stream)
        )


def test_ledger_entry_keys_depend_on_identity_not_amounts():
    entry = {
        "type": "PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION",
        "timestamp": "2024-03-01T00:00:00Z",
        "amount": Decimal("-10.5"),
        "segment_id": "s",
        "invoice_id": "i",
    }
    [key] = ledger_entry_keys([entry])
    assert ledger_entry_keys([{**entry, "amount": Decimal(-99)}]) == [key]
    assert ledger_entry_keys([{**entry, "invoice_id": "j"}]) != [key]
    assert ledger_entry_keys([{**entry, "type": "CREDIT_CANCELED"}]) != [key]
    assert ledger_entry_keys([entry, entry]) == [key, f"{key}#2"]


@pytest.mark.slow
def test_no_request_beyond_balances_whichever_streams_are_selected(fake_api, tmp_path):
    data = FakeData.generate(customers=9, archived=2)
    data.forced[("balances", data.customers[3]["id"])] = 400
    server = fake_api(data)
    config = tap_config(server, page_size=2)
    requests = {}
    for selection in (
        {"balances"},
        set(FAMILY),
        {"balance_ledger_entries"},
        {"balance_snapshots", "balances"},
    ):
        run_dir = tmp_path / "-".join(sorted(selection))
        run_dir.mkdir()
        catalog = catalog_selecting(config, run_dir, selection)
        server.app.reset_requests()
        run = run_tap(config, run_dir, catalog=catalog)
        assert run.returncode == 0, run.stderr[-3000:]
        for stream in selection:
            assert run.records(stream), stream
        requests[tuple(sorted(selection))] = Counter(
            json.dumps(args, sort_keys=True) for _, args in server.app.requests
        )
    only_balances = requests[("balances",)]
    assert sum(only_balances.values()) >= 11 + 1  # customers, then the listing
    assert all(counted == only_balances for counted in requests.values())


@pytest.mark.slow
def test_snapshots_replace_the_same_day_and_add_the_next(fake_api, tmp_path):
    data = FakeData.generate(customers=6, archived=1)
    server = fake_api(data)
    config = tap_config(server)
    catalog = catalog_selecting(config, tmp_path, set(FAMILY))
    customers = data.all_customer_ids()
    first = run_on("2026-04-30", config, tmp_path / "1", catalog=catalog)
    moved = data.balances(customers[0])[0]
    moved["balance"] -= Decimal("0.01")  # drawn down later the same day
    again = run_on(
        "2026-04-30", config, tmp_path / "2", catalog=catalog, state=first.final_state
    )
    next_day = run_on(
        "2026-05-01", config, tmp_path / "3", catalog=catalog, state=again.final_state
    )
    keys = ("id", "snapshot_date")
    # Downstream, rows replace rows of the same primary key.
    table: dict[tuple, dict] = {}
    for run in (first, again, next_day):
        table.update(by_key(run.records("balance_snapshots"), *keys))
    # The archived customer (archived in 2024) is read on the first day and then
    # settled: its balances can no longer change, so it costs no request and its
    # last snapshot stays its final balance.
    archived = {str(c["id"]) for c in data.archived_customers}
    active = [c for c in customers if c not in archived]
    assert archived
    assert active
    assert table == {
        **by_key(expected_snapshots(data, customers, "2026-04-30"), *keys),
        **by_key(expected_snapshots(data, active, "2026-05-01"), *keys),
    }
    assert table[moved["id"], "2026-04-30"]["balance"] == moved["balance"]

    # Ledger entries: the same keys in every run for the same entries.
    def entry_keys(run, customers):
        return sorted(
            (r["commit_or_credit_id"], r["entry_key"])
            for r in run.records("balance_ledger_entries")
            if r["customer_id"] in customers
        )

    everyone, active_keys = entry_keys(first, customers), entry_keys(first, active)
    assert len(everyone) == len(expected_entries(data, customers))
    # The settled archived customer's entries are sent by the first run only.
    assert entry_keys(again, customers) == entry_keys(next_day, customers)
    assert entry_keys(again, customers) == active_keys
    assert len(active_keys) == len(expected_entries(data, active))


def _first_item(change):
    """A tamper that changes the first commit or credit of each balances page."""

    def tamper(path: str, body: dict[str, Any]) -> Any:
        if path == BALANCES_PATH and body["data"]:
            change(body["data"][0])
        return body

    return tamper


@pytest.mark.parametrize(
    ("case", "change", "needle"),
    [
        ("ledger-string", lambda item: item.update(ledger="oops"), "ledger"),
        (
            "ledger-of-strings",
            lambda item: item.update(ledger=["oops"]),
            "ledger",
        ),
        ("no-id", lambda item: item.pop("id"), "commit_or_credit_id"),
    ],
    ids=["ledger-string", "ledger-of-strings", "no-id"],
)
def test_a_ledger_the_spec_rules_out_stops_with_one_line(
    fake_api, tmp_path, case, change, needle
):
    server = fake_api(
        FakeData.generate(customers=3, archived=0), tamper=_first_item(change)
    )
    config = tap_config(server)
    catalog = catalog_selecting(config, tmp_path, {"balance_ledger_entries"})
    run = run_tap(config, tmp_path, catalog=catalog)
    assert run.returncode == 2, (case, run.stderr[-3000:])
    assert "Traceback" not in run.stderr
    assert config["auth_token"] not in run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert "| ERROR" in last, last
    assert "balance_ledger_entries" in last, last
    assert needle in last, last
