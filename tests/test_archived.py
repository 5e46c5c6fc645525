"""Archived customers whose data can no longer change cost no request once read.

Every per-customer stream (`tests/stream_classes.PER_CUSTOMER`, derived from the
classes) is checked, so a stream added later is covered without editing this
file. The rule (`tap_metronome/archived.py`): an archived customer read
completely more than `settle_days` (35 by default) after the day it was archived
is not requested again; `customer_costs` keeps its own rule from its bookmarks.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tap_metronome.archived import ARCHIVED_READ_ON
from tests.conftest import run_tap, tap_config
from tests.fake_metronome import FakeData, FakeMetronomeApp, FakeMetronomeServer
from tests.stream_classes import PER_CUSTOMER, names, template_of
from tests.test_hostile import SECRET, check, config_for, run_cli, small_data

#: Per-customer streams that keep their reads of archived customers in state.
REMEMBERING = tuple(t for t in PER_CUSTOMER if t.keeps_archived_reads())


def customer_requests(
    requests: list[tuple[str, dict[str, str]]],
) -> set[tuple[str, str]]:
    """(stream path template, customer id) of each per-customer request."""
    templates = {t.path for t in PER_CUSTOMER}
    out = set()
    for path, fields in requests:
        try:
            template = template_of(path)
        except ValueError:
            continue
        if template not in templates:
            continue
        customer = fields.get("customer_id") or path.split("/")[3]
        out.add((template, customer))
    return out


def archive(data: FakeData, index: int, when: datetime) -> str:
    """Set an archived customer's `archived_at`; its id."""
    customer = data.archived_customers[index]
    customer["archived_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(customer["id"])


@pytest.mark.slow
def test_settled_archived_customers_cost_no_request_in_any_per_customer_stream(
    fake_api, tmp_path
):
    assert {"customer_plans", "contracts", "balances", "invoices"} <= names(REMEMBERING)
    data = FakeData.generate(customers=4, archived=5)
    now = datetime.now(UTC)
    today = now.date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
    old = [str(c["id"]) for c in data.archived_customers[:2]]  # archived in 2023
    # 36 days before today, at its last second: more than 35 days before the read.
    boundary_settled = archive(data, 2, midnight - timedelta(days=35, seconds=1))
    # 35 days before today: read today, it is not yet settled.
    boundary_open = archive(data, 3, midnight - timedelta(days=35))
    recent = archive(data, 4, now - timedelta(days=3))
    server = fake_api(data)
    # Costs up to today: their bookmarks end today, as in a daily run.
    start = (today - timedelta(days=60)).isoformat()
    config = tap_config(server, start_date=start, end_date=None)
    (tmp_path / "1").mkdir()
    first = run_tap(config, tmp_path / "1")
    assert first.returncode == 0, first.stderr[-3000:]
    # A run without state reads every customer in every per-customer stream.
    every = {(t.path, c) for t in PER_CUSTOMER for c in data.all_customer_ids()}
    assert customer_requests(server.app.requests) == every
    archived_ids = {str(c["id"]) for c in data.archived_customers}
    for stream in REMEMBERING:
        reads = first.final_state["bookmarks"][stream.name][ARCHIVED_READ_ON]
        # Only archived customers are kept (bounded), each read today.
        assert reads == {today.isoformat(): sorted(archived_ids)}, stream.name

    server.app.reset_requests()
    (tmp_path / "2").mkdir()
    second = run_tap(config, tmp_path / "2", state=first.final_state)
    assert second.returncode == 0, second.stderr[-3000:]
    requested = customer_requests(server.app.requests)
    settled = {*old, boundary_settled}
    for stream in PER_CUSTOMER:
        asked = {c for template, c in requested if template == stream.path}
        assert not asked & settled, stream.name
        assert {recent, *(str(c["id"]) for c in data.customers)} <= asked
        rows = second.records(stream.name)
        assert not {r.get("customer_id") for r in rows} & settled, stream.name
    for stream in REMEMBERING:
        asked = {c for template, c in requested if template == stream.path}
        assert boundary_open in asked, stream.name
        summary = re.compile(
            rf"\b{stream.name}: \d+ customers synced, 0 skipped, "
            "3 archived customers not re-read"
        )
        assert summary.search(second.stderr), stream.name
        # Settled customers keep their read day; nothing but archived customers.
        assert second.final_state["bookmarks"][stream.name][ARCHIVED_READ_ON] == {
            today.isoformat(): sorted(archived_ids)
        }
    # Their rows stay downstream: nothing marks them deleted.
    assert not [m for m in second.messages if m["type"] == "ACTIVATE_VERSION"]


@pytest.mark.slow
def test_activate_version_reads_every_customer_of_full_table_streams(
    fake_api, tmp_path
):
    """With ACTIVATE_VERSION a target deletes rows not re-sent: nobody is left out.

    Invoices are incremental (no ACTIVATE_VERSION) and still leave them out.
    """
    data = FakeData.generate(customers=3, archived=2)
    server = fake_api(data)
    config = tap_config(server, emit_activate_version_messages=True)
    (tmp_path / "1").mkdir()
    first = run_tap(config, tmp_path / "1")
    assert first.returncode == 0, first.stderr[-3000:]
    server.app.reset_requests()
    (tmp_path / "2").mkdir()
    second = run_tap(config, tmp_path / "2", state=first.final_state)
    assert second.returncode == 0, second.stderr[-3000:]
    requested = customer_requests(server.app.requests)
    archived_ids = {str(c["id"]) for c in data.archived_customers}
    for stream in REMEMBERING:
        asked = {c for template, c in requested if template == stream.path}
        # Streams made of one read (balances and its ledgers and snapshots) ask
        # the archived customers when any of them is a full table.
        sharing = [s for s in REMEMBERING if s.path == stream.path]
        if all(s.replication_key for s in sharing):
            assert not asked & archived_ids, stream.name
        elif stream.replication_key:
            assert archived_ids <= asked, stream.name
        else:
            assert archived_ids <= asked, stream.name
            assert any(
                m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream.name
                for m in second.messages
            )


@pytest.mark.slow
def test_without_archived_customers_listed_the_state_has_no_archived_reads(
    fake_api, tmp_path
):
    data = FakeData.generate(customers=3, archived=2)
    server = fake_api(data)
    config = tap_config(server, include_archived_customers=False)
    run = run_tap(config, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in REMEMBERING:
        assert ARCHIVED_READ_ON not in run.final_state["bookmarks"].get(stream.name, {})
    archived_ids = {str(c["id"]) for c in data.archived_customers}
    assert not {c for _, c in customer_requests(server.app.requests)} & archived_ids


def _bad_states() -> list[tuple[str, Any, str]]:
    cases = []
    for stream in REMEMBERING:
        for value, why in (
            (["a"], "must be an object of date -> customer ids"),
            ({"yesterday": ["a"]}, "which is not a date"),
            ({"2024-01-01": "a"}, "must be a list of customer ids"),
        ):
            cases.append((stream.name, value, why))
    return cases


@pytest.fixture
def hostile_server():
    app = FakeMetronomeApp(small_data(), token=SECRET)
    with FakeMetronomeServer(app) as running:
        yield running


@pytest.mark.parametrize(("stream", "value", "why"), _bad_states())
def test_archived_reads_of_the_wrong_shape_are_named(
    hostile_server, tmp_path, stream, value, why
):
    server = hostile_server
    state = {"bookmarks": {stream: {ARCHIVED_READ_ON: value}}}
    run = run_cli(tmp_path, config=config_for(server.url), state_text=json.dumps(state))
    check(run, 1, f"bookmarks.{stream}.{ARCHIVED_READ_ON}")
    assert why in run.stderr
    assert server.app.count() == 0


@pytest.mark.slow
def test_an_archived_customer_whose_read_had_a_draft_is_read_again(fake_api, tmp_path):
    """A DRAFT may still finalize: that customer's invoices are not settled."""
    data = FakeData.generate(customers=1, archived=4)
    with_invoices = [
        str(c["id"]) for c in data.archived_customers if data.invoices(c["id"])
    ]
    drafted, *others = with_invoices
    assert others
    data.invoices(drafted)[-1]["status"] = "DRAFT"
    server = fake_api(data)
    config = tap_config(server)
    (tmp_path / "1").mkdir()
    first = run_tap(config, tmp_path / "1")
    assert first.returncode == 0, first.stderr[-3000:]
    for name in ("invoices", "invoice_line_items"):
        (reads,) = first.final_state["bookmarks"][name][ARCHIVED_READ_ON].values()
        assert drafted not in reads
        assert set(others) <= set(reads)
    server.app.reset_requests()
    (tmp_path / "2").mkdir()
    second = run_tap(config, tmp_path / "2", state=first.final_state)
    assert second.returncode == 0, second.stderr[-3000:]
    asked = {
        path.split("/")[3]
        for path, _ in server.app.requests
        if path.endswith("/invoices")
    }
    assert drafted in asked
    assert not asked & set(others)
    # Other streams have no drafts: the customer is settled there.
    contracts = {
        f.get("customer_id") for p, f in server.app.requests if "contracts/list" in p
    }
    assert drafted not in contracts
