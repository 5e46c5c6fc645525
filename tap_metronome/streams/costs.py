"""`customer_costs`: daily costs per customer and credit type, incremental.

The per-customer fan-out, skip rule and progress line are `partitions`'; this
module adds what is particular to costs: day windows (`windows`), one bookmark
per customer written a bounded number of times per sync, and rows built from
the API's items (`records.cost_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_metronome.bookmarks import CustomerBookmarks
from tap_metronome.paths import with_id
from tap_metronome.records import cost_rows
from tap_metronome.streams.base import MetronomeStream
from tap_metronome.streams.partitions import Partitions, cancel_on_error
from tap_metronome.times import parse_date_time
from tap_metronome.unexpected import COLUMN
from tap_metronome.windows import (
    SYNCED_UNTIL,
    Window,
    day_windows,
    start_for,
)

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


#: STATE messages per customer_costs sync, so total STATE bytes grow linearly with
#: customers (the SDK's default of one full state per partition is quadratic).
STATE_WRITES_PER_SYNC = 20


class CustomerCostsStream(MetronomeStream):
    """Daily costs per customer and credit type, incremental with a lookback.

    Bookmarks are per customer (see `CustomerBookmarks`) and written a bounded number
    of times per sync, so an interrupted backfill resumes where it stopped and a
    new customer is backfilled from `start_date`.
    """

    name = "customer_costs"
    primary_keys: ClassVar[list[str]] = [
        "customer_id",
        "start_timestamp",
        "credit_type_id",
    ]
    replication_key = "end_timestamp"
    is_sorted = False
    path = "/v1/customers/{customer_id}/costs"
    bookmark_key = SYNCED_UNTIL
    #: Its own rule, from its bookmarks (`settled_customers`).
    settles_archived = False
    #: This stream writes its own STATE messages (see `STATE_WRITES_PER_SYNC`).
    STATE_MSG_FREQUENCY = 10**15
    #: Rows are built and type-checked field by field by `records.cost_rows`, so
    #: they match the schema; the SDK's per-record conformance walk (and a
    #: generic schema validation) was ~40% of the tap's CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def post_process(
        self, row: dict[str, Any], context: Context | None = None
    ) -> dict[str, Any] | None:
        """Rows were checked by `cost_rows` already; values it moved are noted."""
        if COLUMN in row:
            self.unexpected.note(row)
        return row

    def settled_customers(self, bookmarks: CustomerBookmarks) -> set[str]:
        """Customers archived before their bookmark minus `lookback_days`.

        Their costs can no longer change (no usage after archiving, and the late
        usage before it is already read), so they cost no request.
        """
        lookback = timedelta(days=self.services.settings.lookback_days)
        settled = set()
        archived = self.services.listings.archived_at(
            "customers", requested_by=self.name
        )
        for customer_id, archived_at in archived.items():
            bookmark = bookmarks.get(customer_id)
            if bookmark is None:
                continue
            try:
                moment = parse_date_time(archived_at)
            except (TypeError, ValueError):
                continue  # not a date-time: read as usual
            if moment.date() < bookmark - lookback:
                settled.add(customer_id)
        return settled

    def windows_from(self, since: date | None) -> list[Window]:
        """The day windows this run reads for a customer with bookmark `since`."""
        start = start_for(
            since,
            start=self._start,
            lookback_days=self.services.settings.lookback_days,
        )
        windows = list(day_windows(start, self._end, self.page_size))
        return windows[:1] if self.dry_run else windows

    def costs_in(self, customer_id: str, window: Window) -> list[dict[str, Any]]:
        """The API's daily costs items of one customer in one window."""
        path = with_id(self.path, "customer_id", customer_id, stream=self.name)
        return list(self.list_items(path, window.params()))

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield cost rows window by window, advancing the customer's bookmark after each.

        Workers fetch single windows (`Partitions.fetch_pieces`), so memory holds
        a few windows however long a customer's history is, and a stop is seen
        between rows: the bookmarks then cover the windows whose rows are out.
        """
        settings = self.services.settings
        self._start = settings.first_day()
        self._end = settings.end_day(datetime.now(UTC))
        customer_ids, complete_listing = self.customer_ids()
        # Of customers still listed (those gone were dropped with the listing).
        bookmarks = self.read_bookmarks(customer_ids if complete_listing else None)
        settled = self.settled_customers(bookmarks) if complete_listing else set()
        customer_ids = [cid for cid in customer_ids if cid not in settled]
        # Bookmarks are read on this thread, before workers start; workers only
        # fetch (and work out a customer's windows, a pure function of its bookmark).
        since = {cid: bookmarks.get(cid) for cid in customer_ids}
        partitions: Partitions[list[dict[str, Any]]] = Partitions(
            self, customer_ids, parent="customers"
        )
        flush_every = max(1, -(-len(customer_ids) // STATE_WRITES_PER_SYNC))
        idle_days = rows = duplicates = 0
        stop = self.services.stop
        pieces = partitions.fetch_pieces(
            lambda cid: self.windows_from(since[cid]), self.costs_in
        )
        # Stopping for any reason (a signal, an API error, a bad item): the
        # bookmarks cover exactly the windows whose rows were all yielded, so
        # they are saved; the next run resumes after them.
        with cancel_on_error(
            pieces,
            self.services.client,
            dry_run=self.dry_run,
            on_stop=lambda: self.write_bookmarks(bookmarks),
        ):
            for piece in pieces:
                customer_id, window = piece.parent_id, piece.part
                if window is not None:
                    where = (
                        f"Stream customer_costs: GET /v1/customers/{customer_id}/costs"
                    )
                    # Windows do not overlap and `cost_rows` keeps each row in
                    # its window, so a day can only repeat within one window.
                    days_seen: set[tuple[str, str]] = set()
                    for item in piece.result or ():
                        item_rows = cost_rows(
                            customer_id, item, where=where, window=window
                        )
                        if not item_rows:
                            idle_days += 1
                        for row in item_rows:
                            key = (row["start_timestamp"], row["credit_type_id"])
                            if key in days_seen:
                                duplicates += 1
                                self.logger.warning(
                                    "customer_costs: skipped a costs row that the API "
                                    "listed twice (customer %s, %s, credit type %s)",
                                    customer_id,
                                    *key,
                                )
                                continue
                            days_seen.add(key)
                            rows += 1
                            # A stop is honoured between rows: those of this
                            # window already out are re-read next run.
                            stop.check()
                            yield row
                    # Records of a window are written before its bookmark moves.
                    bookmarks.advance(customer_id, window.end)
                if piece.last:
                    partitions.done(rows)
                    if partitions.finished % flush_every == 0:
                        self.write_bookmarks(bookmarks)
        self.write_bookmarks(bookmarks, flush=False)
        partitions.summary(
            f"{len(settled)} archived customers not re-read",
            f"{rows} cost rows",
            f"{idle_days} idle days without costs",
            f"{duplicates} duplicate rows skipped",
            self.unexpected.summary(),
        )
