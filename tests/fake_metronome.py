"""A fake Metronome API: a real HTTP server on loopback for tests, benchmarks, demo.

It serves the GET endpoints the tap reads with the real API's conventions:
bearer auth (401), `limit` 1..100 and required parameters (400 `{"message"}`),
unknown ids (404), opaque `next_page` cursors, and sparse empty pages in the middle
of a listing that still carry a cursor. Data is generated deterministically from
a seed, and money is held as `Decimal` and written as exact JSON numbers.

`tests/test_fake_api.py` drives it with the official `metronome-sdk` client under
strict response validation, so the fake cannot silently drift from the spec.

Run it by hand: `python -m tests.fake_metronome --customers 50 --port 8765`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn

import msgspec
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.spec_items import complete

TOKEN = "fake-metronome-token"
MAX_LIMIT = 100
USD_CENTS = {"id": "2714e483-4ff1-48e4-9e25-ac732e8f24f2", "name": "USD (cents)"}
CREDIT_TYPES = [
    USD_CENTS,
    {"id": "5ae401dc-a648-4b49-9ac3-391bb5bc4d7b", "name": "Cloud consumption units"},
    {"id": "8a1f9c6e-2f1b-4d8e-9a55-6a0c7e2b9d11", "name": "EUR (cents)"},
]
#: Money values that float would round; the tap must carry them exactly.
EXACT_AMOUNTS = [Decimal("0.1"), Decimal("1E-7"), Decimal("12345678901234.56")]
#: The same kind of values at a size a daily cost can have (cents).
EXACT_COSTS = [Decimal("0.1"), Decimal("1E-7"), Decimal("1234567.89")]

_ENCODER = msgspec.json.Encoder(decimal_format="number")


def _uuid(seed: int, kind: str, n: int) -> str:
    digest = hashlib.sha256(f"{seed}:{kind}:{n}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class FakeData:
    """What the fake Metronome account holds; tests compare the tap's output to it."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    archived_customers: list[dict[str, Any]] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    charges: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    credit_types: list[dict[str, Any]] = field(default_factory=list)
    billable_metrics: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    rate_cards: list[dict[str, Any]] = field(default_factory=list)
    #: Plans each customer is (or was) on, by customer id.
    customer_plans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seed: int = 1
    #: Customers whose costs answer 400 (a plan with a UNIQUE-type billable metric).
    unsupported: set[str] = field(default_factory=set)
    #: Customers deleted after the listing: their costs answer 404.
    deleted: set[str] = field(default_factory=set)
    #: Customers whose costs, or plans whose charges, answer this status.
    forced_status: dict[str, int] = field(default_factory=dict)
    #: Customers that never have any cost.
    idle: set[str] = field(default_factory=set)
    #: Costs of days on or after `revised_from` are drawn anew for each revision,
    #: as late usage changes recent days' pending costs.
    revision: int = 0
    revised_from: date | None = None
    #: Days after `today` have no usage yet.
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    #: Statuses that one endpoint answers for one customer: {(endpoint, id): status},
    #: endpoint one of "invoices", "contracts", "balances", "alerts",
    #: "billing_providers".
    forced: dict[tuple[str, str], int] = field(default_factory=dict)
    #: The account's audit log, oldest first (entries may share a timestamp).
    audit_logs: list[dict[str, Any]] = field(default_factory=list)
    #: Credit grants and ledgers, drawn when first asked for (`credit_grants`).
    _credits: tuple[list[dict[str, Any]], dict[str, dict[str, Any]]] | None = None
    _index: dict[str, dict[str, Any]] | None = None
    _numbers: dict[str, int] | None = None
    _billing: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    _costs_cache: dict[tuple[str, date], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def generate(
        cls,
        *,
        customers: int = 25,
        archived: int = 5,
        plans: int = 4,
        charges_per_plan: int = 3,
        seed: int = 1,
        unsupported_every: int = 0,
        idle_every: int = 0,
        catalog: int = 6,
        audit_entries: int = 40,
    ) -> FakeData:
        """Deterministic account contents of the given size.

        Every `unsupported_every`-th customer answers 400 for its costs and every
        `idle_every`-th customer has no costs at all (0 disables either).
        `catalog` billable metrics and products (a third archived) and half as
        many rate cards.
        """
        rng = random.Random(seed)
        data = cls(seed=seed)
        base = datetime(2023, 1, 1, tzinfo=UTC)
        for n in range(customers + archived):
            data_list = data.customers if n < customers else data.archived_customers
            customer = _customer(rng, seed, n, base, archived=n >= customers)
            data_list.append(customer)
            if unsupported_every and n % unsupported_every == unsupported_every - 1:
                data.unsupported.add(customer["id"])
            if idle_every and n % idle_every == idle_every - 2:
                data.idle.add(customer["id"])
        for p in range(plans):
            plan_id = _uuid(seed, "plan", p)
            plan: dict[str, Any] = {
                "id": plan_id,
                "name": f"Plan {p}",
                "description": rng.choice(["Self-serve", "Enterprise, ramped", ""]),
            }
            if p % 3 != 2:
                plan["custom_fields"] = {"x_account_id": f"acct-{p}"} if p % 2 else {}
            data.plans.append(complete("get", "/v1/plans", plan, p))
            data.charges[plan_id] = [
                _charge(rng, seed, p, c) for c in range(charges_per_plan)
            ]
        data.credit_types = [
            complete(
                "get",
                "/v1/credit-types/list",
                {**credit_type, "is_currency": n == 0},
                n,
                keep=("id", "name", "is_currency"),
            )
            for n, credit_type in enumerate(CREDIT_TYPES)
        ]
        data.billable_metrics = [_billable_metric(seed, n) for n in range(catalog)]
        data.products = [
            _product(seed, n, data.billable_metrics) for n in range(catalog)
        ]
        data.rate_cards = [_rate_card(seed, n) for n in range(max(1, catalog // 2))]
        for n, customer in enumerate((*data.customers, *data.archived_customers)):
            data.customer_plans[customer["id"]] = _customer_plans(seed, n, data.plans)
        # From the first day the tests' default window reads (2024-06-01).
        data.add_audit_entries(audit_entries, after=datetime(2024, 6, 1, tzinfo=UTC))
        return data

    def _draw_credits(
        self,
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        if self._credits is None:
            grants: list[dict[str, Any]] = []
            ledgers: dict[str, dict[str, Any]] = {}
            for n, customer_id in enumerate(self.all_customer_ids()):
                if n % 3 == 0:
                    mine = _credit_grants(self.seed, n, customer_id)
                    grants += mine
                    ledgers[customer_id] = _credit_ledger(
                        self.seed, n, customer_id, mine
                    )
            self._credits = grants, ledgers
        return self._credits

    @property
    def credit_grants(self) -> list[dict[str, Any]]:
        """The account's credit grants (Plans API): every third customer has one,
        every thirtieth a second one in another credit type."""
        return self._draw_credits()[0]

    @property
    def credit_ledgers(self) -> dict[str, dict[str, Any]]:
        """The credit ledger of each customer with grants: {customer id: item of
        /v1/credits/listEntries}, its ledgers' entries in time order."""
        return self._draw_credits()[1]

    def post_ledger_entries(
        self, effective_at: datetime, *, every: int = 4
    ) -> list[tuple[str, dict[str, Any]]]:
        """A deduction effective at `effective_at` in every `every`-th ledger (an
        invoice finalized late); returns (customer id, entry) of each."""
        added = []
        for k, (customer_id, item) in enumerate(self.credit_ledgers.items()):
            if k % every:
                continue
            ledger = item["ledgers"][0]
            entry = {
                "amount": Decimal("-12.3456789"),
                "created_by": "Metronome",
                "credit_grant_id": ledger["entries"][0]["credit_grant_id"],
                "effective_at": _ts(effective_at),
                "reason": "Late invoice deduction",
                "running_balance": Decimal("1000.5"),
                "invoice_id": _uuid(self.seed, f"late-invoice-{customer_id}", k),
            }
            ledger["entries"].append(entry)
            ledger["entries"].sort(key=lambda e: e["effective_at"])
            added.append((customer_id, entry))
        return added

    def customer_alerts(self, customer_id: str) -> list[dict[str, Any]]:
        """The alerts the customer is evaluated against, every status (drawn once)."""
        key = ("alerts", customer_id)
        if key not in self._billing:
            self._billing[key] = _customer_alerts(self.seed, self.number(customer_id))
        return self._billing[key]

    def billing_provider_configurations(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's billing provider configurations, archived ones too."""
        key = ("billing-providers", customer_id)
        if key not in self._billing:
            self._billing[key] = _billing_provider_configurations(
                self.seed, self.number(customer_id), customer_id
            )
        return self._billing[key]

    def add_audit_entries(
        self, count: int, *, after: datetime | None = None, same_second: bool = False
    ) -> list[dict[str, Any]]:
        """Append `count` audit log entries, later than every entry so far.

        With `same_second`, the first new entry has the last entry's timestamp
        (an entry written in the same second, after a run read up to it).
        """
        rng = random.Random(self.seed * 104_729 + len(self.audit_logs))
        moment = (
            datetime.fromisoformat(self.audit_logs[-1]["timestamp"])
            if self.audit_logs
            else after or datetime(2024, 1, 1, tzinfo=UTC)
        )
        ids = self.all_customer_ids() or ["-"]
        added = []
        for k in range(count):
            if not (k == 0 and same_second and self.audit_logs) and rng.random() > 0.15:
                moment += timedelta(seconds=rng.randrange(1, 3600))
            n = len(self.audit_logs)
            entry: dict[str, Any] = {
                "id": _uuid(self.seed, "audit", n),
                "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "request": {"id": _uuid(self.seed, "audit-request", n)},
                "resource_type": rng.choice(["customer", "contract", "invoice"]),
                "resource_id": ids[n % len(ids)],
                "action": rng.choice(["create", "update", "archive"]),
                "status": rng.choice(["success", "success", "failure", "pending"]),
            }
            if n % 4:
                entry["actor"] = {"id": f"user-{n % 7}", "name": f"User {n % 7}"}
                if n % 3:
                    entry["actor"]["email"] = f"user{n % 7}@example.com"
                entry["request"] |= {"ip": f"10.0.{n % 250}.1", "user_agent": "web"}
            if n % 5 == 1:
                entry["description"] = f"Changed {entry['resource_type']} ({n})"
            entry = complete(
                "get",
                "/v1/auditLogs",
                entry,
                n,
                keep=("id", "timestamp", "resource_type", "resource_id"),
            )
            self.audit_logs.append(entry)
            added.append(entry)
        return added

    def usage_series(
        self, customer_ids: list[str] | None, metric_ids: set[str] | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """The (customer, billable metric) pairs with usage, customers in listing
        order: an idle customer has none, and each customer uses most metrics."""
        chosen = self.all_customer_ids() if customer_ids is None else customer_ids
        series = []
        for customer_id in chosen:
            if self.customer(customer_id) is None or customer_id in self.idle:
                continue
            n = self.number(customer_id)
            for m, metric in enumerate(self.billable_metrics):
                if (n + m) % 6 != 5 and (
                    metric_ids is None or metric["id"] in metric_ids
                ):
                    series.append((customer_id, metric))
        return series

    def usage_value(
        self, customer_id: str, metric_id: str, start: datetime, end: datetime
    ) -> Decimal | None:
        """The usage of one window: None once it is past `today` (no data yet),
        redrawn by each revision from `revised_from` on (late events)."""
        if start.date() > self.today:
            return None
        digest = hashlib.blake2b(
            f"{self.seed}:{customer_id}:{metric_id}:{start.timestamp()}:{end.timestamp()}".encode(),
            digest_size=8,
        ).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        value = Decimal(rng.randrange(0, 10_000_000)) / 1000
        if rng.random() < 0.02:
            value = rng.choice(EXACT_AMOUNTS)
        if (
            self.revision
            and self.revised_from is not None
            and start.date() >= self.revised_from
            and not self.is_archived(customer_id)
        ):
            value += Decimal(self.revision * 7) / 10
        return value

    def usage_row(
        self, customer_id: str, metric: dict[str, Any], start: datetime, end: datetime
    ) -> dict[str, Any]:
        """The usage item of one customer, metric and window, as the API sends it."""
        row = {
            "customer_id": customer_id,
            "billable_metric_id": metric["id"],
            "billable_metric_name": metric["name"],
            "start_timestamp": _ts_seconds(start),
            "end_timestamp": _ts_seconds(end),
            "value": self.usage_value(customer_id, metric["id"], start, end),
        }
        number = self.number(customer_id) + int(start.timestamp()) // 3600
        return complete("post", "/v1/usage", row, number, keep=tuple(row))

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """The customer with this id, active or archived."""
        if self._index is None:
            self._index = {
                c["id"]: c for c in (*self.customers, *self.archived_customers)
            }
        return self._index.get(customer_id)

    def add_customers(self, count: int) -> list[str]:
        """Sign up new active customers (between runs); return their ids."""
        rng = random.Random(self.seed * 7919 + len(self.customers))
        base = datetime(2024, 6, 1, tzinfo=UTC)
        start = len(self.customers) + len(self.archived_customers) + 10_000
        added = [
            _customer(rng, self.seed, start + i, base, archived=False)
            for i in range(count)
        ]
        self.customers.extend(added)
        self._index = None
        return [c["id"] for c in added]

    def number(self, customer_id: str) -> int:
        """The customer's position in the account: what its data is drawn from."""
        if self._numbers is None or customer_id not in self._numbers:
            self._numbers = {c: n for n, c in enumerate(self.all_customer_ids())}
        return self._numbers[customer_id]

    def invoices(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's invoices, oldest billing period first (drawn once)."""
        key = ("invoices", customer_id)
        if key not in self._billing:
            self._billing[key] = _invoices(
                self.seed,
                self.number(customer_id),
                customer_id,
                self.today,
                archived=self.is_archived(customer_id),
            )
        return self._billing[key]

    def contracts(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's contracts, archived ones included (drawn once)."""
        key = ("contracts", customer_id)
        if key not in self._billing:
            self._billing[key] = _contracts(
                self.seed, self.number(customer_id), customer_id
            )
        return self._billing[key]

    def balances(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's commits and credits, with the fake's filter marks."""
        key = ("balances", customer_id)
        if key not in self._billing:
            self._billing[key] = _balances(
                self.seed, self.number(customer_id), self.contracts(customer_id)
            )
        return self._billing[key]

    def close_month(self) -> None:
        """Month end: every DRAFT is finalized with its final usage and totals, and
        a new DRAFT opens for the next month."""
        for customer_id in self.all_customer_ids():
            invoices = self.invoices(customer_id)
            drafts = [i for i in invoices if i["status"] == "DRAFT"]
            for draft in drafts:
                for line in draft["line_items"]:
                    if line["type"] == "usage":
                        line["quantity"] += Decimal("0.5")
                        line["total"] = line["quantity"] * line["unit_price"]
                        line["sub_line_items"][0]["quantity"] = line["quantity"]
                        line["sub_line_items"][0]["subtotal"] = line["total"]
                draft["total"] = draft["subtotal"] = sum(
                    (line["total"] for line in draft["line_items"]), Decimal(0)
                )
                draft["status"] = "FINALIZED"
                draft["issued_at"] = draft["end_timestamp"]
                period = datetime.fromisoformat(draft["end_timestamp"]).date()
                invoices.append(
                    _invoice(
                        self.seed,
                        self.number(customer_id),
                        len(invoices),
                        customer_id,
                        period,
                        "DRAFT",
                    )
                )

    def is_archived(self, customer_id: str) -> bool:
        """Whether the customer is archived (listed with only_archived)."""
        customer = self.customer(customer_id)
        return customer is not None and customer in self.archived_customers

    def revise_costs(self, since: date) -> None:
        """Change the pending costs of every active customer from `since` on (late
        usage; an archived customer has no usage)."""
        self.revision += 1
        self.revised_from = since

    def all_customer_ids(self) -> list[str]:
        """Active then archived ids, the order the tap lists them in."""
        return [c["id"] for c in (*self.customers, *self.archived_customers)]

    def precompute_costs(self, start: date, end: date) -> None:
        """Draw every customer's costs of [start, end) now, not while serving.

        Benchmarks call this so the fake's own CPU does not compete with the
        tap's on a small machine; the items are identical either way.
        """
        for customer_id in self.all_customer_ids():
            for offset in range((end - start).days):
                day = start + timedelta(days=offset)
                self._costs_cache[customer_id, day] = self.costs_item(customer_id, day)

    def costs_item(self, customer_id: str, day: date) -> dict[str, Any]:
        """The API's costs item for one customer and UTC day."""
        cached = self._costs_cache.get((customer_id, day))
        if cached is not None and self.revision == 0:
            return cached
        revision = (
            self.revision
            if self.revised_from is not None
            and day >= self.revised_from
            and not self.is_archived(customer_id)
            else 0
        )
        return _costs_item(
            self.seed,
            customer_id,
            day,
            revision,
            idle=(customer_id in self.idle or day > self.today),
        )

    def cost_rows(self, start: date, end: date) -> dict[tuple[str, str, str], Any]:
        """The customer_costs rows a full sync of [start, end) must load, by key.

        Key: (customer_id, start_timestamp, credit_type_id); value: the exact cost.
        Customers the API refuses costs for (unsupported, deleted) have none.
        """
        skipped = self.unsupported | self.deleted
        return {
            (cid, item["start_timestamp"], credit_type_id): entry.get("cost")
            for cid in self.all_customer_ids()
            if cid not in skipped
            for item in self.costs(cid, start, end)
            for credit_type_id, entry in item["credit_types"].items()
        }

    def costs(self, customer_id: str, start: date, end: date) -> list[dict[str, Any]]:
        """Every costs item of [start, end), one per day."""
        return [
            self.costs_item(customer_id, start + timedelta(days=i))
            for i in range((end - start).days)
        ]


def _customer(
    rng: random.Random, seed: int, n: int, base: datetime, *, archived: bool
) -> dict[str, Any]:
    created = base + timedelta(days=n % 400, seconds=rng.randrange(86_400))
    customer: dict[str, Any] = {
        "id": _uuid(seed, "customer", n),
        "external_id": f"customer-{n}@example.com",
        "ingest_aliases": [f"customer-{n}@example.com"]
        + ([f"alias-{n}"] if n % 4 == 0 else []),
        "name": f"Customer {n}, Inc.",
        "customer_config": {
            "salesforce_account_id": f"0015500001WO{n:06d}" if n % 3 else None
        },
        "custom_fields": {"tier": rng.choice(["gold", "silver"])} if n % 2 else {},
        "created_at": _ts(created),
        "updated_at": _ts(created + timedelta(hours=rng.randrange(1, 5000))),
    }
    if archived:
        customer["archived_at"] = _ts(created + timedelta(days=30))
    elif n % 5 == 0:
        customer["archived_at"] = None
    if n % 2 == 0:
        customer["current_billable_status"] = {
            "value": rng.choice(["billable", "unbillable"]),
            "effective_at": _ts(created) if n % 4 == 0 else None,
        }
    return complete("get", "/v1/customers", customer, n, owned=("archived_at",))


_PRODUCTS = ["CPU hours", "Storage GB-months", "API calls", "Seats", "Egress GB"]


def _costs_item(
    seed: int, customer_id: str, day: date, revision: int, *, idle: bool
) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    item: dict[str, Any] = {
        "start_timestamp": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_timestamp": (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "credit_types": {},
    }
    digest = hashlib.blake2b(
        f"{seed}:{customer_id}:{day.toordinal()}".encode(), digest_size=8
    ).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    # Late usage (a revision) adds cost to the lines a day already has; it
    # neither removes lines nor credit types, as backdated usage events do not.
    late = random.Random(int.from_bytes(digest, "big") + revision) if revision else None
    if idle or rng.random() < 0.15:  # an idle day: no usage at all
        return item
    credit_types = [CREDIT_TYPES[0]] + ([CREDIT_TYPES[1]] if rng.random() < 0.4 else [])
    for credit_type in credit_types:
        lines: list[dict[str, Any]] = []
        for _ in range(rng.randrange(1, 4)):
            line: dict[str, Any] = {
                "name": rng.choice(_PRODUCTS),
                "cost": Decimal(rng.randrange(0, 2_000_000)) / 100,
            }
            if rng.random() < 0.03:
                line["cost"] = rng.choice(EXACT_COSTS)
            if rng.random() < 0.4:
                line["group_key"] = "region"
                line["group_value"] = rng.choice(
                    ["us-east-1", "eu-west-1", None, "東京 (ap-northeast-1)"]
                )
            if late is not None:
                line["cost"] += Decimal(late.randrange(1, 50_000)) / 100
            lines.append(line)
        entry: dict[str, Any] = {
            "name": credit_type["name"],
            "cost": sum((line["cost"] for line in lines), Decimal(0)),
            "line_item_breakdown": lines,
        }
        for optional in ("name", "cost", "line_item_breakdown"):
            if rng.random() < 0.04:  # optional fields the spec allows to be absent
                del entry[optional]
        item["credit_types"][credit_type["id"]] = entry
    return item


def _customer_plans(
    seed: int, n: int, plans: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """None, one, or a past and a current plan (a separate generator: the rest of
    the account does not change with it)."""
    if not plans or n % 5 == 4:
        return []
    started = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=n % 300)
    count = 2 if n % 3 == 0 else 1
    out = []
    for k in range(count):
        plan = plans[(n + k) % len(plans)]
        starting_on = started + timedelta(days=180 * k)
        customer_plan: dict[str, Any] = {
            "id": _uuid(seed, f"customer-plan-{n}", k),
            "plan_id": plan["id"],
            "plan_name": plan["name"],
            "plan_description": plan["description"],
            "starting_on": _ts(starting_on),
            "custom_fields": {"contract": f"C-{n}-{k}"} if k else {},
        }
        if k + 1 < count:
            customer_plan["ending_before"] = _ts(starting_on + timedelta(days=180))
        if n % 4 == 1:
            customer_plan["net_payment_terms_days"] = 30
        if n % 7 == 0:
            customer_plan["trial_info"] = {
                "ending_before": _ts(starting_on + timedelta(days=14)),
                "spending_caps": [
                    {
                        "credit_type": dict(USD_CENTS),
                        "amount": Decimal("10000"),
                        "amount_remaining": Decimal("2500.5"),
                    }
                ],
            }
        out.append(
            complete(
                "get",
                "/v1/customers/{customer_id}/plans",
                customer_plan,
                n * 3 + k,
                owned=("ending_before",),
                keep=("plan_id", "starting_on"),
            )
        )
    return out


#: The statuses of the account's alerts; each customer is evaluated against some
#: (their types are drawn from the spec's).
ALERTS = ("enabled", "enabled", "disabled", "archived")


def _customer_alerts(seed: int, n: int) -> list[dict[str, Any]]:
    """Alerts of customer `n`: none for every sixth, else all but one of the
    account's alerts (the same alert id under many customers)."""
    if n % 6 == 5:
        return []
    out = []
    for a, status in enumerate(ALERTS):
        if a == n % len(ALERTS) and n % 2:
            continue
        customer_status = None if status == "archived" else ["ok", "in_alarm"][n % 2]
        item = {
            "customer_status": customer_status,
            "alert": {
                "id": _uuid(seed, "alert", a),
                "name": f"Alert {a}",
                "status": status,
                "threshold": [Decimal(1000 * (a + 1)), *EXACT_AMOUNTS][a],
                "updated_at": "2024-05-01T00:00:00Z",
            },
        }
        out.append(
            complete(
                "post",
                "/v1/customer-alerts/list",
                item,
                n * 8 + a,
                keep=("customer_status", "alert/id", "alert/status", "alert/threshold"),
            )
        )
    return out


def _billing_provider_configurations(
    seed: int, n: int, customer_id: str
) -> list[dict[str, Any]]:
    """None for every fourth customer, else one; every third of those has an
    archived one too (a customer moved from one provider to another)."""
    if n % 4 == 3:
        return []
    count = 2 if n % 3 == 0 else 1
    out = []
    for k in range(count):
        archived = k + 1 < count
        item = {
            "id": _uuid(seed, f"billing-provider-{n}", k),
            "customer_id": customer_id,
            "configuration": {"stripe_customer_id": f"cus_{n}_{k}"},
            "delivery_method_id": _uuid(seed, "delivery-method", n % 3),
            "delivery_method_configuration": {"leave_invoices_in_draft": n % 2 == 0},
            "archived_at": "2024-02-01T00:00:00Z" if archived else None,
        }
        out.append(
            complete(
                "post",
                "/v1/getCustomerBillingProviderConfigurations",
                item,
                n * 3 + k,
                keep=("id", "customer_id", "archived_at"),
            )
        )
    return out


def _credit_grants(seed: int, n: int, customer_id: str) -> list[dict[str, Any]]:
    """One grant, and a second one in another credit type for every tenth."""
    out = []
    for k in range(2 if n % 30 == 0 else 1):
        credit_type = CREDIT_TYPES[(n + k) % len(CREDIT_TYPES)]
        effective = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n % 120 + k)
        amount = [Decimal("100000"), EXACT_AMOUNTS[2], Decimal("2500.5")][n // 3 % 3]
        grant = {
            "id": _uuid(seed, f"credit-grant-{n}", k),
            "customer_id": customer_id,
            "name": f"Prepaid credits {n}-{k}",
            "effective_at": _ts(effective),
            "expires_at": _ts(effective + timedelta(days=365)),
            "priority": Decimal(k + 1),
            "grant_amount": {"amount": amount, "credit_type": dict(credit_type)},
            "paid_amount": {
                "amount": amount / 2,
                "credit_type": dict(CREDIT_TYPES[0]),
            },
            "custom_fields": {"deal": f"D-{n}"} if n % 2 else {},
        }
        out.append(
            complete(
                "post",
                "/v1/credits/listGrants",
                grant,
                n * 2 + k,
                keep=("id", "customer_id", "grant_amount", "effective_at"),
            )
        )
    return out


def _credit_ledger(
    seed: int, n: int, customer_id: str, grants: list[dict[str, Any]]
) -> dict[str, Any]:
    """A ledger per grant's credit type: the grant, a deduction early in each
    month after it (in the tests' default week, 2024-06-01..07, too), and a
    pending deduction for the month after the last."""
    ledgers = []
    for k, grant in enumerate(grants):
        granted = grant["grant_amount"]["amount"]
        effective = datetime.fromisoformat(grant["effective_at"])
        entries = [
            {
                "amount": granted,
                "created_by": f"user-{n % 5}",
                "credit_grant_id": grant["id"],
                "effective_at": grant["effective_at"],
                "reason": "Credit grant",
                "running_balance": granted,
            }
        ]
        balance = granted
        month = _next_month(effective.date())
        while month <= date(2024, 12, 1):
            moment = _midnight(month) + timedelta(days=n % 7, hours=k)
            amount = -[Decimal("12.5"), EXACT_AMOUNTS[1], Decimal("0.1")][
                month.month % 3
            ]
            balance += amount
            entry = {
                "amount": amount,
                "created_by": "Metronome",
                "credit_grant_id": grant["id"],
                "effective_at": _ts(moment),
                "reason": "Invoice deduction",
                "running_balance": balance,
                "invoice_id": _uuid(seed, f"ledger-invoice-{n}-{k}", month.month),
            }
            entries.append(entry)
            if month.month == 6 and n % 2 == 0:
                entries.append(dict(entry))  # two identical deductions: #2
                balance += amount
                entries[-1]["running_balance"] = balance
            month = _next_month(month)
        pending = [
            {
                "amount": Decimal("-3.25"),
                "created_by": "Metronome",
                "credit_grant_id": grant["id"],
                "effective_at": _ts(_midnight(date(2025, 1, 1))),
                "reason": "Pending invoice deduction",
                "running_balance": balance - Decimal("3.25"),
                "invoice_id": _uuid(seed, f"ledger-pending-{n}", k),
            }
        ]
        ledgers.append(
            {
                "credit_type": dict(grant["grant_amount"]["credit_type"]),
                "entries": entries,
                "pending_entries": pending,
                "starting_balance": {
                    "effective_at": grant["effective_at"],
                    "excluding_pending": Decimal(0),
                    "including_pending": Decimal(0),
                },
                "ending_balance": {
                    "effective_at": _ts(_midnight(date(2025, 1, 1))),
                    "excluding_pending": balance,
                    "including_pending": balance - Decimal("3.25"),
                },
            }
        )
    return complete(
        "post",
        "/v1/credits/listEntries",
        {"customer_id": customer_id, "ledgers": ledgers},
        n,
        keep=(
            "customer_id",
            "ledgers/*/credit_type",
            "ledgers/*/entries/*/effective_at",
            "ledgers/*/entries/*/amount",
            "ledgers/*/entries/*/invoice_id",
        ),
    )


def _billable_metric(seed: int, n: int) -> dict[str, Any]:
    aggregation = ["SUM", "COUNT", "MAX", "LATEST", "UNIQUE"][n % 5]
    metric: dict[str, Any] = {
        "id": _uuid(seed, "billable-metric", n),
        "name": f"{_PRODUCTS[n % len(_PRODUCTS)]} ({n})",
        "aggregation_type": aggregation,
        "event_type_filter": {"in_values": [f"event_{n}"]},
        "property_filters": [
            {"name": "region", "exists": True, "in_values": ["us-east-1", "eu-west-1"]},
            {"name": "units", "exists": True},
        ],
        "group_keys": [["region"]] if n % 2 else [],
        "custom_fields": {"team": "data"} if n % 3 == 0 else {},
    }
    if aggregation != "COUNT":
        metric["aggregation_key"] = "units"
    if n % 4 == 3:  # a SQL billable metric
        # Text the API returns, never run here.
        metric["sql"] = f"SELECT count(*) FROM events WHERE event_type = 'event_{n}'"  # noqa: S608
    if n % 3 == 2:
        metric["archived_at"] = _ts(
            datetime(2024, 2, 1, tzinfo=UTC) + timedelta(days=n)
        )
    return complete(
        "get",
        "/v1/billable-metrics",
        metric,
        n,
        owned=("archived_at",),
        keep=("id", "name"),
    )


def _product(seed: int, n: int, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    kind = ["USAGE", "SUBSCRIPTION", "FIXED", "COMPOSITE", "PRO_SERVICE"][n % 5]
    created = datetime(2023, 6, 1, tzinfo=UTC) + timedelta(days=7 * n)
    state: dict[str, Any] = {
        "name": f"Product {n}",
        "created_at": _ts(created),
        "created_by": "finance@example.com",
        "starting_at": _ts(created),
        "tags": ["compute"] if n % 2 else [],
        "is_refundable": n % 2 == 0,
    }
    if kind == "USAGE":
        state["billable_metric_id"] = metrics[n % len(metrics)]["id"]
        state["quantity_conversion"] = {
            "conversion_factor": Decimal("1024"),
            "operation": "DIVIDE",
        }
        state["quantity_rounding"] = {
            "rounding_method": "ROUND_UP",
            "decimal_places": 2,
        }
    if kind == "COMPOSITE":
        state["composite_tags"] = ["compute"]
    renamed = {**state, "name": f"Product {n} (renamed)"}
    product: dict[str, Any] = {
        "id": _uuid(seed, "product", n),
        "type": kind,
        "initial": state,
        "current": renamed if n % 2 else state,
        "updates": (
            [
                {
                    "created_at": _ts(created + timedelta(days=3)),
                    "created_by": "finance@example.com",
                    "name": renamed["name"],
                }
            ]
            if n % 2
            else []
        ),
        "custom_fields": {"sku": f"SKU-{n}"} if n % 2 == 0 else {},
    }
    if n % 3 == 2:
        product["archived_at"] = _ts(created + timedelta(days=90))
    return complete(
        "post", "/v1/contract-pricing/products/list", product, n, owned=("archived_at",)
    )


def _rate_card(seed: int, n: int) -> dict[str, Any]:
    created = datetime(2023, 9, 1, tzinfo=UTC) + timedelta(days=30 * n)
    card: dict[str, Any] = {
        "id": _uuid(seed, "rate-card", n),
        "name": f"Rate card {n}",
        "description": "List prices" if n % 2 == 0 else "Enterprise prices",
        "created_at": _ts(created),
        "created_by": "pricing@example.com",
        "fiat_credit_type": dict(USD_CENTS),
        "aliases": [{"name": f"rate-card-{n}", "starting_at": _ts(created)}],
        "credit_type_conversions": [
            {
                "custom_credit_type": {
                    "id": CREDIT_TYPES[1]["id"],
                    "name": CREDIT_TYPES[1]["name"],
                },
                "fiat_per_custom_credit": "0.5",
            }
        ],
        "custom_fields": {},
    }
    return complete("post", "/v1/contract-pricing/rate-cards/list", card, n)


def _charge(rng: random.Random, seed: int, p: int, c: int) -> dict[str, Any]:
    charge_type = ["usage", "fixed", "composite", "minimum", "seat"][(p + c) % 5]
    prices: list[dict[str, Any]] = []
    for tier in range(1 + (c % 3)):
        price: dict[str, Any] = {
            "tier": tier * 1000,
            "value": Decimal(rng.randrange(1, 10_000_000)) / 100,
        }
        if tier % 2:
            price["quantity"] = Decimal(rng.randrange(1, 50))
        if charge_type == "fixed":
            price["collection_schedule"] = "ADVANCE"
            price["collection_interval"] = 1
        prices.append(price)
    if p == 0:  # the first plan carries amounts that float would round
        prices[0]["value"] = EXACT_AMOUNTS[c % len(EXACT_AMOUNTS)]
    charge: dict[str, Any] = {
        "id": _uuid(seed, f"charge-{p}", c),
        "name": f"Charge {p}.{c}",
        "charge_type": charge_type,
        "product_id": _uuid(seed, "product", (p * 7 + c) % 11),
        "product_name": f"Product {(p * 7 + c) % 11}",
        "credit_type": dict(CREDIT_TYPES[c % 2]),
        "prices": prices,
        "custom_fields": {} if c % 2 else {"gl_code": f"GL-{p}{c}"},
    }
    if c % 2 == 0:
        charge["start_period"] = c
        charge["tier_reset_frequency"] = 1
    if charge_type == "seat":
        charge["quantity"] = Decimal(rng.randrange(1, 20))
    if charge_type == "usage" and c % 2:
        charge["unit_conversion"] = {"division_factor": Decimal("1000000")}
        if p % 2:
            charge["unit_conversion"]["rounding_behavior"] = "ceiling"
    return complete("get", "/v1/planDetails/{plan_id}/charges", charge, p * 100 + c)


# -- customer billing: invoices, contracts, balances -----------------------------------
# Each drawn from its own generator per customer, so the rest of the account (and
# every earlier test's data) is the same with or without them.

#: Amounts that float arithmetic would change: totals must arrive exactly.
INVOICE_AMOUNTS = [Decimal("0.1"), Decimal("1E-7"), Decimal("12345678901234.56")]


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _invoice(
    seed: int, n: int, k: int, customer_id: str, period: date, status: str
) -> dict[str, Any]:
    """Invoice `k` of customer `n`: a month of usage, a platform fee, credits."""
    rng = random.Random(f"{seed}-invoice-{n}-{k}")
    end = _next_month(period)
    lines: list[dict[str, Any]] = []
    for region in ("us-east-1", "eu-west-1")[: 1 + k % 2]:
        quantity = Decimal(rng.randrange(1, 10**6)) / 100
        unit_price = Decimal(rng.randrange(1, 500)) / 1000
        subtotal = quantity * unit_price
        lines.append(
            {
                "name": "CPU hours",
                "type": "usage",
                "credit_type": dict(USD_CENTS),
                "product_id": _uuid(seed, "product", 0),
                "product_type": "UsageProductListItem",
                "quantity": quantity,
                "unit_price": unit_price,
                "total": subtotal,
                "starting_at": _ts(_midnight(period)),
                "ending_before": _ts(_midnight(end)),
                "presentation_group_values": {"region": region},
                "sub_line_items": [
                    {
                        "name": "CPU hours",
                        "quantity": quantity,
                        "subtotal": subtotal,
                        "price": unit_price,
                        "charge_id": _uuid(seed, "charge", n % 7),
                        "custom_fields": {},
                    }
                ],
            }
        )
    fee = INVOICE_AMOUNTS[(n + k) % len(INVOICE_AMOUNTS)]
    lines.append(
        {
            "name": "Platform fee",
            "type": "scheduled",
            "credit_type": dict(USD_CENTS),
            "scheduled_charge_id": _uuid(seed, f"scheduled-charge-{n}", k),
            "total": fee,
        }
    )
    if k % 5 == 1:  # the same charge twice: nothing tells the two apart
        lines.append({**lines[-1]})
    if n % 3 == 0:
        lines.append(
            {
                "name": "Prepaid commit applied",
                "type": "applied_commit_or_credit",
                "credit_type": dict(USD_CENTS),
                "total": -Decimal(rng.randrange(0, 5000)) / 100,
                "applied_commit_or_credit": {
                    "id": _uuid(seed, f"commit-{n}", 0),
                    "type": "PREPAID",
                },
            }
        )
    total = sum((line["total"] for line in lines), Decimal(0))
    invoice: dict[str, Any] = {
        "id": _uuid(seed, f"invoice-{n}", k),
        "customer_id": customer_id,
        "type": "USAGE",
        "status": status,
        "credit_type": dict(USD_CENTS),
        "start_timestamp": _ts(_midnight(period)),
        "end_timestamp": _ts(_midnight(end)),
        "line_items": lines,
        "total": total,
        "subtotal": total,
        "net_payment_terms_days": 30,
        "custom_fields": {},
        "plan_id": _uuid(seed, "plan", n % 4),
        "plan_name": f"Plan {n % 4}",
    }
    if status != "DRAFT":
        invoice["issued_at"] = _ts(_midnight(end) + timedelta(hours=1))
    if n % 4 == 1:
        invoice["external_invoice"] = {
            "billing_provider_type": "stripe",
            "invoice_id": f"in_{n}_{k}",
            "external_status": "PAID" if status == "FINALIZED" else "DRAFT",
        }
    return invoice


def _invoices(
    seed: int, n: int, customer_id: str, today: date, *, archived: bool = False
) -> list[dict[str, Any]]:
    """Monthly invoices of the last one to five months; the current one is a DRAFT.

    Every fifth customer has none; every third one's oldest invoice was voided.
    An archived customer's current one is VOID: archiving a customer "voids all
    corresponding invoices" (the spec's archive endpoint), so none stays a draft.
    """
    if n % 5 == 3:
        return []
    months = 1 + n % 5
    period = _month_start(today)
    for _ in range(months - 1):
        period = _month_start(period - timedelta(days=1))
    out = []
    for k in range(months):
        status = "FINALIZED"
        if k == months - 1:
            status = "VOID" if archived else "DRAFT"
        elif k == 0 and n % 3 == 1:
            status = "VOID"
        invoice = _invoice(seed, n, k, customer_id, period, status)
        out.append(
            complete(
                "get",
                "/v1/customers/{customer_id}/invoices",
                invoice,
                n * 12 + k,
                owned=("issued_at",),
                keep=(
                    "id",
                    "status",
                    "type",
                    "start_timestamp",
                    "end_timestamp",
                    "line_items",
                    "customer_id",
                    "total",
                    "subtotal",
                    *(
                        f"line_items/*/{name}"
                        for name in (
                            "name",
                            "type",
                            "quantity",
                            "unit_price",
                            "total",
                            "sub_line_items",
                            "sub_line_items/*/quantity",
                            "sub_line_items/*/subtotal",
                        )
                    ),
                ),
            )
        )
        lines = out[-1]["line_items"]
        fees = [i for i, line in enumerate(lines) if line.get("name") == "Platform fee"]
        if len(fees) == 2:  # the same charge twice stays the same
            lines[fees[1]] = copy.deepcopy(lines[fees[0]])
        period = _next_month(period)
    return out


def _schedule(
    seed: int, owner: str, start: datetime, amount: Decimal
) -> dict[str, Any]:
    return {
        "credit_type": dict(USD_CENTS),
        "schedule_items": [
            {
                "id": _uuid(seed, f"schedule-{owner}", 0),
                "amount": amount,
                "starting_at": _ts(start),
                "ending_before": _ts(start + timedelta(days=365)),
            }
        ],
    }


def _contracts(seed: int, n: int, customer_id: str) -> list[dict[str, Any]]:
    """None, one or two contracts; every seventh customer's first is archived."""
    if n % 4 == 0:
        return []
    out = []
    for c in range(1 + (n % 3 == 0)):
        started = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(
            days=30 * (n % 10) + 200 * c
        )
        contract_id = _uuid(seed, f"contract-{n}", c)
        commit_id = _uuid(seed, f"commit-{n}", c)
        contract: dict[str, Any] = {
            "id": contract_id,
            "customer_id": customer_id,
            "name": f"Contract {n}-{c}",
            "starting_at": _ts(started),
            "created_at": _ts(started - timedelta(days=3)),
            "created_by": "sales@example.com",
            "rate_card_id": _uuid(seed, "rate-card", 0),
            "net_payment_terms_days": 30,
            "commits": [
                {
                    "id": commit_id,
                    "type": "PREPAID",
                    "created_at": _ts(started),
                    "name": "Annual commit",
                    "product": {"id": _uuid(seed, "product", 2), "name": "Product 2"},
                    "priority": 100,
                    "access_schedule": _schedule(
                        seed, commit_id, started, Decimal("1200000.01")
                    ),
                }
            ],
            "overrides": [],
            "scheduled_charges": [],
            "transitions": [],
            "usage_filter": [],
            "usage_statement_schedule": {
                "billing_anchor_date": _ts(started),
                "frequency": ["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"][(n + c) % 4],
            },
            "custom_fields": {"deal": f"D-{n}-{c}"} if c else {},
        }
        if c == 1:
            contract["ending_before"] = _ts(started + timedelta(days=365))
        if c == 0 and n % 7 == 1:
            contract["archived_at"] = _ts(started + timedelta(days=40))
        out.append(
            complete(
                "post",
                "/v2/contracts/list",
                contract,
                n * 3 + c,
                owned=("archived_at", "ending_before"),
                keep=("id", "customer_id", "commits", "commits/*/id", "commits/*/type"),
            )
        )
    return out


def _balances(
    seed: int, n: int, contracts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each contract's commits (contract level) and, for every other customer, a credit.

    Items carry `_contract_level` and `_archived` for the fake's filters; they are
    removed before an item is served.
    """
    out = []
    for contract in contracts:
        for commit in contract["commits"]:
            out.append(
                {
                    **commit,
                    "contract": {"id": contract["id"]},
                    "balance": Decimal("1200000.01") - Decimal(n) / 8,
                    "_contract_level": True,
                    "_archived": "archived_at" in contract,
                }
            )
    if n % 2 == 0:
        credit_id = _uuid(seed, f"credit-{n}", 0)
        started = datetime(2024, 3, 1, tzinfo=UTC)
        out.append(
            {
                "id": credit_id,
                "type": "CREDIT",
                "name": "Sign-up credit",
                "product": {"id": _uuid(seed, "product", 3), "name": "Product 3"},
                "priority": 1,
                "access_schedule": _schedule(seed, credit_id, started, Decimal("5000")),
                "balance": Decimal("4999.9999999"),
                "_contract_level": False,
                "_archived": n % 6 == 4,
            }
        )
    items = [
        complete(
            "post",
            "/v1/contracts/customerBalances/list",
            item,
            n * 8 + i,
            keep=("id", "type", "balance", "contract"),
        )
        for i, item in enumerate(out)
    ]
    for item in items[:1]:
        if n % 3 == 0 and item.get("ledger"):
            # The same entry twice (two equal manual adjustments): two rows.
            item["ledger"].append(copy.deepcopy(item["ledger"][0]))
    return items


class _ApiError(HTTPException):
    """An error answered as the real API does: JSON `{"message": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(description=message)
        self.code = status
        self.message = message

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        return _json_response({"message": self.message}, status=self.code)


def _json_response(body: Any, status: int = 200) -> Response:
    return Response(_ENCODER.encode(body), status=status, mimetype="application/json")


#: The faults the fake can inject, each drawn with its own rate per request.
FAULTS = (
    "429_retry_after",  # 429 with Retry-After (seconds) and retry-after-ms
    "429_bare",  # 429 without any retry hint
    "500",
    "502",
    "503",
    "reset",  # headers and half the body, then the connection is closed
    "slow",  # the answer comes after `slow_seconds` (beyond request_timeout)
    "truncated",  # 200 with half a JSON body (Content-Length matches); 2xx answers only
)


@dataclass
class Faults:
    """Per-request fault rates; deterministic for a given seed and request order."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 7
    retry_after: str = "0"
    slow_seconds: float = 0.5
    #: Only requests whose path contains this are faulted (None: all).
    only_path: str | None = None
    #: Faults start after this many requests (matching `only_path`) were served.
    start_after: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self.injected: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self._seen = 0

    @classmethod
    def evenly(cls, total: float, **options: Any) -> Faults:
        """Spread a total fault rate evenly over every kind of fault."""
        return cls(dict.fromkeys(FAULTS, total / len(FAULTS)), **options)

    def void(self, name: str) -> None:
        """Uncount a drawn fault that could not be applied."""
        with self._lock:
            self.injected[name] -= 1

    def draw(self, path: str) -> str | None:
        """The fault for this request, if any."""
        if self.only_path is not None and self.only_path not in path:
            return None
        with self._lock:
            self._seen += 1
            if self._seen <= self.start_after:
                return None
            roll = self._rng.random()
            for name, rate in self.rates.items():
                if roll < rate:
                    self.injected[name] += 1
                    return name
                roll -= rate
        return None


#: Objects whose keys are ids or user-chosen names, not field names: a key added
#: there would be a new credit type or custom field, not a new API field.
_MAPS = frozenset({"credit_types", "custom_fields"})
#: Maps of strings by their names' endings (`plan_custom_fields`, `..._group_values`).
_MAP_SUFFIXES = ("custom_fields", "group_values")
#: Values Metronome owns and may extend: a new value for each.
NEW_ENUM_VALUES = {
    "charge_type": "usage_v2",
    "rounding_behavior": "banker",
    "collection_schedule": "MIDDLE",
    "value": "paused",  # current_billable_status.value
}


def what_metronome_may_add(path: str, body: Any) -> Any:
    """A `tamper` that adds an unknown field to every object of a page, at every
    level, and gives each value Metronome owns a value it may add later."""

    def grow(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            for name, value in node.items():
                node[name] = grow(value, name)
            if key not in _MAPS and not (key or "").endswith(_MAP_SUFFIXES):
                node["added_in_2027"] = {"nested": [1, "two"], "flag": True}
        elif isinstance(node, list):
            return [grow(value, key) for value in node]
        elif isinstance(node, str) and key in NEW_ENUM_VALUES:
            return NEW_ENUM_VALUES[key]
        return node

    return grow(body, None)


#: What `unexpected_values` plants: (path suffix, field, value the spec rules out).
UNEXPECTED = (
    ("/v1/customers", "name", 12345),
    ("/v1/customers", "created_at", "2016-12-31T23:59:60Z"),
    ("/invoices", "billable_status", {"value": "billable"}),
)


def unexpected_values(path: str, body: Any) -> Any:
    """A `tamper` that gives the first item of each customers and invoices page a
    value its schema refuses in a field the tap does not compute with."""
    items = body.get("data") if isinstance(body, dict) else None
    if items and isinstance(items[0], dict):
        for suffix, name, value in UNEXPECTED:
            if path.endswith(suffix):
                items[0][name] = value
    return body


_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class FakeMetronomeApp:
    """The WSGI application; thread-safe, so the server may be threaded."""

    def __init__(
        self,
        data: FakeData,
        *,
        token: str = TOKEN,
        empty_page_every: int = 3,
        faults: Faults | None = None,
        latency: float = 0.0,
        rate_limit: float | None = None,
        tamper: Callable[[str, dict[str, Any]], Any] | None = None,
        ignores_cursor: Callable[[str], bool] | None = None,
    ) -> None:
        self.data = data
        #: Hostile tests: on the paths it accepts, a listing ignores the cursor it
        #: is sent (answers its first page again) and answers a fresh cursor every
        #: time, the last page included: a listing that never ends.
        self.ignores_cursor = ignores_cursor
        self._fresh_cursors = 0
        #: Hostile tests: rewrites each list page `(path, body) -> body` before it
        #: is sent, to serve what the spec rules out (odd items, bad cursors).
        self.tamper = tamper
        self.token = token
        self.faults = faults or Faults()
        #: Seconds added to every answer, to model network and server time.
        self.latency = latency
        #: Server-side limit in requests/second (a token bucket holding one second
        #: of requests); beyond it the answer is 429 with Retry-After.
        self.rate_limit = rate_limit
        self._tokens = rate_limit or 0.0
        self._refilled = time.monotonic()
        self.rate_limited = 0
        #: Every Nth page position of a listing first answers an empty page with a
        #: cursor (0 disables), as the real API sometimes does.
        self.empty_page_every = empty_page_every
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: Each request's path as sent, before any percent-decoding (`requests`
        #: holds the decoded one).
        self.raw_paths: list[str] = []
        self.lock = threading.Lock()
        self.url_map = Map(
            [
                Rule("/v1/customers", endpoint="customers", methods=["GET"]),
                Rule("/v1/plans", endpoint="plans", methods=["GET"]),
                Rule(
                    "/v1/planDetails/<plan_id>/charges",
                    endpoint="charges",
                    methods=["GET"],
                ),
                Rule(
                    "/v1/customers/<customer_id>/costs",
                    endpoint="costs",
                    methods=["GET"],
                ),
                Rule(
                    "/v1/customers/<customer_id>/plans",
                    endpoint="customer_plans",
                    methods=["GET"],
                ),
                Rule(
                    "/v1/customers/<customer_id>/invoices",
                    endpoint="invoices",
                    methods=["GET"],
                ),
                Rule("/v2/contracts/list", endpoint="contracts", methods=["POST"]),
                Rule(
                    "/v1/contracts/customerBalances/list",
                    endpoint="balances",
                    methods=["POST"],
                ),
                Rule("/v1/credit-types/list", endpoint="credit_types", methods=["GET"]),
                Rule(
                    "/v1/billable-metrics", endpoint="billable_metrics", methods=["GET"]
                ),
                Rule(
                    "/v1/contract-pricing/products/list",
                    endpoint="products",
                    methods=["POST"],
                ),
                Rule(
                    "/v1/contract-pricing/rate-cards/list",
                    endpoint="rate_cards",
                    methods=["POST"],
                ),
                Rule("/v1/usage", endpoint="usage", methods=["POST"]),
                Rule("/v1/auditLogs", endpoint="audit_logs", methods=["GET"]),
                Rule(
                    "/v1/credits/listGrants", endpoint="credit_grants", methods=["POST"]
                ),
                Rule(
                    "/v1/credits/listEntries",
                    endpoint="credit_ledger_entries",
                    methods=["POST"],
                ),
                Rule(
                    "/v1/customer-alerts/list",
                    endpoint="customer_alerts",
                    methods=["POST"],
                ),
                Rule(
                    "/v1/getCustomerBillingProviderConfigurations",
                    endpoint="billing_provider_configurations",
                    methods=["POST"],
                ),
            ]
        )

    # -- helpers for tests ------------------------------------------------------------
    def count(self, predicate: Callable[[str], bool] | None = None) -> int:
        """Requests served so far whose path matches `predicate`."""
        with self.lock:
            return sum(
                1 for path, _ in self.requests if predicate is None or predicate(path)
            )

    def quiesce(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no request arrived for `quiet` seconds.

        A killed client's last requests may still be in the socket backlog;
        tests call this before `reset_requests` so they are not counted twice.
        """
        deadline = time.monotonic() + timeout
        seen = self.count()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.count()
            if now == seen:
                return
            seen = now

    def reset_requests(self) -> None:
        """Forget the request log (between runs of a test)."""
        with self.lock:
            self.requests.clear()
            self.raw_paths.clear()

    # -- WSGI ------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        with self.lock:
            self.requests.append((request.path, _request_fields(request)))
            raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or "?"
            self.raw_paths.append(raw.split("?", 1)[0])
        if self.rate_limit is not None and not self._take_token():
            return self._too_many_requests()(environ, start_response)
        if self.latency:
            time.sleep(self.latency)
        fault = self.faults.draw(request.path)
        try:
            if fault is not None and fault not in {"reset", "slow", "truncated"}:
                response = self._fault_response(fault)
            else:
                response = self.dispatch(request)
        except HTTPException as exc:
            response = (
                exc.get_response()
                if isinstance(exc, _ApiError)
                else _json_response(
                    {"message": exc.description}, status=exc.code or 500
                )
            )
        if fault == "slow":
            time.sleep(self.faults.slow_seconds)
        elif fault == "truncated":
            if response.status_code == 200:
                body = response.get_data()
                response.set_data(body[: len(body) // 2])
            else:  # an error answer stays an error answer: not a fault after all
                self.faults.void(fault)
        elif fault == "reset":
            return self._reset_mid_body(environ, response)
        return response(environ, start_response)

    def _take_token(self) -> bool:
        assert self.rate_limit is not None
        with self.lock:
            now = time.monotonic()
            self._tokens = min(
                self.rate_limit, self._tokens + (now - self._refilled) * self.rate_limit
            )
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self.rate_limited += 1
            return False

    def _too_many_requests(self) -> Response:
        assert self.rate_limit is not None
        response = _json_response({"message": "Too many requests"}, status=429)
        wait_ms = max(1, int(1000 / self.rate_limit))
        response.headers["Retry-After"] = "1"
        response.headers["retry-after-ms"] = str(wait_ms)
        response.headers["X-Metronome-Rate-Limit-Type"] = "client"
        return response

    def _fault_response(self, fault: str) -> Response:
        if fault == "429_retry_after":
            response = _json_response({"message": "Too many requests"}, status=429)
            response.headers["Retry-After"] = self.faults.retry_after
            response.headers["retry-after-ms"] = str(
                int(float(self.faults.retry_after) * 1000)
            )
            response.headers["X-Metronome-Rate-Limit-Type"] = "client"
            return response
        if fault == "429_bare":
            response = _json_response({"message": "Too many requests"}, status=429)
            response.headers["X-Metronome-Rate-Limit-Type"] = "customer"
            return response
        return _json_response({"message": "Internal server error"}, status=int(fault))

    @staticmethod
    def _reset_mid_body(environ: dict[str, Any], response: Response) -> NoReturn:
        """Send headers and half the body, then close the connection."""
        body = response.get_data()
        sock: socket.socket = environ["werkzeug.socket"]
        head = (
            f"HTTP/1.1 {response.status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            sock.sendall(head + body[: len(body) // 2])
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # werkzeug treats a ConnectionError as a dropped connection: no log, no reply.
        raise ConnectionResetError("fault injected: connection reset mid-body")

    def dispatch(self, request: Request) -> Response:
        """Authenticate, route and answer one request."""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise _ApiError(401, "Unauthorized")
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except NotFound:
            raise _ApiError(404, "Not found") from None
        except MethodNotAllowed:
            raise _ApiError(405, "Method not allowed") from None
        # Metronome's ids are uuids: any case names the same customer or plan.
        values = {
            key: value.lower()
            if isinstance(value, str) and _UUID_TEXT.fullmatch(value)
            else value
            for key, value in values.items()
        }
        return getattr(self, f"on_{endpoint}")(request, **values)

    def on_customers(self, request: Request) -> Response:
        only_archived = request.args.get("only_archived", "false")
        if only_archived not in {"true", "false"}:
            raise _ApiError(400, "only_archived must be a boolean")
        items = (
            self.data.archived_customers
            if only_archived == "true"
            else self.data.customers
        )
        return self._page(request, f"customers:{only_archived}", items)

    def on_plans(self, request: Request) -> Response:
        return self._page(request, "plans", self.data.plans)

    def on_charges(self, request: Request, plan_id: str) -> Response:
        _require_uuid(plan_id, "plan_id")
        if plan_id not in self.data.charges:
            raise _ApiError(404, f"Plan not found: {plan_id}")
        if plan_id in self.data.forced_status:
            raise _ApiError(self.data.forced_status[plan_id], "Forced error")
        return self._page(request, f"charges:{plan_id}", self.data.charges[plan_id])

    def on_costs(self, request: Request, customer_id: str) -> Response:
        _require_uuid(customer_id, "customer_id")
        if self.data.customer(customer_id) is None or customer_id in self.data.deleted:
            raise _ApiError(404, f"Customer not found: {customer_id}")
        if customer_id in self.data.forced_status:
            raise _ApiError(self.data.forced_status[customer_id], "Forced error")
        starting_on = _required_timestamp(request, "starting_on")
        ending_before = _required_timestamp(request, "ending_before")
        if starting_on >= ending_before:
            raise _ApiError(400, "starting_on must be before ending_before")
        if customer_id in self.data.unsupported:
            raise _ApiError(
                400,
                "Costs are not supported for customers whose plan includes a "
                "UNIQUE-type billable metric",
            )
        first = starting_on.date()
        days: list[date] = []
        day = first
        while datetime(day.year, day.month, day.day, tzinfo=UTC) < ending_before:
            days.append(day)
            day += timedelta(days=1)
        listing = (
            f"costs:{customer_id}:{starting_on.isoformat()}:{ending_before.isoformat()}"
        )
        return self._page(
            request,
            listing,
            days,
            render=lambda d: self.data.costs_item(customer_id, d),
        )

    def on_customer_plans(self, request: Request, customer_id: str) -> Response:
        _require_uuid(customer_id, "customer_id")
        if self.data.customer(customer_id) is None or customer_id in self.data.deleted:
            raise _ApiError(404, f"Customer not found: {customer_id}")
        return self._page(
            request,
            f"customer-plans:{customer_id}",
            self.data.customer_plans.get(customer_id, []),
        )

    def on_credit_types(self, request: Request) -> Response:
        return self._page(request, "credit-types", self.data.credit_types)

    def on_billable_metrics(self, request: Request) -> Response:
        include_archived = request.args.get("include_archived", "false")
        if include_archived not in {"true", "false"}:
            raise _ApiError(400, "include_archived must be a boolean")
        metrics = [
            metric
            for metric in self.data.billable_metrics
            if include_archived == "true" or metric.get("archived_at") is None
        ]
        return self._page(request, f"billable-metrics:{include_archived}", metrics)

    def on_products(self, request: Request) -> Response:
        archive_filter = _json_body(request).get("archive_filter", "NOT_ARCHIVED")
        if archive_filter not in {"ARCHIVED", "NOT_ARCHIVED", "ALL"}:
            raise _ApiError(400, "archive_filter must be ARCHIVED, NOT_ARCHIVED or ALL")
        products = [
            product
            for product in self.data.products
            if archive_filter == "ALL"
            or (archive_filter == "ARCHIVED") == ("archived_at" in product)
        ]
        return self._page(request, f"products:{archive_filter}", products)

    def on_rate_cards(self, request: Request) -> Response:
        if _json_body(request):
            raise _ApiError(400, "the rate cards list takes no body properties")
        return self._page(request, "rate-cards", self.data.rate_cards)

    def _billing_customer(self, endpoint: str, customer_id: Any) -> str:
        """The customer a billing endpoint is asked about: a known uuid, or an error."""
        if not isinstance(customer_id, str):
            raise _ApiError(400, "customer_id is required and must be a string")
        if _UUID_TEXT.fullmatch(customer_id):
            customer_id = customer_id.lower()
        _require_uuid(customer_id, "customer_id")
        if self.data.customer(customer_id) is None or customer_id in self.data.deleted:
            raise _ApiError(404, f"Customer not found: {customer_id}")
        forced = self.data.forced.get((endpoint, customer_id))
        if forced is not None:
            raise _ApiError(forced, "Forced error")
        return customer_id

    def on_invoices(self, request: Request, customer_id: str) -> Response:
        self._billing_customer("invoices", customer_id)
        args = request.args
        starting_on = _optional_timestamp(request, "starting_on")
        ending_before = _optional_timestamp(request, "ending_before")
        sort = args.get("sort")
        if sort not in {None, "date_asc", "date_desc"}:
            raise _ApiError(400, "sort must be date_asc or date_desc")
        kind = args.get("type")
        if kind not in {None, "USAGE", "USAGE_CONSOLIDATED", "SCHEDULED"}:
            raise _ApiError(400, "type must be USAGE, USAGE_CONSOLIDATED or SCHEDULED")
        invoices = [
            invoice
            for invoice in self.data.invoices(customer_id)
            if (
                starting_on is None
                or datetime.fromisoformat(invoice["start_timestamp"]) >= starting_on
            )
            and (
                ending_before is None
                or datetime.fromisoformat(invoice["end_timestamp"]) <= ending_before
            )
            and args.get("status") in {None, invoice["status"]}
            and kind in {None, invoice["type"]}
        ]
        if sort is None:  # "ordered by creation date descending by default"
            invoices.reverse()
        else:  # by issued_at; drafts, not issued yet, last
            invoices.sort(
                key=lambda i: (i.get("issued_at") is None, i.get("issued_at") or ""),
                reverse=sort == "date_desc",
            )
        filters = sorted(
            (k, v) for k, v in args.items(multi=True) if k not in {"next_page", "limit"}
        )
        listing = hashlib.sha256(
            f"invoices:{customer_id}:{filters}".encode()
        ).hexdigest()
        return self._page(request, listing, invoices)

    def on_contracts(self, request: Request) -> Response:
        body = _json_body(request)
        customer_id = self._billing_customer("contracts", body.get("customer_id"))
        for flag in ("include_archived", "include_balance", "include_ledgers"):
            if not isinstance(body.get(flag, False), bool):
                raise _ApiError(400, f"{flag} must be a boolean")
        if "starting_at" in body and "covering_date" in body:
            raise _ApiError(400, "starting_at cannot be combined with covering_date")
        contracts = [
            contract
            for contract in self.data.contracts(customer_id)
            if body.get("include_archived") or "archived_at" not in contract
        ]
        paging = (_body_limit(body, maximum=20), _body_cursor(body, "cursor"))
        return self._page(
            request,
            f"contracts:{customer_id}:{bool(body.get('include_archived'))}",
            contracts,
            paging=paging,
            cursor_key="cursor",
            last_page_has_cursor=False,  # the spec's shape: {"data": [...]} only
        )

    def on_balances(self, request: Request) -> Response:
        body = _json_body(request)
        customer_id = self._billing_customer("balances", body.get("customer_id"))
        flags = {}
        for flag in (
            "include_archived",
            "include_balance",
            "include_contract_balances",
            "include_ledgers",
        ):
            flags[flag] = body.get(flag, False)
            if not isinstance(flags[flag], bool):
                raise _ApiError(400, f"{flag} must be a boolean")
        balances = [
            {
                k: v
                for k, v in item.items()
                if not k.startswith("_")
                and (k != "balance" or flags["include_balance"])
                and (k != "ledger" or flags["include_ledgers"])
            }
            for item in self.data.balances(customer_id)
            if (flags["include_contract_balances"] or not item["_contract_level"])
            and (flags["include_archived"] or not item["_archived"])
        ]
        paging = (_body_limit(body, maximum=25), _body_cursor(body, "next_page"))
        return self._page(
            request,
            f"balances:{customer_id}:{sorted(flags.items())}",
            balances,
            paging=paging,
        )

    def on_credit_grants(self, request: Request) -> Response:
        """Every grant, or those of `customer_ids` / `credit_type_ids` / `credit_grant_ids`."""
        body = _json_body(request)
        filters = {}
        for name in ("credit_grant_ids", "customer_ids", "credit_type_ids"):
            value = body.get(name)
            if value is not None and (
                not isinstance(value, list)
                or not all(isinstance(v, str) for v in value)
            ):
                raise _ApiError(400, f"{name} must be a list of ids")
            filters[name] = value
        if filters["credit_grant_ids"] is not None and (
            filters["customer_ids"] is not None
            or filters["credit_type_ids"] is not None
        ):
            raise _ApiError(400, "credit_grant_ids excludes the other filters")
        grants = [
            grant
            for grant in self.data.credit_grants
            if (
                filters["credit_grant_ids"] is None
                or grant["id"] in filters["credit_grant_ids"]
            )
            and (
                filters["customer_ids"] is None
                or grant["customer_id"] in filters["customer_ids"]
            )
            and (
                filters["credit_type_ids"] is None
                or grant["grant_amount"]["credit_type"]["id"]
                in filters["credit_type_ids"]
            )
        ]
        listing = hashlib.sha256(
            f"credit-grants:{sorted(body.items())}".encode()
        ).hexdigest()
        return self._page(request, listing, grants)

    #: Customers per page of /v1/credits/listEntries (it takes no `limit`).
    LEDGERS_PER_PAGE = 25

    def on_credit_ledger_entries(self, request: Request) -> Response:
        """Each customer's ledgers with the entries effective in [starting_on,
        ending_before), one item per customer; no `limit`."""
        body = _json_body(request)
        starting_on = (
            _timestamp(body["starting_on"], "starting_on")
            if "starting_on" in body
            else None
        )
        ending_before = (
            _timestamp(body["ending_before"], "ending_before")
            if "ending_before" in body
            else None
        )
        if ending_before is not None and ending_before > datetime.now(UTC):
            raise _ApiError(400, "ending_before must not be in the future")
        sort = request.args.get("sort", "asc")
        if sort not in {"asc", "desc"}:
            raise _ApiError(400, "sort must be asc or desc")
        customers = body.get("customer_ids")
        credit_types = body.get("credit_type_ids")
        for name, value in (
            ("customer_ids", customers),
            ("credit_type_ids", credit_types),
        ):
            if value is not None and (
                not isinstance(value, list)
                or not all(isinstance(v, str) for v in value)
            ):
                raise _ApiError(400, f"{name} must be a list of ids")

        def effective(entry: dict[str, Any]) -> bool:
            moment = datetime.fromisoformat(entry["effective_at"])
            return (starting_on is None or moment >= starting_on) and (
                ending_before is None or moment < ending_before
            )

        def render(item: dict[str, Any]) -> dict[str, Any]:
            ledgers = []
            for ledger in item["ledgers"]:
                if (
                    credit_types is not None
                    and ledger["credit_type"]["id"] not in credit_types
                ):
                    continue
                shown = dict(ledger)
                for kind in ("entries", "pending_entries"):
                    entries = [e for e in ledger[kind] if effective(e)]
                    shown[kind] = entries[::-1] if sort == "desc" else entries
                ledgers.append(shown)
            return {**item, "ledgers": ledgers}

        items = [
            item
            for customer_id, item in self.data.credit_ledgers.items()
            if customers is None or customer_id in customers
        ]
        listing = hashlib.sha256(
            f"ledgers:{sorted(body.items())}:{sort}".encode()
        ).hexdigest()
        return self._page(
            request,
            listing,
            items,
            render,
            paging=(self.LEDGERS_PER_PAGE, request.args.get("next_page")),
        )

    def on_customer_alerts(self, request: Request) -> Response:
        """A customer's alerts; only enabled ones unless `alert_statuses` says (in
        any case the spec allows); no `limit`."""
        body = _json_body(request)
        customer_id = self._billing_customer("alerts", body.get("customer_id"))
        statuses = body.get("alert_statuses", ["enabled"])
        if (
            not isinstance(statuses, list)
            or not statuses
            or not all(
                isinstance(s, str)
                and s
                in {"enabled", "disabled", "archived"}
                | {v.upper() for v in ("enabled", "disabled", "archived")}
                | {v.capitalize() for v in ("enabled", "disabled", "archived")}
                for s in statuses
            )
        ):
            raise _ApiError(400, "alert_statuses must be ENABLED, DISABLED, ARCHIVED")
        wanted = sorted({s.lower() for s in statuses})
        alerts = [
            item
            for item in self.data.customer_alerts(customer_id)
            if item["alert"]["status"] in wanted
        ]
        return self._page(
            request,
            f"alerts:{customer_id}:{wanted}",
            alerts,
            paging=(MAX_LIMIT, request.args.get("next_page")),
        )

    def on_billing_provider_configurations(self, request: Request) -> Response:
        """A customer's configurations, archived ones with `include_archived`:
        `{"data": [...]}` alone, no paging (as the spec and the client read it)."""
        body = _json_body(request)
        customer_id = self._billing_customer(
            "billing_providers", body.get("customer_id")
        )
        include_archived = body.get("include_archived", False)
        if not isinstance(include_archived, bool):
            raise _ApiError(400, "include_archived must be a boolean")
        configurations = [
            item
            for item in self.data.billing_provider_configurations(customer_id)
            if include_archived or item["archived_at"] is None
        ]
        return self._page(
            request,
            f"billing-providers:{customer_id}:{include_archived}",
            configurations,
            paging=(max(len(configurations), 1), request.args.get("next_page")),
            last_page_has_cursor=False,
        )

    def on_usage(self, request: Request) -> Response:
        """Usage of every customer and metric, one page per (customer, metric)
        series, as the API is reported to page; no page size."""
        body = _json_body(request)
        size = body.get("window_size")
        if not isinstance(size, str) or size.lower() not in USAGE_WINDOWS:
            raise _ApiError(400, "window_size must be hour, day or none")
        starting_on = _body_midnight(body, "starting_on")
        ending_before = _body_midnight(body, "ending_before")
        if starting_on >= ending_before:
            raise _ApiError(400, "starting_on must be before ending_before")
        customer_ids = body.get("customer_ids")
        if customer_ids is not None:
            if not isinstance(customer_ids, list) or not all(
                isinstance(c, str) for c in customer_ids
            ):
                raise _ApiError(400, "customer_ids must be a list of uuids")
            for customer_id in customer_ids:
                _require_uuid(customer_id, "customer_ids")
        metrics = body.get("billable_metrics")
        if metrics is not None and (
            not isinstance(metrics, list)
            or not all(
                isinstance(m, dict) and isinstance(m.get("id"), str) for m in metrics
            )
        ):
            raise _ApiError(400, "billable_metrics must be a list of {id}")
        series = self.data.usage_series(
            customer_ids, None if metrics is None else {m["id"] for m in metrics}
        )
        step = USAGE_WINDOWS[size.lower()] or (ending_before - starting_on)
        listing = hashlib.sha256(
            json.dumps(
                [
                    size.lower(),
                    str(starting_on),
                    str(ending_before),
                    customer_ids,
                    metrics,
                ]
            ).encode()
        ).hexdigest()

        def render(pair: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
            customer_id, metric = pair
            rows = []
            start = starting_on
            while start < ending_before:
                end = min(start + step, ending_before)
                rows.append(self.data.usage_row(customer_id, metric, start, end))
                start = end
            return rows

        return self._page(
            request,
            listing,
            series,
            render,
            paging=(1, request.args.get("next_page")),
            flatten=True,
        )

    def on_audit_logs(self, request: Request) -> Response:
        """The audit log: a cursor on every page, the last (empty) one included,
        and `starting_on`/`ending_before` refused together with `next_page`."""
        args = request.args
        limit = _limit(request)
        cursor = None if self._ignoring(request) else args.get("next_page")
        if cursor is not None and ("starting_on" in args or "ending_before" in args):
            raise _ApiError(
                400, "starting_on and ending_before cannot be used with next_page"
            )
        if ("resource_id" in args) != ("resource_type" in args):
            raise _ApiError(400, "resource_id and resource_type go together")
        if cursor is not None:
            query, offset = _decode_audit_cursor(cursor)
        else:
            sort = args.get("sort", "date_asc")
            if sort not in {"date_asc", "date_desc"}:
                raise _ApiError(400, "sort must be date_asc or date_desc")
            for name in ("starting_on", "ending_before"):
                _optional_timestamp(request, name)  # 400 unless RFC 3339
            query = {
                k: args[k]
                for k in (
                    "starting_on",
                    "ending_before",
                    "resource_id",
                    "resource_type",
                )
                if k in args
            } | {"sort": sort}
            offset = 0
        starting_on = (
            datetime.fromisoformat(query["starting_on"])
            if "starting_on" in query
            else None
        )
        ending_before = (
            datetime.fromisoformat(query["ending_before"])
            if "ending_before" in query
            else None
        )
        entries = [
            entry
            for entry in self.data.audit_logs
            if (
                starting_on is None
                or datetime.fromisoformat(entry["timestamp"]) >= starting_on
            )
            and (
                ending_before is None
                or datetime.fromisoformat(entry["timestamp"]) < ending_before
            )
            and query.get("resource_id") in {None, entry["resource_id"]}
            and query.get("resource_type") in {None, entry["resource_type"]}
        ]
        if query["sort"] == "date_desc":
            entries.reverse()
        chunk = entries[offset : offset + limit]
        body = {
            "data": chunk,
            "next_page": _encode_audit_cursor(query, offset + len(chunk)),
        }
        return self._list_response(request, body)

    # -- pagination ------------------------------------------------------------------
    def _page(
        self,
        request: Request,
        listing: str,
        items: list[Any],
        render: Callable[[Any], Any] | None = None,
        *,
        paging: tuple[int, str | None] | None = None,
        cursor_key: str = "next_page",
        last_page_has_cursor: bool = True,
        flatten: bool = False,
    ) -> Response:
        """One page of `items`; `limit` and the cursor from the query, or `paging`
        (limit, cursor) when the endpoint takes them in its JSON body."""
        if paging is None:
            limit, cursor = _limit(request), request.args.get("next_page")
        else:
            limit, cursor = paging
        offset, empty_served = 0, False
        if cursor is not None and not self._ignoring(request):
            offset, empty_served = _decode_cursor(cursor, listing)
        position = offset // max(limit, 1)
        if (
            self.empty_page_every
            and not empty_served
            and offset < len(items)
            and position % self.empty_page_every == self.empty_page_every - 1
        ):
            return self._list_response(
                request,
                {"data": [], cursor_key: _encode_cursor(listing, offset, empty=True)},
                cursor_key,
            )
        chunk = items[offset : offset + limit]
        end = offset + len(chunk)
        if render is not None:
            chunk = [render(item) for item in chunk]
        if flatten:
            chunk = [row for rows in chunk for row in rows]
        if end < len(items):
            return self._list_response(
                request,
                {"data": chunk, cursor_key: _encode_cursor(listing, end, empty=False)},
                cursor_key,
            )
        last: dict[str, Any] = {"data": chunk}
        if last_page_has_cursor:
            last[cursor_key] = None
        return self._list_response(request, last, cursor_key)

    def _ignoring(self, request: Request) -> bool:
        """Whether this listing ignores the cursor (`ignores_cursor`)."""
        return self.ignores_cursor is not None and self.ignores_cursor(request.path)

    def _list_response(
        self, request: Request, body: dict[str, Any], cursor_key: str = "next_page"
    ) -> Response:
        if self._ignoring(request):
            with self.lock:
                self._fresh_cursors += 1
                body[cursor_key] = f"fresh-{self._fresh_cursors}"
        if self.tamper is not None:
            return _json_response(self.tamper(request.path, body))
        return _json_response(body)


def _request_fields(request: Request) -> dict[str, str]:
    """Query parameters, and a JSON body's top-level fields as query-like strings."""
    fields = dict(request.args)
    if request.method == "POST":
        try:
            body = json.loads(request.get_data(cache=True) or b"{}")
        except ValueError:
            body = None
        if isinstance(body, dict):
            for name, value in body.items():
                text = json.dumps(value) if not isinstance(value, str) else value
                fields.setdefault(name, text)
    return fields


def _json_body(request: Request) -> dict[str, Any]:
    """A POST's JSON object body, as the API requires one."""
    if request.mimetype != "application/json":
        raise _ApiError(400, "Content-Type must be application/json")
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        raise _ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _ApiError(400, "the body must be a JSON object")
    return body


def _limit(request: Request) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return MAX_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise _ApiError(400, f"limit must be an integer, got {raw!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _ApiError(400, f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _body_limit(body: dict[str, Any], *, maximum: int) -> int:
    limit = body.get("limit", maximum)
    if type(limit) is not int or not 1 <= limit <= maximum:
        raise _ApiError(400, f"limit must be an integer between 1 and {maximum}")
    return limit


def _body_cursor(body: dict[str, Any], name: str) -> str | None:
    cursor = body.get(name)
    if cursor is not None and not isinstance(cursor, str):
        raise _ApiError(400, f"{name} must be a string")
    return cursor


def _optional_timestamp(request: Request, name: str) -> datetime | None:
    return _required_timestamp(request, name) if name in request.args else None


def _required_timestamp(request: Request, name: str) -> datetime:
    return _timestamp(request.args.get(name), name)


def _timestamp(raw: Any, name: str) -> datetime:
    """A required RFC 3339 timestamp with a zone, in UTC (400 otherwise)."""
    if not isinstance(raw, str):
        raise _ApiError(400, f"{name} is required")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise _ApiError(400, f"{name} must be an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise _ApiError(400, f"{name} must include a timezone")
    return parsed.astimezone(UTC)


#: Usage window sizes (any case, as the spec allows) and their length; none: one.
USAGE_WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "none": None}


def _body_midnight(body: dict[str, Any], name: str) -> datetime:
    """A usage bound: an RFC 3339 UTC midnight (the API answers 400 otherwise)."""
    parsed = _timestamp(body.get(name), name)
    if parsed.time() != datetime.min.time():
        raise _ApiError(400, f"{name} must be a UTC midnight")
    return parsed


def _ts_seconds(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_audit_cursor(query: dict[str, str], offset: int) -> str:
    raw = json.dumps({"q": query, "o": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_audit_cursor(cursor: str) -> tuple[dict[str, str], int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        query, offset = raw["q"], raw["o"]
        if not isinstance(query, dict) or type(offset) is not int or offset < 0:
            raise ValueError(cursor)
        return query, offset
    except (ValueError, KeyError, TypeError):
        raise _ApiError(400, "Invalid next_page cursor") from None


def _require_uuid(value: str, name: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise _ApiError(400, f"{name} must be a uuid") from None


def _encode_cursor(listing: str, offset: int, *, empty: bool) -> str:
    raw = f"{listing}|{offset}|{int(empty)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, listing: str) -> tuple[int, bool]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        owner, offset, empty = raw.rsplit("|", 2)
        if owner != listing:
            raise ValueError(owner)
        return int(offset), empty == "1"
    except ValueError:
        raise _ApiError(400, "Invalid next_page cursor") from None


class _QuietHandler(WSGIRequestHandler):
    """Tests count requests through the app; an access log line each is noise.

    werkzeug's server closes every connection (no keep-alive), unlike the real
    API: each request here pays a TCP connect, the tap's and the bare loop's alike.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FakeMetronomeServer:
    """Serves a `FakeMetronomeApp` on a free loopback port in a background thread."""

    def __init__(self, app: FakeMetronomeApp, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self._server = make_server(
            host, port, app, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )

    def __enter__(self) -> FakeMetronomeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Begin answering requests."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """Serve a fake account until interrupted (used by `make demo`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--customers", type=int, default=25)
    parser.add_argument("--archived", type=int, default=5)
    parser.add_argument("--plans", type=int, default=4)
    parser.add_argument("--charges-per-plan", type=int, default=3)
    parser.add_argument("--port-file", help="write the chosen port here once listening")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    args = parser.parse_args(argv)
    data = FakeData.generate(
        customers=args.customers,
        archived=args.archived,
        plans=args.plans,
        charges_per_plan=args.charges_per_plan,
    )
    server = FakeMetronomeServer(
        FakeMetronomeApp(data, latency=args.latency), port=args.port
    )
    server.start()
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as handle:
            handle.write(str(server.port))
    print(f"Fake Metronome API on {server.url} (token {TOKEN})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
