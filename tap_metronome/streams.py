"""The streams: which endpoint each reads and how API items become records."""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import logging
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from jsonschema import Draft202012Validator
from singer_sdk import SchemaDirectory, Stream, StreamSchema
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_metronome.client import MetronomeAPIError, MetronomeClient
from tap_metronome.concurrency import fan_out
from tap_metronome.errors import ResponseError, one_line
from tap_metronome.pagination import iter_pages
from tap_metronome.records import cost_rows
from tap_metronome.windows import (
    SYNCED_UNTIL,
    CostsBookmarks,
    Window,
    day_windows,
    end_of_today,
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
    #: Where the stream's items come from, for error messages.
    path = ""

    @property
    def page_size(self) -> int:
        """Items per list request (the API caps `limit` at 100)."""
        return self._tap.require_settings().page_size

    def list_all(
        self, path: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, in API order; each must be an object."""
        for page in iter_pages(
            self._tap.client,
            path,
            stream=self.name,
            page_size=self.page_size,
            params=params,
            stop=self._tap.stop,
        ):
            for item in page.records:
                if not isinstance(item, dict):
                    msg = (
                        f"Stream {self.name}: GET {path} returned an item that is not "
                        f"an object: {one_line(item, 80)}"
                    )
                    raise ResponseError(msg)
                yield item

    @functools.cached_property
    def keys_seen(self) -> set[tuple[str, ...]]:
        """Primary keys emitted in this run: the API must not list an item twice."""
        return set()

    @functools.cached_property
    def record_validator(self) -> Draft202012Validator:
        """The stream's schema, compiled once (formats are not checked)."""
        return Draft202012Validator(self.schema)

    def post_process(
        self, row: dict[str, Any], context: Context | None = None
    ) -> dict[str, Any] | None:
        """Refuse a row that does not match the schema; skip an item listed twice.

        A wrong type stops the run naming the field; a repeat is skipped with a
        WARNING naming its primary key. The SDK's conformance drops unknown fields (with a WARNING) but passes a
        value of the wrong type on, which a target then rejects or mis-types.
        """
        error = next(iter(self.record_validator.iter_errors(row)), None)
        if error is not None:
            field = "/".join(str(part) for part in error.absolute_path) or "(item)"
            msg = (
                f"Stream {self.name}: GET {self.path} returned an item whose {field} "
                f"does not match the schema: {one_line(error.message, 160)}"
            )
            raise ResponseError(msg)
        key = tuple(str(row.get(name)) for name in self.primary_keys or [])
        if key:
            if key in self.keys_seen:
                self.logger.warning(
                    "Stream %s: skipped an item that GET %s listed twice (primary key %s)",
                    self.name,
                    self.path,
                    ", ".join(key),
                )
                return None
            self.keys_seen.add(key)
        return row


@contextlib.contextmanager
def cancel_on_error(
    results: Generator[Any, None, None], client: MetronomeClient
) -> Iterator[None]:
    """Cancel in-flight fetches of a fan-out when its consumer fails.

    Without this, closing the fan-out waits for every running worker to finish
    its whole partition (retries included) before the error is reported. When
    the SDK merely stops reading (GeneratorExit: a dry run's record limit), the
    client stays usable for the streams that follow.
    """
    try:
        yield
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            client.cancel()
        results.close()
        raise


def item_id(item: dict[str, Any], *, stream: str, path: str) -> str:
    """The item's `id`, which the spec requires to be a string."""
    value = item.get("id")
    if not isinstance(value, str) or not value:
        msg = (
            f"Stream {stream}: GET {path} returned an item without a string id "
            f"(id: {one_line(value, 60)})"
        )
        raise ResponseError(msg)
    return value


class CustomersStream(MetronomeStream):
    """Active customers, then archived ones (a second pass with `only_archived`)."""

    name = "customers"
    path = "/v1/customers"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield each customer once, even if it was archived between the passes."""
        self.keys_seen.clear()
        seen: dict[str, None] = {}  # ordered: costs follow the listing order
        passes: list[dict[str, Any]] = [{}]
        if self._tap.require_settings().include_archived_customers:
            passes.append({"only_archived": "true"})
        duplicates = 0
        for params in passes:
            for customer in self.list_all(self.path, params):
                customer_id = item_id(customer, stream=self.name, path=self.path)
                if customer_id in seen:
                    duplicates += 1
                    continue
                seen[customer_id] = None
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
        self.keys_seen.clear()
        ids: dict[str, None] = {}
        for plan in self.list_all(self.path):
            plan_id = item_id(plan, stream=self.name, path=self.path)
            if plan_id not in ids:  # a repeat is skipped (and logged) in post_process
                ids[plan_id] = None
            yield plan
        self._tap.remember_ids(self.name, list(ids))


class PlanChargesStream(MetronomeStream):
    """The charges of every plan; the API item has no plan id, so the tap adds it."""

    name = "plan_charges"
    path = "/v1/planDetails/{plan_id}/charges"
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
        self.keys_seen.clear()
        plan_ids = self._tap.known_ids("plans", self.name)
        results = fan_out(
            plan_ids,
            self.charges_of,
            max_workers=self._tap.max_concurrency,
            on_abort=self._tap.client.cancel,
        )
        with cancel_on_error(results, self._tap.client):
            yield from self.charges_in(results, len(plan_ids))

    def charges_in(
        self,
        results: Iterator[tuple[str, list[dict[str, Any]] | MetronomeAPIError]],
        plans: int,
    ) -> Iterator[dict[str, Any]]:
        """Yield each plan's charges as it arrives; skip (and log) deleted plans."""
        skipped = 0
        for plan_id, charges in results:
            self._tap.stop.check()
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
            "plan_charges: %d plans read, %d skipped", plans - skipped, skipped
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
    path = "/v1/customers/{customer_id}/costs"
    #: This stream writes its own STATE messages (see `STATE_WRITES_PER_SYNC`).
    STATE_MSG_FREQUENCY = 10**15
    #: Rows are built and type-checked field by field by `records.cost_rows`, so
    #: they match the schema; the SDK's per-record conformance walk (and a
    #: generic schema validation) was ~40% of the tap's CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def post_process(
        self, row: dict[str, Any], context: Context | None = None
    ) -> dict[str, Any] | None:
        """Rows were checked by `cost_rows` already."""
        return row

    def customer_ids(self) -> tuple[list[str], bool]:
        """The customers to sync, and whether they are the whole listing."""
        configured = self._tap.require_settings().customer_ids
        if configured:
            return list(configured), False
        return self._tap.known_ids("customers", self.name), True

    def windows_of(self, customer_id: str, bookmarks: CostsBookmarks) -> list[Window]:
        """The day windows this run reads for one customer."""
        start = start_for(
            bookmarks.get(customer_id),
            start=self._start,
            lookback_days=self._tap.require_settings().lookback_days,
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

    def read_bookmarks(self) -> CostsBookmarks:
        """This stream's bookmarks (future ones were dropped when the state was read)."""
        bookmarks, _ = CostsBookmarks.from_state(
            self.stream_state, latest=end_of_today()
        )
        return bookmarks

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield cost rows customer by customer, advancing each bookmark per window."""
        settings = self._tap.require_settings()
        self._start = settings.costs_start()
        self._end = settings.costs_end(datetime.now(UTC))
        bookmarks = self.read_bookmarks()
        customer_ids, complete_listing = self.customer_ids()
        if complete_listing:
            dropped = bookmarks.keep_only(customer_ids)
            if dropped:
                self.logger.info(
                    "customer_costs: forgot the bookmarks of %d customers no longer listed",
                    dropped,
                )
        flush_every = max(1, -(-len(customer_ids) // STATE_WRITES_PER_SYNC))
        skipped = idle_days = rows = duplicates = 0
        progress = Progress(
            total=len(customer_ids),
            interval=settings.progress_interval_seconds,
            client=self._tap.client,
            logger=self.logger,
        )
        jobs = ((cid, self.windows_of(cid, bookmarks)) for cid in customer_ids)
        results = fan_out(
            jobs,
            self.fetch_customer,
            max_workers=self._tap.max_concurrency,
            on_abort=self._tap.client.cancel,
        )
        try:
            for done, (_, result) in enumerate(results, start=1):
                # Records of a window are written before its bookmark moves.
                where = f"Stream customer_costs: GET /v1/customers/{result.customer_id}/costs"
                days_seen: set[tuple[str, str]] = set()
                for window, items in result.windows:
                    for item in items:
                        item_rows = cost_rows(
                            result.customer_id, item, where=where, window=window
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
                                    result.customer_id,
                                    *key,
                                )
                                continue
                            days_seen.add(key)
                            rows += 1
                            yield row
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
                self._tap.stop.check()
        except BaseException as exc:
            # Stopping for any reason (a signal, an API error, a bad item): the
            # bookmarks cover exactly the windows whose rows were yielded, so
            # they are saved; the next run resumes after them. Workers still
            # fetching are cancelled first, unless the SDK merely stopped reading
            # (a dry run's record limit), when they may finish.
            if not isinstance(exc, GeneratorExit):
                self._tap.client.cancel()
            results.close()
            with contextlib.suppress(Exception):
                self.write_bookmarks(bookmarks)
            raise
        self.write_bookmarks(bookmarks, flush=False)
        self.logger.info(
            "customer_costs: %d customers synced, %d skipped, %d cost rows, "
            "%d idle days without costs, %d duplicate rows skipped, %d requests",
            len(customer_ids) - skipped,
            skipped,
            rows,
            idle_days,
            duplicates,
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


#: Every stream, in sync order: parents before the children that reuse their ids.
STREAM_TYPES: tuple[type[MetronomeStream], ...] = (
    CustomersStream,
    PlansStream,
    PlanChargesStream,
    CustomerCostsStream,
)
#: Their names (the SDK declares `name` per instance; these classes set it).
STREAM_NAMES = frozenset(t.name for t in STREAM_TYPES)  # type: ignore[misc]
