"""The official client's (`metronome-sdk`) model of one item of each stream's endpoint.

A second reading of the spec, independent of ours: Metronome generates the
client from the same API. `tests/test_fake_api.py` reads the fake through the
client; `tests/test_spec_properties.py` walks these models field by field.
"""

from __future__ import annotations

from typing import Any

from metronome._models import validate_type
from metronome.types.shared.contract_v2 import ContractV2
from metronome.types.v1.audit_log_list_response import AuditLogListResponse
from metronome.types.v1.billable_metric_list_response import BillableMetricListResponse
from metronome.types.v1.contract_list_balances_response import (
    ContractListBalancesResponse,
)
from metronome.types.v1.contracts.product_list_response import ProductListResponse
from metronome.types.v1.contracts.rate_card_list_response import RateCardListResponse
from metronome.types.v1.credit_grant_list_entries_response import (
    CreditGrantListEntriesResponse,
)
from metronome.types.v1.credit_grant_list_response import CreditGrantListResponse
from metronome.types.v1.customer_detail import CustomerDetail
from metronome.types.v1.customer_list_costs_response import CustomerListCostsResponse
from metronome.types.v1.customer_retrieve_billing_configurations_response import (
    Data as BillingProviderConfiguration,
)
from metronome.types.v1.customers.customer_alert import CustomerAlert
from metronome.types.v1.customers.invoice import Invoice
from metronome.types.v1.customers.plan_list_response import (
    PlanListResponse as CustomerPlan,
)
from metronome.types.v1.plan_list_charges_response import PlanListChargesResponse
from metronome.types.v1.plan_list_response import PlanListResponse
from metronome.types.v1.pricing_unit_list_response import PricingUnitListResponse
from metronome.types.v1.usage_list_response import UsageListResponse

#: (method, path) of a list endpoint -> the client's type of one `data` item.
ITEM_MODELS: dict[tuple[str, str], Any] = {
    ("get", "/v1/customers"): CustomerDetail,
    ("get", "/v1/plans"): PlanListResponse,
    ("get", "/v1/planDetails/{plan_id}/charges"): PlanListChargesResponse,
    ("get", "/v1/customers/{customer_id}/plans"): CustomerPlan,
    ("post", "/v2/contracts/list"): ContractV2,
    ("post", "/v1/contracts/customerBalances/list"): ContractListBalancesResponse,
    ("get", "/v1/customers/{customer_id}/invoices"): Invoice,
    ("get", "/v1/credit-types/list"): PricingUnitListResponse,
    ("get", "/v1/billable-metrics"): BillableMetricListResponse,
    ("post", "/v1/contract-pricing/products/list"): ProductListResponse,
    ("post", "/v1/contract-pricing/rate-cards/list"): RateCardListResponse,
    ("post", "/v1/usage"): UsageListResponse,
    ("get", "/v1/auditLogs"): AuditLogListResponse,
    ("get", "/v1/customers/{customer_id}/costs"): CustomerListCostsResponse,
    ("post", "/v1/credits/listGrants"): CreditGrantListResponse,
    ("post", "/v1/credits/listEntries"): CreditGrantListEntriesResponse,
    ("post", "/v1/customer-alerts/list"): CustomerAlert,
    (
        "post",
        "/v1/getCustomerBillingProviderConfigurations",
    ): BillingProviderConfiguration,
}


def client_reads(method: str, path: str, item: Any) -> Any:
    """The item as the client's strict validation reads it (raises if it cannot)."""
    return validate_type(type_=ITEM_MODELS[(method, path)], value=item)
