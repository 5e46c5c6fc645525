"""Plans and pricing: plans, plan charges, credit types, billable metrics, products.

Everything but `plans` (a parent listing) is a `ListStream` declaration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from tap_metronome.streams.base import ListStream, ParentStream, item_id


class PlansStream(ParentStream):
    """All plans; the parent listing of plan charges."""

    name = "plans"
    path = "/v1/plans"
    primary_keys: ClassVar[list[str]] = ["id"]

    def fetch_all(self) -> Iterator[dict[str, Any]]:
        """Every plan as listed (a repeat is skipped, and logged, in post_process)."""
        for plan in self.list_items(self.path):
            item_id(plan, stream=self.name, path=self.path)
            yield plan


class PlanChargesStream(ListStream):
    """The charges of every plan; the API item has no plan id, so the tap adds it."""

    name = "plan_charges"
    path = "/v1/planDetails/{plan_id}/charges"
    parent = "plans"
    primary_keys: ClassVar[list[str]] = ["plan_id", "id"]


class CreditTypesStream(ListStream):
    """Pricing units (currencies and custom units) that costs and prices refer to."""

    name = "credit_types"
    path = "/v1/credit-types/list"
    primary_keys: ClassVar[list[str]] = ["id"]


class BillableMetricsStream(ListStream):
    """How usage events are aggregated into billable quantities, archived ones too."""

    name = "billable_metrics"
    path = "/v1/billable-metrics"
    description = "Archived metrics included (include_archived=true)."
    params: ClassVar[dict[str, Any]] = {"include_archived": "true"}
    primary_keys: ClassVar[list[str]] = ["id"]


class ProductsStream(ListStream):
    """Contract products, archived ones too."""

    name = "products"
    path = "/v1/contract-pricing/products/list"
    description = "Archived products included (archive_filter ALL)."
    method = "POST"
    body: ClassVar[dict[str, Any]] = {"archive_filter": "ALL"}
    primary_keys: ClassVar[list[str]] = ["id"]


class RateCardsStream(ListStream):
    """Contract rate cards (their rates are a separate, per-rate-card listing)."""

    name = "rate_cards"
    path = "/v1/contract-pricing/rate-cards/list"
    method = "POST"
    body: ClassVar[dict[str, Any]] = {}
    primary_keys: ClassVar[list[str]] = ["id"]
