"""Customers (the parent listing of per-customer streams) and what each one has.

Plans, alerts, and billing provider configurations: one listing per customer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from tap_metronome.pagination import PageStyle
from tap_metronome.streams.base import ListStream, ParentStream, item_id, nested


class CustomersStream(ParentStream):
    """Active customers, then archived ones (a second pass with `only_archived`)."""

    name = "customers"
    path = "/v1/customers"
    description = "Active and archived customers."
    primary_keys: ClassVar[list[str]] = ["id"]

    def fetch_all(self) -> Iterator[dict[str, Any]]:
        """Each customer once, even if it was archived between the two passes.

        Read once per run, by whichever stream needs customers first (the tap's
        listing cache); costs follow this order.
        """
        seen: set[str] = set()
        passes: list[dict[str, Any]] = [{}]
        if self.services.settings.include_archived_customers:
            passes.append({"only_archived": "true"})
        duplicates = 0
        for params in passes:
            if self.dry_run and seen:  # `--test`: one page of customers is enough
                break
            for customer in self.list_items(self.path, params):
                customer_id = item_id(customer, stream=self.name, path=self.path)
                if customer_id in seen:
                    duplicates += 1
                    continue
                seen.add(customer_id)
                yield customer
        if duplicates:
            self.logger.info(
                "%d customers were listed both as active and as archived "
                "(archived during the sync); each was emitted once",
                duplicates,
            )


class CustomerPlansStream(ListStream):
    """The plans each customer is or was on, with their start and end."""

    name = "customer_plans"
    path = "/v1/customers/{customer_id}/plans"
    parent = "customers"
    primary_keys: ClassVar[list[str]] = ["customer_id", "id"]


class CustomerAlertsStream(ListStream):
    """Every customer's alerts (threshold notifications), whatever their status.

    The API lists only enabled alerts unless `alert_statuses` says otherwise, so
    every status is asked for (in the client's upper case). The item has no id
    of its own: the alert's id is one level down, and one alert applies to many
    customers, so the key is the customer and the alert.
    """

    name = "customer_alerts"
    path = "/v1/customer-alerts/list"
    description = (
        "Enabled, disabled and archived alerts (every alert_statuses), each with "
        "the customer's status."
    )
    method = "POST"
    parent = "customers"
    parent_in = "body"
    body: ClassVar[dict[str, Any]] = {
        "alert_statuses": ["ENABLED", "DISABLED", "ARCHIVED"]
    }
    page_style = PageStyle.CURSOR_PAGE_WITHOUT_LIMIT
    primary_keys: ClassVar[list[str]] = ["customer_id", "alert_id"]
    added_columns: ClassVar[dict[str, Any]] = {
        "alert_id": {
            "type": "string",
            "description": "The alert's id, alert.id (added by the tap).",
        }
    }

    def record_from_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item with its alert's id lifted into `alert_id`."""
        return {"alert_id": nested(item, "alert", "id"), **item}


class BillingProviderConfigurationsStream(ListStream):
    """Which billing provider (Stripe, a marketplace...) each customer bills through.

    The endpoint has no paging (the spec and the client read one answer); the
    item carries its customer and its own id.
    """

    name = "billing_provider_configurations"
    path = "/v1/getCustomerBillingProviderConfigurations"
    description = "Archived configurations included (include_archived true)."
    method = "POST"
    parent = "customers"
    parent_in = "body"
    body: ClassVar[dict[str, Any]] = {"include_archived": True}
    page_style = PageStyle.NO_PAGING
    primary_keys: ClassVar[list[str]] = ["id"]
