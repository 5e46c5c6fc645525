"""Invoices and their line items: per customer, incremental, one read for both.

Why this module goes its own way: line items have no endpoint of their own; they
are in the invoices' responses. The SDK syncs one stream at a time (by name:
`invoice_line_items`, then `invoices`), and a stream can emit only its own
records. So the first of the two selected streams reads each customer's invoices
and, when the other is selected too, keeps them in a temporary file
(`shared.Spill`) for it: one request per customer (and page) for both streams,
and memory that does not grow with the account.

Bookmarks: per customer, `reread_from` is the earliest billing-period start that
can still change: the oldest DRAFT's, and at least `invoices_lookback_days`
before the run, so that recent voids and corrections are seen. The next run asks
for billing periods starting on or after it (`starting_on`). Each stream keeps
its own bookmarks, written only after its records: if a run stops between the
two streams, the next run reads from the earlier of the two and the first
stream re-emits a few rows, which its primary key makes harmless.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from tap_metronome.errors import ResponseError, one_line
from tap_metronome.paths import with_id
from tap_metronome.seen import SeenKeys
from tap_metronome.streams.base import MetronomeStream
from tap_metronome.streams.costs import STATE_WRITES_PER_SYNC
from tap_metronome.streams.partitions import Partitions, cancel_on_error
from tap_metronome.streams.shared import Spill
from tap_metronome.times import parse_date_time
from tap_metronome.windows import rfc3339

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: The state key of both streams' bookmarks: {date: [customer ids]}.
REREAD_FROM = "reread_from"
INVOICES_PATH = "/v1/customers/{customer_id}/invoices"

#: Line item fields that tell one line item of an invoice from another (not its
#: amounts, which change while the invoice is a draft).
IDENTITY_FIELDS = (
    "type",
    "name",
    "product_id",
    "starting_at",
    "ending_before",
    "commit_id",
    "commit_segment_id",
    "scheduled_charge_id",
    "subscription_id",
    "professional_service_id",
    "discount_id",
    "group_key",
    "group_value",
    "presentation_group_values",
    "pricing_group_values",
    "tier",
)
_IDENTITY_ENCODER = msgspec.json.Encoder(order="sorted", decimal_format="number")


def line_item_keys(lines: list[dict[str, Any]]) -> list[str]:
    """A key per line item, stable across runs: a hash of its identity fields.

    The credit type's and the applied commit's or credit's ids count too. Line
    items identical in all of these (the same charge twice) get `#2`, `#3`... in
    the order the API lists them.
    """
    seen: Counter[str] = Counter()
    keys = []
    for line in lines:
        identity = {name: line.get(name) for name in IDENTITY_FIELDS}
        for nested in ("credit_type", "applied_commit_or_credit"):
            value = line.get(nested)
            identity[f"{nested}.id"] = (
                value.get("id") if isinstance(value, dict) else None
            )
        digest = hashlib.sha256(_IDENTITY_ENCODER.encode(identity)).hexdigest()[:32]
        seen[digest] += 1
        keys.append(digest if seen[digest] == 1 else f"{digest}#{seen[digest]}")
    return keys


def _period_start(invoice: dict[str, Any], where: str) -> datetime:
    """The invoice's billing-period start: the replication key and the API's filter."""
    value = invoice.get("start_timestamp")
    try:
        return parse_date_time(value)
    except (TypeError, ValueError):
        msg = (
            f"{where} returned invoice {one_line(invoice.get('id'), 40)} without a "
            f"start_timestamp date-time (got {one_line(value, 40)})"
        )
        raise ResponseError(msg) from None


@dataclass
class CustomerInvoices:
    """One customer's invoices as read, checked enough to key and bookmark them."""

    customer_id: str
    since: date
    invoices: list[dict[str, Any]] = field(default_factory=list)

    def reread_from(self, *, lookback_days: int, today: date) -> date:
        """Where the next run starts: the oldest draft, at least the lookback."""
        earliest = today - timedelta(days=lookback_days)
        for invoice in self.invoices:
            if invoice.get("status") == "DRAFT":
                start = _period_start(invoice, "a kept invoice").date()
                earliest = min(earliest, start)
        return earliest


class InvoiceFamilyStream(MetronomeStream):
    """What `invoices` and `invoice_line_items` share: reads, bookmarks, fan-out."""

    path = INVOICES_PATH
    bookmark_key = REREAD_FROM
    is_sorted = False
    #: This stream writes its own STATE messages (`STATE_WRITES_PER_SYNC` per sync).
    STATE_MSG_FREQUENCY = 10**15
    #: The other stream of the pair.
    sibling: ClassVar[str] = ""

    def rows(self, read: CustomerInvoices) -> Iterator[dict[str, Any]]:
        """The records one customer's invoices make (each stream says how)."""
        raise NotImplementedError

    def settle_days(self) -> int:
        """As every per-customer stream's, and at least `invoices_lookback_days`.

        Voids and corrections are looked for that far back; an archived
        customer whose read still had a DRAFT is not settled at all.
        """
        return max(super().settle_days(), self.services.settings.invoices_lookback_days)

    def fetch(self, customer_id: str, since: date) -> CustomerInvoices:
        """One customer's invoices of billing periods from `since` (a worker thread)."""
        path = with_id(INVOICES_PATH, "customer_id", customer_id, stream=self.name)
        where = f"Stream {self.name}: GET {path}"
        read = CustomerInvoices(customer_id, since)
        params = {"starting_on": rfc3339(since), "sort": "date_asc"}
        for invoice in self.list_items(path, params):
            _period_start(invoice, where)  # checked now: the bookmark needs it
            lines = invoice.get("line_items")
            if not isinstance(lines, list) or not all(
                isinstance(x, dict) for x in lines
            ):
                msg = (
                    f"{where} returned invoice {one_line(invoice.get('id'), 40)} whose "
                    "line_items is not a list of objects"
                )
                raise ResponseError(msg)
            read.invoices.append(invoice)
        return read

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Each customer's rows, then its bookmark; STATE a bounded number of times."""
        settings = self.services.settings
        today = datetime.now(UTC).date()
        start = settings.first_day()
        customer_ids, complete_listing = self.customer_ids()
        listed = customer_ids if complete_listing else None
        bookmarks = self.read_bookmarks(listed)  # of customers still listed
        shared = self.services.shared_read(INVOICES_PATH)
        sibling = self.services.stream(self.sibling)
        assert isinstance(sibling, InvoiceFamilyStream)  # noqa: S101 - the pair's own name
        # The sibling still to run reads from this run's reads, if it can.
        tee = (
            sibling.selected
            and self.sibling not in shared.finished
            and not self.dry_run
        )
        spill = shared.spill
        sibling_bookmarks = sibling.read_bookmarks(listed) if tee else None
        # A bookmark is where the last run said to re-read from; a lookback raised
        # since then moves it back at once.
        lookback_start = today - timedelta(days=settings.invoices_lookback_days)

        def start_of(bookmark: date | None) -> date:
            if bookmark is None:
                return start
            return max(start, min(bookmark, lookback_start))

        since: dict[str, date] = {}
        for customer_id in customer_ids:
            own = start_of(bookmarks.get(customer_id))
            other = (
                start_of(sibling_bookmarks.get(customer_id))
                if sibling_bookmarks is not None
                else own
            )
            since[customer_id] = min(own, other)

        def read(customer_id: str) -> CustomerInvoices:
            if spill is not None:
                kept = spill.take(customer_id, since[customer_id])
                if kept is not None:  # checked when the first stream read them
                    return CustomerInvoices(customer_id, since[customer_id], kept)
            return self.fetch(customer_id, since[customer_id])

        if tee and shared.spill is None:
            shared.spill = Spill()
        partitions: Partitions[CustomerInvoices] = Partitions(
            self,
            customer_ids,
            parent="customers",
            on_skip=shared.spill.put_skip if tee and shared.spill else None,
        )
        flush_every = max(1, -(-len(customer_ids) // STATE_WRITES_PER_SYNC))
        rows = 0
        results = partitions.fetch(read)
        try:
            with cancel_on_error(
                results,
                self.services.client,
                dry_run=self.dry_run,
                on_stop=lambda: self.write_bookmarks(bookmarks),
            ):
                for _, result in results:
                    if tee and shared.spill is not None:
                        shared.spill.put(
                            result.customer_id, result.invoices, result.since
                        )
                    for row in self.rows(result):
                        rows += 1
                        yield row
                    if any(i.get("status") == "DRAFT" for i in result.invoices):
                        partitions.unsettled(result.customer_id)
                    bookmarks.set(
                        result.customer_id,
                        result.reread_from(
                            lookback_days=settings.invoices_lookback_days, today=today
                        ),
                    )
                    partitions.done(rows)
                    if partitions.finished % flush_every == 0:
                        self.write_bookmarks(bookmarks)
        finally:
            shared.finished.add(self.name)
            if not tee:
                shared.close()
        self.write_bookmarks(bookmarks, flush=False)
        partitions.summary(
            f"{rows} records",
            f"{self.repeats_skipped} repeated items skipped",
            self.unexpected.summary(),
        )


class InvoicesStream(InvoiceFamilyStream):
    """Every customer's invoices (DRAFT, FINALIZED, VOID), incremental per customer."""

    name = "invoices"
    description = (
        "DRAFT, FINALIZED and VOID invoices; start_timestamp (the billing period's "
        "start) is the replication key."
    )
    sibling = "invoice_line_items"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = "start_timestamp"
    #: A draft's status sets the bookmark; line items make the sibling's rows.
    strict_fields = frozenset({"status", "line_items"})

    def rows(self, read: CustomerInvoices) -> Iterator[dict[str, Any]]:
        """The invoices as the API lists them."""
        yield from read.invoices


class InvoiceLineItemsStream(InvoiceFamilyStream):
    """One row per line item of every invoice, keyed by the tap (see `line_item_keys`)."""

    name = "invoice_line_items"
    sibling = "invoices"
    primary_keys: ClassVar[list[str]] = ["invoice_id", "line_item_key"]
    replication_key = "invoice_start_timestamp"
    strict_fields = frozenset({"customer_id"})  # added by the tap

    @functools.cached_property
    def invoices_seen(self) -> SeenKeys:
        """The invoice ids whose line items were emitted in this run."""
        return SeenKeys()

    def rows(self, read: CustomerInvoices) -> Iterator[dict[str, Any]]:
        """Each invoice's line items with the invoice, customer and key added.

        Keys are unique within an invoice by construction, so the keys seen are
        kept per invoice, and an invoice listed a second time (an API fault) is
        skipped with a WARNING: memory grows with invoices, not line items.
        """
        for invoice in read.invoices:
            invoice_id = str(invoice.get("id"))
            if not self.invoices_seen.add(invoice_id):
                self.repeats_skipped += 1
                self.logger.warning(
                    "Stream %s: skipped the line items of invoice %s, listed a "
                    "second time (customer %s)",
                    self.name,
                    invoice_id,
                    read.customer_id,
                )
                continue
            self.keys_seen.clear()
            lines = invoice["line_items"]
            for key, line in zip(line_item_keys(lines), lines, strict=True):
                yield {
                    **line,  # the tap's fields last: the API's cannot replace keys
                    "invoice_id": invoice.get("id"),
                    "line_item_key": key,
                    "customer_id": read.customer_id,
                    "invoice_start_timestamp": invoice["start_timestamp"],
                }


__all__ = ["InvoiceLineItemsStream", "InvoicesStream"]
