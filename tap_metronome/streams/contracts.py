"""Contracts and balances: what each customer has committed to and can draw on."""

from __future__ import annotations

from typing import Any, ClassVar

from tap_metronome.streams.base import ListStream

#: A customer whose listing answers 400 (not on contracts) or 404 (deleted since
#: the customers listing) is skipped for that stream only.
CUSTOMER_SKIPPABLE = frozenset({400, 404})


class ContractsStream(ListStream):
    """Every customer's contracts, archived ones too, with their commits and credits.

    The spec shows no pagination; the official client pages with `cursor` and
    `limit` (at most 20) in the body, and a `cursor` in the answer when there is
    more: both shapes are read.
    """

    name = "contracts"
    path = "/v2/contracts/list"
    method = "POST"
    parent = "customers"
    parent_in = "body"
    body: ClassVar[dict[str, Any]] = {"include_archived": True}
    cursor_in = "body"
    cursor_name = "cursor"
    max_page_size = 20
    skip_statuses = CUSTOMER_SKIPPABLE
    primary_keys: ClassVar[list[str]] = ["id"]


class BalancesStream(ListStream):
    """Every customer's commits and credits with balances, archived ones too."""

    name = "balances"
    path = "/v1/contracts/customerBalances/list"
    method = "POST"
    parent = "customers"
    parent_in = "body"
    body: ClassVar[dict[str, Any]] = {
        "include_archived": True,
        "include_balance": True,
        "include_contract_balances": True,
    }
    cursor_in = "body"
    max_page_size = 25
    skip_statuses = CUSTOMER_SKIPPABLE
    primary_keys: ClassVar[list[str]] = ["id"]
