"""Contracts: what each customer has committed to (balances: `balances.py`)."""

from __future__ import annotations

from typing import Any, ClassVar

from tap_metronome.pagination import PageStyle
from tap_metronome.streams.base import ListStream


class ContractsStream(ListStream):
    """Every customer's contracts, archived ones too, with their commits and credits.

    The spec shows no pagination; the official client pages with `cursor` and
    `limit` (at most 20) in the body, and a `cursor` in the answer when there is
    more: both shapes are read.
    """

    name = "contracts"
    path = "/v2/contracts/list"
    description = "Archived contracts included (include_archived true)."
    method = "POST"
    parent = "customers"
    parent_in = "body"
    body: ClassVar[dict[str, Any]] = {"include_archived": True}
    page_style = PageStyle.BODY_CURSOR_PAGE_CURSOR_FIELD
    max_page_size = 20
    primary_keys: ClassVar[list[str]] = ["id"]
