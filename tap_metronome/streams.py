"""The streams: which endpoint each reads and how API items become records."""

from __future__ import annotations

import importlib.resources
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from singer_sdk import SchemaDirectory, Stream, StreamSchema
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_metronome.client import MetronomeAPIError, MetronomeClient
from tap_metronome.concurrency import fan_out
from tap_metronome.pagination import iter_pages
from tap_metronome.windows import (
    SYNCED_UNTIL,
    CostsBookmarks,
    Window,
    ceil_day,
    day_windows,
    default_end,
    floor_day,
    start_for,
)

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_metronome.tap import TapMetronome


def schema_dir() -> Traversable:
    """Where the stream schemas are, whatever the working directory.

    A built wheel carries them as `tap_metronome/schemas`; an editable install
    (Meltano's `pip_url: -e .`) reads the repository's top-level `schemas/`.
    """
    packaged = importlib.resources.files("tap_metronome") / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas"


class MetronomeStream(Stream):
    """A stream read from Metronome list endpoints through the tap's one client."""

    schema = StreamSchema(SchemaDirectory(schema_dir()))
    _tap: TapMetronome

    @property
    def page_size(self) -> int:
        """Items per list request (the API caps `limit` at 100)."""
        return int(self.config.get("page_size", 100))

    def list_all(
        self, path: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, in API order."""
        for page in iter_pages(
            self._tap.client,
            path,
            stream=self.name,
            page_size=self.page_size,
            params=params,
        ):
            yield from page.records


class CustomersStream(MetronomeStream):
    """Active customers, then archived ones (a second pass with `only_archived`)."""

    name = "customers"
    path = "/v1/customers"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield each customer once, even if it was archived between the passes."""
        seen: dict[str, None] = {}  # ordered: costs follow the listing order
        passes: list[dict[str, Any]] = [{}]
        if self.config.get("include_archived_customers", True):
            passes.append({"only_archived": "true"})
        duplicates = 0
        for params in passes:
            for customer in self.list_all(self.path, params):
                if customer["id"] in seen:
                    duplicates += 1
                    continue
                seen[customer["id"]] = None
                yield customer
        if duplicates:
            self.logger.info(
                "%d customers were listed both as active and as archived "
                "(archived during the sync); each was emitted once",
                duplicates,
            )
        self._tap.remember_ids(self.name, list(seen))


class PlansStream(MetronomeStream):
    """All plans; the parent listing of plan charges."""

    name = "plans"
    path = "/v1/plans"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield every plan and remember the ids for `plan_charges`."""
        ids: list[str] = []
        for plan in self.list_all(self.path):
            ids.append(plan["id"])
            yield plan
        self._tap.remember_ids(self.name, ids)


class PlanChargesStream(MetronomeStream):
    """The charges of every plan; the API item has no plan id, so the tap adds it."""

    name = "plan_charges"
    primary_keys: ClassVar[list[str]] = ["plan_id", "id"]
    replication_key = None

    def charges_of(self, plan_id: str) -> list[dict[str, Any]] | MetronomeAPIError:
        """All charges of one plan, each carrying `plan_id`; a 404 is returned."""
        path = f"/v1/planDetails/{quote(plan_id, safe='')}/charges"
        try:
            return [{"plan_id": plan_id, **charge} for charge in self.list_all(path)]
        except MetronomeAPIError as exc:
            if exc.status != HTTPStatus.NOT_FOUND:
                raise
            return exc

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield the charges plan by plan; a plan deleted since listing is skipped."""
        skipped = 0
        plan_ids = self._tap.known_ids("plans", self.name)
        for plan_id, charges in fan_out(
            plan_ids,
            self.charges_of,
            max_workers=self._tap.max_concurrency,
            on_abort=self._tap.client.cancel,
        ):
            if isinstance(charges, MetronomeAPIError):
                skipped += 1
                self.logger.warning(
                    "Skipping plan %s: its charges answered 404 (%s); "
                    "it was probably deleted after the plans listing",
                    plan_id,
                    charges.api_message,
                )
                continue
            yield from charges
        self.logger.info(
            "plan_charges: %d plans read, %d skipped", len(plan_ids) - skipped, skipped
        )


#: Costs statuses that concern one customer only: 400 for a plan with a UNIQUE-type
#: billable metric (unsupported by the endpoint), 404 for a customer deleted since
#: the listing. Any other 4xx means the request itself is wrong and stops the run.
SKIPPABLE_COSTS_STATUSES = frozenset({HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND})


class Progress:
    """One INFO line every `interval` seconds on long syncs, with an ETA."""

    def __init__(
        self,
        *,
        total: int,
        interval: float,
        client: MetronomeClient,
        logger: logging.Logger,
    ) -> None:
        self.total = total
        self.interval = interval
        self.client = client
        self.logger = logger
        self.started = self.last = time.monotonic()
        self.requests_before = client.requests_sent
        self.retries_before = client.retries

    @property
    def requests(self) -> int:
        """Requests sent since this stream started."""
        return self.client.requests_sent - self.requests_before

    def update(self, done: int, records: int) -> None:
        """Log progress if `interval` has passed since the last line."""
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.started
        remaining = elapsed / done * (self.total - done) if done else float("nan")
        self.logger.info(
            "customer_costs progress: %d/%d customers, %d requests, %d records, "
            "%d retries, %.0fs elapsed, about %.0fs left",
            done,
            self.total,
            self.requests,
            records,
            self.client.retries - self.retries_before,
            elapsed,
            remaining,
        )


@dataclass
class CustomerCosts:
    """What one customer's fetch produced: windows in order, and why it stopped."""

    customer_id: str
    windows: list[tuple[Window, list[dict[str, Any]]]] = field(default_factory=list)
    error: MetronomeAPIError | None = None


#: STATE messages per customer_costs sync, so total STATE bytes grow linearly with
#: customers (the SDK's default of one full state per partition is quadratic).
STATE_WRITES_PER_SYNC = 20


def cost_rows(customer_id: str, item: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per credit type of a daily costs item (the API keys them by id)."""
    return [
        {
            "customer_id": customer_id,
            "start_timestamp": item["start_timestamp"],
            "end_timestamp": item["end_timestamp"],
            "credit_type_id": credit_type_id,
            "credit_type_name": entry.get("name"),
            "cost": entry.get("cost"),
            "line_item_breakdown": entry.get("line_item_breakdown"),
        }
        for credit_type_id, entry in item["credit_types"].items()
    ]


class CustomerCostsStream(MetronomeStream):
    """Daily costs per customer and credit type, incremental with a lookback.

    Bookmarks are per customer (see `CostsBookmarks`) and written a bounded number
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
    #: This stream writes its own STATE messages (see `STATE_WRITES_PER_SYNC`).
    STATE_MSG_FREQUENCY = 10**15
    #: Rows are built field by field by `cost_rows` from parsed JSON (str, int,
    #: Decimal, None, lists and dicts of those), so they already conform to the
    #: schema; the SDK's per-record conformance walk was ~40% of the tap's CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def customer_ids(self) -> tuple[list[str], bool]:
        """The customers to sync, and whether they are the whole listing."""
        configured = self.config.get("customer_ids")
        if configured:
            return list(dict.fromkeys(configured)), False
        return self._tap.known_ids("customers", self.name), True

    def windows_of(self, customer_id: str, bookmarks: CostsBookmarks) -> list[Window]:
        """The day windows this run reads for one customer."""
        start = start_for(
            bookmarks.get(customer_id),
            start=self._start,
            lookback_days=int(self.config.get("lookback_days", 35)),
        )
        return list(day_windows(start, self._end, self.page_size))

    def costs_in(self, customer_id: str, window: Window) -> list[dict[str, Any]]:
        """The API's daily costs items of one customer in one window."""
        path = f"/v1/customers/{quote(customer_id, safe='')}/costs"
        return list(self.list_all(path, window.params()))

    def fetch_customer(self, job: tuple[str, list[Window]]) -> CustomerCosts:
        """Fetch one customer's windows in order (runs on a worker thread).

        A 400/404 ends the customer but keeps the windows already fetched, so
        the result is the same whatever the concurrency.
        """
        customer_id, windows = job
        result = CustomerCosts(customer_id)
        for window in windows:
            try:
                items = self.costs_in(customer_id, window)
            except MetronomeAPIError as exc:
                if exc.status not in SKIPPABLE_COSTS_STATUSES:
                    raise
                result.error = exc
                break
            result.windows.append((window, items))
        return result

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield cost rows customer by customer, advancing each bookmark per window."""
        self._start = floor_day(self.config["start_date"])
        end_date = self.config.get("end_date")
        self._end = ceil_day(end_date) if end_date else default_end()
        bookmarks = CostsBookmarks.from_state(self.stream_state)
        customer_ids, complete_listing = self.customer_ids()
        if complete_listing:
            dropped = bookmarks.keep_only(customer_ids)
            if dropped:
                self.logger.info(
                    "customer_costs: forgot the bookmarks of %d customers no longer listed",
                    dropped,
                )
        flush_every = max(1, -(-len(customer_ids) // STATE_WRITES_PER_SYNC))
        skipped = idle_days = rows = 0
        progress = Progress(
            total=len(customer_ids),
            interval=float(self.config.get("progress_interval_seconds", 30)),
            client=self._tap.client,
            logger=self.logger,
        )
        jobs = ((cid, self.windows_of(cid, bookmarks)) for cid in customer_ids)
        for done, (_, result) in enumerate(
            fan_out(
                jobs,
                self.fetch_customer,
                max_workers=self._tap.max_concurrency,
                on_abort=self._tap.client.cancel,
            ),
            start=1,
        ):
            # Records of a window are written before its bookmark moves.
            for window, items in result.windows:
                for item in items:
                    item_rows = cost_rows(result.customer_id, item)
                    if not item_rows:
                        idle_days += 1
                    rows += len(item_rows)
                    yield from item_rows
                bookmarks.advance(result.customer_id, window.end)
            if result.error is not None:
                skipped += 1
                self.logger.warning(
                    "Skipping customer %s in customer_costs: HTTP %d: %s",
                    result.customer_id,
                    result.error.status,
                    result.error.api_message,
                )
            if done % flush_every == 0:
                self.write_bookmarks(bookmarks)
            progress.update(done, rows)
        self.write_bookmarks(bookmarks, flush=False)
        self.logger.info(
            "customer_costs: %d customers synced, %d skipped, %d cost rows, "
            "%d idle days without costs, %d requests",
            len(customer_ids) - skipped,
            skipped,
            rows,
            idle_days,
            progress.requests,
        )

    def write_bookmarks(self, bookmarks: CostsBookmarks, *, flush: bool = True) -> None:
        """Put bookmarks into the stream state and, if `flush`, emit a STATE message.

        Only called between customers, after their rows were written, so no STATE
        message covers a window whose records are not yet out.
        """
        self.stream_state[SYNCED_UNTIL] = bookmarks.to_state()
        if flush:
            self._tap.state_writer.write_state(self.tap_state)
