"""The stream layer: parents without sync order, SDK-declared children, HTTP metrics,
a cheap dry run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from tap_metronome.streams import STREAM_TYPES, CustomerCostsStream
from tests.conftest import REPO, catalog_selecting, clean_env, run_tap, tap_config
from tests.fake_metronome import FakeData
from tests.stream_classes import template_of

METRIC = re.compile(r"METRIC: (\{.*\})$")


@pytest.mark.parametrize(
    ("selected", "listings"),
    [
        ({"customer_costs"}, {"/v1/customers": 2, "/v1/plans": 0}),
        ({"plan_charges"}, {"/v1/customers": 0, "/v1/plans": 1}),
        ({"customers", "customer_costs"}, {"/v1/customers": 2, "/v1/plans": 0}),
        ({"plans", "plan_charges"}, {"/v1/customers": 0, "/v1/plans": 1}),
    ],
    ids=["costs", "charges", "customers+costs", "plans+charges"],
)
def test_any_subset_of_streams_lists_each_parent_at_most_once(
    fake_api, tmp_path, selected, listings
):
    data = FakeData.generate(customers=20, archived=3, plans=3)
    server = fake_api(data, empty_page_every=0)
    catalog = catalog_selecting(tap_config(server), tmp_path, selected)
    server.app.reset_requests()
    run = run_tap(tap_config(server), tmp_path, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    emitted = {m["stream"] for m in run.messages if m["type"] == "RECORD"}
    assert emitted == selected
    for path, requests in listings.items():  # active + archived pass for customers
        assert server.app.count(lambda p, path=path: p == path) == requests, path
    if "customer_costs" in selected:
        costs = {r["customer_id"] for r in run.records("customer_costs")}
        assert costs == set(data.all_customer_ids()) - data.unsupported - data.deleted
    if "plan_charges" in selected:
        assert len(run.records("plan_charges")) == sum(
            len(c) for c in data.charges.values()
        )


def test_a_child_declared_the_sdk_way_syncs(fake_api, tmp_path):
    """A contributor's child stream with `parent_stream_type` gets every parent."""
    data = FakeData.generate(customers=4, archived=0, plans=4)
    server = fake_api(data)
    script = tmp_path / "child_tap.py"
    script.write_text(
        textwrap.dedent(
            """
            from typing import ClassVar
            from urllib.parse import quote

            from tap_metronome.streams.base import MetronomeStream
            from tap_metronome.streams.pricing import PlansStream
            from tap_metronome.tap import TapMetronome


            class SdkPlanCharges(MetronomeStream):
                name = "plan_charges"
                path = "/v1/planDetails/{plan_id}/charges"
                parent_stream_type = PlansStream
                primary_keys: ClassVar[list[str]] = ["plan_id", "id"]
                replication_key = None
                state_partitioning_keys: ClassVar[list[str]] = []

                def records(self, context):
                    plan_id = context["plan_id"]
                    path = f"/v1/planDetails/{quote(plan_id)}/charges"
                    for charge in self.list_items(path):
                        yield {"plan_id": plan_id, **charge}


            class ChildTap(TapMetronome):
                def discover_streams(self):
                    return [PlansStream(self), SdkPlanCharges(self)]


            ChildTap.cli()
            """
        )
    )
    (tmp_path / "config.json").write_text(json.dumps(tap_config(server)))
    done = subprocess.run(
        [sys.executable, str(script), "--config", "config.json"],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": str(REPO)}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = Counter(
        (message["stream"], message["record"].get("plan_id"))
        for line in done.stdout.splitlines()
        if (message := json.loads(line))["type"] == "RECORD"
    )
    assert records == Counter(
        {("plans", None): 4}
        | {("plan_charges", plan_id): len(c) for plan_id, c in data.charges.items()}
    )


def test_http_metrics_in_the_sdk_format(fake_api, tmp_path):
    data = FakeData.generate(customers=6, archived=1, plans=2, unsupported_every=5)
    server = fake_api(data)
    run = run_tap(tap_config(server), tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    points = [
        json.loads(match.group(1))
        for line in run.stderr.splitlines()
        if (match := METRIC.search(line))
    ]
    durations = [p for p in points if p["metric"] == "http_request_duration"]
    counts = [p for p in points if p["metric"] == "http_request_count"]
    assert len(durations) == server.app.count()
    endpoints = {
        (p["tags"]["endpoint"], p["tags"]["http_status_code"]) for p in durations
    }
    assert endpoints == {(t.path, 200) for t in STREAM_TYPES} | {
        (CustomerCostsStream.path, 400)  # an unsupported customer
    }
    assert all(p["type"] == "timer" and p["value"] >= 0 for p in durations)
    assert {p["tags"]["status"] for p in durations} == {"succeeded", "failed"}
    per_endpoint = Counter()
    for point in counts:
        assert point["type"] == "counter"
        per_endpoint[point["tags"]["endpoint"]] += point["value"]
    assert per_endpoint == Counter(p["tags"]["endpoint"] for p in durations)


def test_a_dry_run_costs_one_request_per_stream_plus_one_page_per_parent(
    fake_api, tmp_path
):
    data = FakeData.generate(customers=150, archived=20, plans=9)
    server = fake_api(data, empty_page_every=0)
    run = run_tap(
        tap_config(server, start_date="2024-01-01"), tmp_path, args=("--test",)
    )
    assert run.returncode == 0, run.stderr[-2000:]
    by_endpoint = Counter(template_of(p) for p, _ in server.app.requests)
    # One request per stream at its endpoint: customer_costs reads one customers
    # page + one costs request; plan_charges one plans page + one charges
    # request; customers and plans reuse those pages; one page of each
    # account-wide listing; invoices and invoice_line_items each read one
    # customer (a dry run keeps nothing for the other stream): 2 at that path.
    assert by_endpoint == Counter(t.path for t in STREAM_TYPES)


def test_a_deleted_plan_is_skipped_but_a_400_on_charges_stops_the_run(
    fake_api, tmp_path
):
    data = FakeData.generate(customers=2, archived=0, plans=4)
    server = fake_api(data)
    deleted = data.plans[1]["id"]
    del data.charges[deleted]  # deleted after the plans listing: 404
    (tmp_path / "a").mkdir()
    run = run_tap(tap_config(server), tmp_path / "a")
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"Skipping plan {deleted} in plan_charges: HTTP 404" in run.stderr
    assert "plan_charges: 3 plans synced, 1 skipped" in run.stderr
    # A 400 means the tap's own request is wrong: the run stops, naming it.
    data.forced_status[data.plans[2]["id"]] = 400
    (tmp_path / "b").mkdir()
    failed = run_tap(tap_config(server), tmp_path / "b")
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert "Metronome API error 400 on GET /v1/planDetails/" in failed.stderr


def test_parent_listing_requests_are_counted_when_only_a_child_is_selected(
    fake_api, tmp_path
):
    server = fake_api(FakeData.generate(customers=5, archived=1, plans=1))
    catalog = catalog_selecting(tap_config(server), tmp_path, {"customer_costs"})
    server.app.reset_requests()
    run = run_tap(tap_config(server), tmp_path, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    counted = Counter()
    for line in run.stderr.splitlines():
        if (match := METRIC.search(line)) and '"http_request_count"' in line:
            point = json.loads(match.group(1))
            counted[point["tags"]["endpoint"]] += point["value"]
    assert counted["/v1/customers"] == server.app.count(lambda p: p == "/v1/customers")
    assert counted["/v1/customers/{customer_id}/costs"] == 6


@pytest.mark.slow
def test_a_dry_run_writes_no_costs_bookmarks(fake_api, tmp_path):
    """`--test` reads one page without the state (the SDK does not pass it to a
    dry run): bookmarks from it would forget every other customer if saved."""
    data = FakeData.generate(customers=130, archived=0, plans=1)
    server = fake_api(data, empty_page_every=0)
    config = tap_config(server, end_date="2024-06-03")
    (tmp_path / "full").mkdir()
    full = run_tap(config, tmp_path / "full")
    assert full.returncode == 0, full.stderr[-2000:]
    dry = run_tap(config, tmp_path, state=full.final_state, args=("--test",))
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert dry.records("customer_costs")
    assert not [
        state
        for state in dry.states()
        if "synced_until" in (state.get("bookmarks", {}).get("customer_costs") or {})
    ]


def test_customer_ids_is_the_shard_of_every_per_customer_stream(fake_api, tmp_path):
    data = FakeData.generate(customers=12, archived=2, plans=3)
    server = fake_api(data)
    shard = [data.customers[3]["id"], data.archived_customers[0]["id"]]
    catalog = catalog_selecting(
        tap_config(server), tmp_path, {"customer_plans", "customer_costs"}
    )
    server.app.reset_requests()
    run = run_tap(tap_config(server, customer_ids=shard), tmp_path, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert server.app.count(lambda p: p == "/v1/customers") == 0
    assert {r["customer_id"] for r in run.records("customer_plans")} == {
        c for c in shard if data.customer_plans[c]
    }
    assert {r["customer_id"] for r in run.records("customer_costs")} == set(shard)
