"""Customers (the parent listing of per-customer streams) and their plans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from tap_metronome.streams.base import ListStream, ParentStream, item_id


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
