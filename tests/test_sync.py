"""A full sync emits exactly what the fake account holds: nothing lost, nothing extra."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import jsonschema
import pytest

from tap_metronome.streams import STREAM_NAMES, schema_dir
from tests.conftest import run_tap, tap_config
from tests.fake_metronome import EXACT_AMOUNTS, FakeData
from tests.stream_classes import (
    ACCOUNT_LISTINGS,
    ACCOUNT_WIDE_PATHS,
    FULL_TABLE,
    PER_CUSTOMER,
    PER_PLAN,
    names,
    paths,
)

STREAMS = tuple(sorted(STREAM_NAMES))


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """One sync of every stream against a mid-sized fake account."""
    from tests.fake_metronome import FakeMetronomeApp, FakeMetronomeServer

    data = FakeData.generate(customers=230, archived=40, plans=7, charges_per_plan=4)
    with FakeMetronomeServer(FakeMetronomeApp(data)) as server:
        run = run_tap(tap_config(server), tmp_path_factory.mktemp("sync"))
        # usage and audit_logs are counted in tests/test_account_streams.py.
        requests = server.app.count(lambda p: p not in ACCOUNT_WIDE_PATHS)
    assert run.returncode == 0, run.stderr
    return data, run, requests


@pytest.mark.slow
def test_customers_equal_the_account(synced):
    data, run, _ = synced
    expected = data.customers + data.archived_customers
    assert run.records("customers") == expected


@pytest.mark.slow
def test_plans_equal_the_account(synced):
    data, run, _ = synced
    assert run.records("plans") == data.plans


@pytest.mark.slow
def test_plan_charges_equal_the_account_and_carry_plan_id(synced):
    data, run, _ = synced
    expected = [
        {"plan_id": plan_id, **charge}
        for plan_id, charges in data.charges.items()
        for charge in charges
    ]

    def key(record):
        return (record["plan_id"], record["id"])

    # Plans are fetched concurrently: charges arrive in plan completion order.
    assert sorted(run.records("plan_charges"), key=key) == sorted(expected, key=key)
    keys = [(r["plan_id"], r["id"]) for r in run.records("plan_charges")]
    assert len(keys) == len(set(keys)) == 7 * 4


@pytest.mark.slow
@pytest.mark.parametrize("stream", sorted(names(ACCOUNT_LISTINGS)))
def test_pricing_catalog_equals_the_account(synced, stream):
    """Every item, archived ones included, exactly as the API sent it (the fake
    keeps each account-wide listing under the stream's name)."""
    data, run, _ = synced
    assert run.records(stream) == getattr(data, stream)


@pytest.mark.slow
def test_customer_plans_equal_the_account_and_carry_customer_id(synced):
    data, run, _ = synced
    expected = [
        {"customer_id": customer_id, **plan}
        for customer_id in data.all_customer_ids()
        for plan in data.customer_plans[customer_id]
    ]
    key = lambda r: (r["customer_id"], r["id"])  # noqa: E731
    assert sorted(run.records("customer_plans"), key=key) == sorted(expected, key=key)
    assert any(r.get("trial_info") for r in expected)


@pytest.mark.slow
def test_money_is_exact_in_the_singer_output(synced):
    _, run, _ = synced
    lines = [line for line in run.stdout.splitlines() if '"plan_charges"' in line]
    text = "\n".join(lines)
    # Exact JSON numbers, not strings and not float renderings like 1e-07.
    for literal in ("0.1", "1E-7", "12345678901234.56"):
        assert re.search(rf'"value":{re.escape(literal)}[,}}]', text), literal
    values = {
        price["value"]
        for record in run.records("plan_charges")
        for price in record["prices"]
    }
    assert set(EXACT_AMOUNTS) <= values
    assert all(isinstance(v, int | Decimal) for v in values)


@pytest.mark.slow
def test_every_record_validates_against_its_schema(synced):
    _, run, _ = synced
    for stream in STREAMS:
        schema = json.loads((schema_dir() / f"{stream}.json").read_text())
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        records = run.records(stream)
        assert records
        for record in records:
            as_json = json.loads(json.dumps(record, default=float))
            errors = [e.message for e in validator.iter_errors(as_json)]
            assert not errors, (stream, record.get("id"), errors)


@pytest.mark.slow
def test_schema_messages_match_the_shipped_schemas(synced):
    _, run, _ = synced
    for message in run.messages:
        if message["type"] == "SCHEMA":
            shipped = json.loads(
                (schema_dir() / f"{message['stream']}.json").read_text()
            )
            assert set(message["schema"]["properties"]) == set(shipped["properties"])


@pytest.mark.slow
def test_request_count_is_the_minimum(synced):
    _, _, requests = synced
    # customers: 3 pages + 1 empty page (active), 1 page (archived);
    # plans: 1 page; charges: 1 page per plan; costs: one 7-day window per customer;
    # credit types, billable metrics, products, rate cards: 1 page each;
    # customer plans, invoices (one read for invoices and invoice_line_items),
    # contracts and balances: one page per customer.
    assert requests == (
        4
        + 1
        + 1
        + 7 * len(paths(PER_PLAN))
        + 270 * len(paths(PER_CUSTOMER))
        + len(ACCOUNT_LISTINGS)
    )


@pytest.mark.slow
def test_archived_customers_can_be_left_out(fake_api, tmp_path):
    server = fake_api(FakeData.generate(customers=12, archived=5))
    run = run_tap(tap_config(server, include_archived_customers=False), tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.records("customers") == server.app.data.customers
    assert server.app.count(lambda p: p == "/v1/customers") == 1


def test_customer_archived_between_passes_is_emitted_once(fake_api, tmp_path):
    data = FakeData.generate(customers=6, archived=2)
    moved = dict(data.customers[0], archived_at="2024-05-01T00:00:00.000Z")
    data.archived_customers.append(moved)
    server = fake_api(data)
    run = run_tap(tap_config(server), tmp_path)
    ids = [r["id"] for r in run.records("customers")]
    assert len(ids) == len(set(ids)) == 8


def test_activate_version_messages_for_full_table_streams(fake_api, tmp_path):
    """With the setting on, targets can mark rows deleted at the source."""
    server = fake_api(FakeData.generate(customers=3, archived=1, plans=2))
    run = run_tap(tap_config(server, emit_activate_version_messages=True), tmp_path)
    assert run.returncode == 0, run.stderr
    activated = {m["stream"] for m in run.messages if m["type"] == "ACTIVATE_VERSION"}
    assert activated == FULL_TABLE
    versions = {
        m["stream"]: m.get("version") for m in run.messages if m["type"] == "RECORD"
    }
    assert all(versions[stream] for stream in activated)
