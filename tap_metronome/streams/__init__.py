"""The tap's streams, one module per family; `base` declares how a list stream works.

| module | streams |
|---|---|
| `customers` | customers, customer_plans (per customer) |
| `customers` | customer_alerts, billing_provider_configurations (per customer) |
| `costs` | customer_costs (per customer, incremental) |
| `invoices` | invoices, invoice_line_items (per customer, incremental, one read for both) |
| `contracts` | contracts (per customer) |
| `balances` | balances, balance_ledger_entries, balance_snapshots (per customer, one read for the three) |
| `pricing` | plans, plan_charges (per plan), credit_types, billable_metrics, products, rate_cards |
| `usage` | usage, audit_logs (account-wide, incremental) |
| `credits` | credit_grants, credit_ledger_entries (account-wide; the ledger incremental) |
"""

from __future__ import annotations

from tap_metronome.streams.balances import (
    BalanceLedgerEntriesStream,
    BalanceSnapshotsStream,
    BalancesStream,
)
from tap_metronome.streams.base import MetronomeStream, schema_dir
from tap_metronome.streams.contracts import ContractsStream
from tap_metronome.streams.costs import STATE_WRITES_PER_SYNC, CustomerCostsStream
from tap_metronome.streams.credits import CreditGrantsStream, CreditLedgerEntriesStream
from tap_metronome.streams.customers import (
    BillingProviderConfigurationsStream,
    CustomerAlertsStream,
    CustomerPlansStream,
    CustomersStream,
)
from tap_metronome.streams.invoices import InvoiceLineItemsStream, InvoicesStream
from tap_metronome.streams.pricing import (
    BillableMetricsStream,
    CreditTypesStream,
    PlanChargesStream,
    PlansStream,
    ProductsStream,
    RateCardsStream,
)
from tap_metronome.streams.usage import AuditLogsStream, UsageStream

#: Every stream the tap offers. The SDK syncs them in name order; none depends on
#: another having run (parent ids come from the tap's listing cache).
STREAM_TYPES: tuple[type[MetronomeStream], ...] = (
    CustomersStream,
    CustomerCostsStream,
    CustomerPlansStream,
    InvoicesStream,
    InvoiceLineItemsStream,
    ContractsStream,
    BalancesStream,
    BalanceLedgerEntriesStream,
    BalanceSnapshotsStream,
    PlansStream,
    PlanChargesStream,
    CreditTypesStream,
    BillableMetricsStream,
    ProductsStream,
    RateCardsStream,
    UsageStream,
    AuditLogsStream,
    CreditGrantsStream,
    CreditLedgerEntriesStream,
    CustomerAlertsStream,
    BillingProviderConfigurationsStream,
)
#: Their names (the SDK declares `name` per instance; these classes set it).
STREAM_NAMES = frozenset(t.name for t in STREAM_TYPES)  # type: ignore[misc]

__all__ = [
    "STATE_WRITES_PER_SYNC",
    "STREAM_NAMES",
    "STREAM_TYPES",
    "CustomerCostsStream",
    "MetronomeStream",
    "schema_dir",
]
