"""The fake API is faithful: the official client, strictly validating, reads it."""

from __future__ import annotations

import collections
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import metronome
import pytest

from tap_metronome.streams import STREAM_TYPES
from tests.fake_metronome import TOKEN, FakeData
from tests.spec_items import (
    DECIDED_BY_THE_FAKE,
    MAX_DEPTH,
    client_enum_values,
    spec_items,
)


@pytest.fixture
def server(fake_api):
    return fake_api(FakeData.generate(customers=230, archived=40, plans=5))


@pytest.fixture
def client(server):
    return metronome.Metronome(
        bearer_token=TOKEN,
        base_url=server.url,
        max_retries=0,
        _strict_response_validation=True,
    )


def _ids(items):
    return [item.id for item in items]


def test_customers_every_page_parses(server, client):
    data = server.app.data
    active = list(client.v1.customers.list(limit=100))
    archived = list(client.v1.customers.list(limit=100, only_archived=True))
    assert _ids(active) == [c["id"] for c in data.customers]
    assert _ids(archived) == [c["id"] for c in data.archived_customers]
    assert all(c.archived_at is not None for c in archived)
    # 230 active at 100 a page: 3 pages plus the empty page the fake inserts.
    assert server.app.count(lambda p: p == "/v1/customers") == 4 + 1


def test_small_pages_with_empty_pages_parse(server, client):
    pages = list(client.v1.customers.list(limit=7).iter_pages())
    assert any(not page.data for page in pages), "the fake serves empty pages"
    assert sum(len(page.data) for page in pages) == 230


def test_plans_and_charges_parse(server, client):
    data = server.app.data
    plans = list(client.v1.plans.list(limit=2))
    assert _ids(plans) == [p["id"] for p in data.plans]
    for plan in plans:
        charges = list(client.v1.plans.list_charges(plan_id=plan.id, limit=1))
        assert _ids(charges) == [c["id"] for c in data.charges[plan.id]]


def test_wrong_token_is_401(server):
    bad = metronome.Metronome(bearer_token="nope", base_url=server.url, max_retries=0)
    with pytest.raises(metronome.AuthenticationError):
        bad.v1.plans.list().data  # noqa: B018


def test_missing_token_is_401(server):
    response = httpx.get(f"{server.url}/v1/plans")
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


@pytest.mark.parametrize("limit", [0, 101])
def test_limit_outside_range_is_400(server, client, limit):
    with pytest.raises(metronome.BadRequestError) as info:
        client.v1.plans.list(limit=limit)
    assert "limit" in info.value.body["message"]


def test_bad_cursor_is_400(server, client):
    with pytest.raises(metronome.BadRequestError):
        client.v1.plans.list(next_page="not-a-cursor")


def test_unknown_plan_is_404(server, client):
    with pytest.raises(metronome.NotFoundError):
        client.v1.plans.list_charges(plan_id="00000000-0000-4000-8000-000000000000")


def test_costs_parse_and_honour_the_window(fake_api):
    data = FakeData.generate(customers=5, archived=0, idle_every=5)
    server = fake_api(data)
    client = metronome.Metronome(
        bearer_token=TOKEN,
        base_url=server.url,
        max_retries=0,
        _strict_response_validation=True,
    )
    customer_id = data.customers[0]["id"]
    page = client.v1.customers.list_costs(
        customer_id=customer_id,
        starting_on="2024-02-27T00:00:00Z",
        ending_before="2024-03-02T00:00:00Z",
        limit=2,
    )
    items = list(page)  # follows cursors, through any empty page
    assert [str(i.start_timestamp.date()) for i in items] == [
        "2024-02-27",
        "2024-02-28",
        "2024-02-29",
        "2024-03-01",
    ]
    assert any(i.credit_types for i in items)


def test_costs_validation_matches_the_api(fake_api):
    data = FakeData.generate(customers=3, archived=0, unsupported_every=3)
    server = fake_api(data)
    window = {
        "starting_on": "2024-01-01T00:00:00Z",
        "ending_before": "2024-01-02T00:00:00Z",
    }

    def costs(customer_id: str, params: dict) -> httpx.Response:
        return httpx.get(
            f"{server.url}/v1/customers/{customer_id}/costs",
            params=params,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    missing = costs(data.customers[0]["id"], {"starting_on": window["starting_on"]})
    assert missing.status_code == 400
    assert "ending_before" in missing.json()["message"]
    unsupported = costs(data.customers[2]["id"], window)
    assert unsupported.status_code == 400
    assert "UNIQUE" in unsupported.json()["message"]
    assert costs("00000000-0000-4000-8000-000000000000", window).status_code == 404


def test_pricing_catalog_parses(server, client):
    """Credit types, billable metrics, products and rate cards, every page."""
    data = server.app.data
    assert _ids(client.v1.pricing_units.list(limit=1)) == [
        c["id"] for c in data.credit_types
    ]
    metrics = list(client.v1.billable_metrics.list(include_archived=True, limit=2))
    assert _ids(metrics) == [m["id"] for m in data.billable_metrics]
    assert any(m.archived_at is not None for m in metrics)
    active = list(client.v1.billable_metrics.list(limit=100))
    assert all(m.archived_at is None for m in active)
    assert len(active) < len(metrics)
    products = list(client.v1.contracts.products.list(archive_filter="ALL", limit=2))
    assert _ids(products) == [p["id"] for p in data.products]
    assert {p.type for p in products} >= {"USAGE", "COMPOSITE", "FIXED"}
    default = list(client.v1.contracts.products.list(limit=100))
    assert all(p.archived_at is None for p in default)
    cards = list(client.v1.contracts.rate_cards.list(limit=1))
    assert _ids(cards) == [c["id"] for c in data.rate_cards]


def test_post_lists_refuse_a_bad_body(server):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{server.url}/v1/contract-pricing/products/list"
    bad_filter = httpx.post(url, json={"archive_filter": "SOME"}, headers=headers)
    assert bad_filter.status_code == 400
    not_json = httpx.post(
        url, content=b"{", headers={**headers, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert httpx.get(url, headers=headers).status_code == 405
    assert httpx.post(f"{server.url}/v1/plans", headers=headers).status_code == 405


UNKNOWN_CUSTOMER = "00000000-0000-4000-8000-000000000000"


def test_customer_plans_parse(server, client):
    data = server.app.data
    for customer_id in data.all_customer_ids()[:12]:
        plans = list(client.v1.customers.plans.list(customer_id=customer_id, limit=1))
        assert _ids(plans) == [p["id"] for p in data.customer_plans[customer_id]]
    assert any(data.customer_plans[c] for c in data.all_customer_ids()[:12])
    with pytest.raises(metronome.NotFoundError):
        list(client.v1.customers.plans.list(customer_id=UNKNOWN_CUSTOMER))


def test_customer_alerts_parse_and_filter_on_the_status(server, client):
    data = server.app.data
    statuses = set()
    for customer_id in data.all_customer_ids()[:12]:
        every = list(
            client.v1.customers.alerts.list(
                customer_id=customer_id,
                alert_statuses=["ENABLED", "DISABLED", "ARCHIVED"],
            )
        )
        assert [a.alert.id for a in every] == [
            a["alert"]["id"] for a in data.customer_alerts(customer_id)
        ]
        statuses |= {a.alert.status for a in every}
        enabled = list(client.v1.customers.alerts.list(customer_id=customer_id))
        assert {a.alert.status for a in enabled} <= {"enabled"}
        assert len(enabled) < len(every) or not every
    assert statuses == {"enabled", "disabled", "archived"}
    with pytest.raises(metronome.NotFoundError):
        list(client.v1.customers.alerts.list(customer_id=UNKNOWN_CUSTOMER))


def test_billing_provider_configurations_parse_without_paging(server, client):
    data = server.app.data
    archived = 0
    for customer_id in data.all_customer_ids()[:12]:
        answer = client.v1.customers.retrieve_billing_configurations(
            customer_id=customer_id, include_archived=True
        )
        assert _ids(answer.data) == [
            c["id"] for c in data.billing_provider_configurations(customer_id)
        ]
        active = client.v1.customers.retrieve_billing_configurations(
            customer_id=customer_id
        )
        assert all(c.archived_at is None for c in active.data)
        archived += len(answer.data) - len(active.data)
    assert archived
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{server.url}/v1/getCustomerBillingProviderConfigurations"
    body = {"customer_id": data.all_customer_ids()[0], "include_archived": True}
    assert set(httpx.post(url, json=body, headers=headers).json()) == {"data"}
    with pytest.raises(metronome.NotFoundError):
        client.v1.customers.retrieve_billing_configurations(
            customer_id=UNKNOWN_CUSTOMER
        )


def test_credit_grants_parse_and_filter(server, client):
    data = server.app.data
    grants = list(client.v1.credit_grants.list(limit=7))
    assert _ids(grants) == [g["id"] for g in data.credit_grants]
    customer_id = data.credit_grants[0]["customer_id"]
    mine = list(client.v1.credit_grants.list(customer_ids=[customer_id]))
    assert {g.customer_id for g in mine} == {customer_id}
    with pytest.raises(metronome.BadRequestError):
        client.v1.credit_grants.list(
            credit_grant_ids=[grants[0].id], customer_ids=[customer_id]
        )


def test_credit_ledger_entries_parse_and_filter_on_starting_on(server, client):
    data = server.app.data
    items = list(client.v1.credit_grants.list_entries())
    assert [i.customer_id for i in items] == list(data.credit_ledgers)
    every = [
        e.effective_at for i in items for ledger in i.ledgers for e in ledger.entries
    ]
    since = datetime(2024, 6, 1, tzinfo=UTC)
    later = list(client.v1.credit_grants.list_entries(starting_on=since))
    recent = [
        e.effective_at for i in later for ledger in i.ledgers for e in ledger.entries
    ]
    assert recent == [moment for moment in every if moment >= since]
    assert 0 < len(recent) < len(every)
    with pytest.raises(metronome.BadRequestError):
        client.v1.credit_grants.list_entries(
            ending_before=datetime.now(UTC) + timedelta(days=1)
        )


def test_invoices_parse_and_filter_on_the_billing_period(server, client):
    data = server.app.data
    customers = data.all_customer_ids()[:10]
    every = {
        c: list(client.v1.customers.invoices.list(customer_id=c, limit=7))
        for c in customers
    }
    for customer_id, invoices in every.items():
        # Default order: newest first.
        assert _ids(invoices) == [i["id"] for i in reversed(data.invoices(customer_id))]
    invoices = [i for found in every.values() for i in found]
    assert {i.status for i in invoices} == {"DRAFT", "FINALIZED", "VOID"}
    assert any(line.sub_line_items for i in invoices for line in i.line_items)
    assert any(not found for found in every.values()), "a customer without invoices"
    customer_id = next(c for c, found in every.items() if len(found) > 3)
    since = data.invoices(customer_id)[2]["start_timestamp"]
    recent = list(
        client.v1.customers.invoices.list(
            customer_id=customer_id, starting_on=since, sort="date_asc", limit=2
        )
    )
    expected = [
        i
        for i in data.invoices(customer_id)
        if datetime.fromisoformat(i["start_timestamp"]) >= datetime.fromisoformat(since)
    ]
    assert sorted(_ids(recent)) == sorted(i["id"] for i in expected)
    assert 0 < len(recent) < len(data.invoices(customer_id))
    assert recent[-1].status == "DRAFT", "date_asc by issued_at puts drafts last"
    with pytest.raises(metronome.NotFoundError):
        list(client.v1.customers.invoices.list(customer_id=UNKNOWN_CUSTOMER))
    with pytest.raises(metronome.BadRequestError):
        list(
            client.v1.customers.invoices.list(customer_id=customer_id, starting_on="x")
        )


def test_contracts_parse_with_and_without_a_cursor(server, client):
    data = server.app.data
    seen_archived = False
    for customer_id in data.all_customer_ids()[:20]:
        everything = list(
            client.v2.contracts.list(
                customer_id=customer_id, include_archived=True, limit=1
            )
        )
        assert _ids(everything) == [c["id"] for c in data.contracts(customer_id)]
        active = list(client.v2.contracts.list(customer_id=customer_id))
        assert all(c.archived_at is None for c in active)
        seen_archived |= len(active) < len(everything)
    assert seen_archived
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{server.url}/v2/contracts/list"
    customer_id = data.all_customer_ids()[1]
    one_page = httpx.post(url, json={"customer_id": customer_id}, headers=headers)
    assert set(one_page.json()) == {"data"}, "the spec's shape: no cursor at all"
    assert httpx.post(url, json={}, headers=headers).status_code == 400
    too_many = {"customer_id": customer_id, "limit": 21}
    assert httpx.post(url, json=too_many, headers=headers).status_code == 400


def test_balances_with_ledgers_parse_and_are_sent_only_when_asked(server, client):
    """`include_ledgers`: every entry type reads through the client's strict models."""
    data = server.app.data
    kinds = set()
    for customer_id in data.all_customer_ids()[:40]:
        served = data.balances(customer_id)
        balances = list(
            client.v1.contracts.list_balances(
                customer_id=customer_id,
                include_archived=True,
                include_balance=True,
                include_contract_balances=True,
                include_ledgers=True,
                limit=2,
            )
        )
        assert _ids(balances) == [b["id"] for b in served]
        for balance, item in zip(balances, served, strict=True):
            ledger = balance.ledger or []
            assert [e.type for e in ledger] == [
                e["type"] for e in item.get("ledger") or []
            ]
            kinds |= {e.type for e in ledger}
        without = list(
            client.v1.contracts.list_balances(
                customer_id=customer_id, include_contract_balances=True
            )
        )
        assert all(b.ledger is None for b in without)
    assert len(kinds) == 22, "every ledger entry type of commits and credits"


def test_balances_parse_with_the_cursor_in_the_body(server, client):
    data = server.app.data
    kinds = set()
    for customer_id in data.all_customer_ids()[:20]:
        balances = list(
            client.v1.contracts.list_balances(
                customer_id=customer_id,
                include_archived=True,
                include_balance=True,
                include_contract_balances=True,
                limit=1,
            )
        )
        assert _ids(balances) == [b["id"] for b in data.balances(customer_id)]
        kinds |= {b.type for b in balances}
        assert all(b.balance is not None for b in balances)
    assert kinds == {"PREPAID", "CREDIT"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{server.url}/v1/contracts/customerBalances/list"
    customer_id = data.all_customer_ids()[2]
    assert (
        httpx.post(
            url, json={"customer_id": customer_id, "limit": 26}, headers=headers
        ).status_code
        == 400
    )
    bad_flag = {"customer_id": customer_id, "include_archived": "yes"}
    assert httpx.post(url, json=bad_flag, headers=headers).status_code == 400


def test_usage_parses_one_page_per_series(fake_api):
    data = FakeData.generate(customers=6, archived=1, idle_every=3)
    server = fake_api(data, empty_page_every=0)
    client = metronome.Metronome(
        bearer_token=TOKEN, base_url=server.url, max_retries=0,
        _strict_response_validation=True,
    )  # fmt: skip
    pages = list(
        client.v1.usage.list(
            starting_on=datetime.fromisoformat("2024-01-01T00:00:00+00:00"),
            ending_before=datetime.fromisoformat("2024-01-08T00:00:00+00:00"),
            window_size="DAY",
        ).iter_pages()
    )
    series = data.usage_series(None, None)
    assert len(pages) == len(series)
    assert all(len(page.data) == 7 for page in pages)
    assert [(p.data[0].customer_id, p.data[0].billable_metric_id) for p in pages] == [
        (c, m["id"]) for c, m in series
    ]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"window_size": "day", "starting_on": "2024-01-01T05:00:00Z",
          "ending_before": "2024-01-03T00:00:00Z"}, "midnight"),
        ({"window_size": "week", "starting_on": "2024-01-01T00:00:00Z",
          "ending_before": "2024-01-03T00:00:00Z"}, "window_size"),
        ({"window_size": "day", "starting_on": "2024-01-03T00:00:00Z",
          "ending_before": "2024-01-03T00:00:00Z"}, "before"),
        ({"window_size": "day", "ending_before": "2024-01-03T00:00:00Z"}, "starting_on"),
    ],
)  # fmt: skip
def test_usage_refuses_what_the_api_refuses(server, body, needle):
    response = httpx.post(
        f"{server.url}/v1/usage",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 400
    assert needle in response.json()["message"]


def test_audit_logs_always_carry_a_cursor_and_refuse_starting_on_with_it(
    server, client
):
    data = server.app.data
    first = client.v1.audit_logs.list(
        limit=15, starting_on=datetime.fromisoformat("2024-01-01T00:00:00+00:00")
    )
    ids = [e.id for e in first.data]
    cursor = first.next_page
    while True:
        page = client.v1.audit_logs.list(limit=15, next_page=cursor)
        assert page.next_page is not None, "a cursor even on the last, empty page"
        if not page.data:
            break
        ids += [e.id for e in page.data]
        cursor = page.next_page
    assert ids == [e["id"] for e in data.audit_logs]
    with pytest.raises(metronome.BadRequestError) as info:
        client.v1.audit_logs.list(
            next_page=cursor,
            starting_on=datetime.fromisoformat("2024-01-01T00:00:00+00:00"),
        )
    assert "next_page" in info.value.body["message"]
    # Entries written later are found from the same cursor (continuous retrieval).
    added = data.add_audit_entries(3)
    later = client.v1.audit_logs.list(limit=15, next_page=cursor)
    assert [e.id for e in later.data] == [e["id"] for e in added]


# -- every field the spec allows, in every shape -----------------------------------


def _locations(
    node: Any, where: tuple[str, ...] = (), depth: int = 0, out=None, required=True
):
    """Every location of the spec's item schema: required?, nullable?, enum values."""
    out = {} if out is None else out
    node = spec_items().resolve(node)
    if depth > MAX_DEPTH:
        return out
    variants = node.get("oneOf") or node.get("anyOf")
    if variants:
        for variant in variants:
            _locations(variant, where, depth, out, required)
        return out
    if where:
        info = out.setdefault(
            where, {"required": True, "nullable": False, "enum": set()}
        )
        info["required"] = info["required"] and required
        info["nullable"] = info["nullable"] or bool(node.get("nullable"))
        info["enum"] |= set(client_enum_values(node, where))
    if "items" in node:
        _locations(node["items"], (*where, "*"), depth + 1, out, True)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra and not node.get("properties"):
        _locations(extra, (*where, "*"), depth + 1, out, True)  # a map's values
    needed = set(node.get("required", []))
    for name, child in (node.get("properties") or {}).items():
        _locations(child, (*where, name), depth + 1, out, name in needed)
    return out


def _observe(value: Any, where: tuple[str, ...], seen, locations) -> None:
    if isinstance(value, dict) and (*where, "*") in locations:  # a map
        for child in value.values():
            seen[*where, "*"].add("null" if child is None else "present")
            _observe(child, (*where, "*"), seen, locations)
    elif isinstance(value, dict):
        for location in locations:
            if location[:-1] == where and location[-1] not in value:
                seen[location].add("absent")
        for key, child in value.items():
            location = (*where, key)
            if location in locations:
                seen[location].add("null" if child is None else "present")
                if child is not None and locations[location]["enum"]:
                    seen[location, "enum"].add(child)
                _observe(child, location, seen, locations)
    elif isinstance(value, list):
        location = (*where, "*")
        for child in value:
            if location in locations:
                seen[location].add("null" if child is None else "present")
            _observe(child, location, seen, locations)


def coverage_gaps(method: str, path: str, items: list[Any]) -> list[str]:
    """What the items never show: a property present, null, absent; an enum value."""
    locations = _locations(spec_items().item_schema(method, path))
    seen: dict[Any, set[Any]] = collections.defaultdict(set)
    for item in items:
        _observe(item, (), seen, locations)
    decided = DECIDED_BY_THE_FAKE.get(path, set())
    gaps = []
    for location, info in locations.items():
        name = "/".join(location)
        wanted = {"present"}
        if name not in decided and not any(name.startswith(f"{d}/") for d in decided):
            wanted |= {"null"} if info["nullable"] else set()
            wanted |= {"absent"} if not info["required"] else set()
        gaps += [f"{name}: never {shape}" for shape in sorted(wanted - seen[location])]
        if "present" in seen[location] and name not in decided:
            missing = info["enum"] - seen[location, "enum"]
            gaps += [f"{name}: never {value}" for value in sorted(map(str, missing))]
    return gaps


@pytest.mark.slow
def test_the_fake_sends_every_field_the_spec_allows_in_every_shape():
    """Across a data set: each property present, null (where the spec allows),
    absent (where optional), each enum value, at every level; but the locations
    the fake decides for its filters and the tests' checks (`complete(keep=...)`)."""
    data = FakeData.generate(
        customers=200, archived=12, plans=14, catalog=30, audit_entries=90
    )
    customers = data.all_customer_ids()
    start = datetime(2024, 6, 1, tzinfo=UTC)
    usage = [
        data.usage_row(
            customer_id,
            metric,
            start + timedelta(days=d),
            start + timedelta(days=d + 1),
        )
        for customer_id, metric in data.usage_series(None, None)
        for d in range(3)
    ]
    served = {
        ("get", "/v1/customers"): data.customers + data.archived_customers,
        ("get", "/v1/plans"): data.plans,
        ("get", "/v1/planDetails/{plan_id}/charges"): [
            c for charges in data.charges.values() for c in charges
        ],
        ("get", "/v1/customers/{customer_id}/plans"): [
            p for plans in data.customer_plans.values() for p in plans
        ],
        ("get", "/v1/credit-types/list"): data.credit_types,
        ("get", "/v1/billable-metrics"): data.billable_metrics,
        ("post", "/v1/contract-pricing/products/list"): data.products,
        ("post", "/v1/contract-pricing/rate-cards/list"): data.rate_cards,
        ("get", "/v1/customers/{customer_id}/invoices"): [
            i for c in customers for i in data.invoices(c)
        ],
        ("post", "/v2/contracts/list"): [
            i for c in customers for i in data.contracts(c)
        ],
        ("post", "/v1/contracts/customerBalances/list"): [
            {k: v for k, v in i.items() if not k.startswith("_")}
            for c in customers
            for i in data.balances(c)
        ],
        ("post", "/v1/usage"): usage,
        ("get", "/v1/auditLogs"): data.audit_logs,
        ("post", "/v1/credits/listGrants"): data.credit_grants,
        ("post", "/v1/credits/listEntries"): list(data.credit_ledgers.values()),
        ("post", "/v1/customer-alerts/list"): [
            alert for c in customers for alert in data.customer_alerts(c)
        ],
        ("post", "/v1/getCustomerBillingProviderConfigurations"): [
            item for c in customers for item in data.billing_provider_configurations(c)
        ],
        ("get", "/v1/customers/{customer_id}/costs"): [
            item
            for customer_id in customers[:40]
            for item in data.costs(
                customer_id, start.date(), start.date() + timedelta(days=30)
            )
        ],
    }
    # Every stream's endpoint (from its class) is checked.
    assert set(served) == {(t.method.lower(), t.path) for t in STREAM_TYPES}
    gaps = {
        path: coverage_gaps(method, path, items)
        for (method, path), items in served.items()
    }
    assert not any(gaps.values()), {path: g for path, g in gaps.items() if g}
