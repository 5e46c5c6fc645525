"""Account-wide incremental streams: daily usage, and the audit log.

Both endpoints cover every customer in one listing and filter by time on the
server, so neither fans out per customer.

`usage` (POST /v1/usage) is read as one query per run, from the bookmark minus
`usage_lookback_days` to the end of the current UTC day (or `end_date`): the API
pages per (customer, billable metric) series, each page holding the series'
windows of the whole query, so splitting the range into several queries would
multiply requests by the number of queries, and one query costs the fewest the
API allows. The bookmark (`synced_until`, a date) moves only when the whole
query has been emitted; a run stopped mid-query re-reads it next time (rows
upsert on their key), so nothing is lost. The bookmark holds the `customer_ids` it was read for
(`customer_filter`): another filter reads from `start_date` again, since the
customers it adds were never read.

`audit_logs` (GET /v1/auditLogs) is the SDK's own incremental stream on
`timestamp`, sorted, so STATE written mid-listing resumes correctly. The first
request carries `starting_on` (inclusive), later ones only the cursor, which the
API requires; the API returns a cursor on every page, so an empty page, not a
null cursor, ends the listing. The SDK writes STATE during the listing, which is
only safe if the listing is sorted: an entry earlier (by a second or more) than
one already emitted stops the run, as the SDK's own sort check would, after that
entry is written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from tap_metronome.errors import InputError, ResponseError, one_line
from tap_metronome.pagination import PageStyle
from tap_metronome.seen import digest
from tap_metronome.state import one_bookmark
from tap_metronome.streams.base import MetronomeStream
from tap_metronome.times import (
    canonical,
    instant_text,
    parse_date,
    parse_date_time,
    sortable,
)
from tap_metronome.windows import SYNCED_UNTIL, rfc3339, start_for

#: The usage state key naming the customers its bookmark was read for.
CUSTOMER_FILTER = "customer_filter"

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class UsageStream(MetronomeStream):
    """Usage per customer, billable metric and day (or hour), with a lookback."""

    name = "usage"
    path = "/v1/usage"
    description = (
        "Usage of one customer and billable metric in one window (a UTC day, or "
        "an hour with usage_window_size hour), every customer at once."
    )
    method = "POST"
    page_style = PageStyle.CURSOR_PAGE_WITHOUT_LIMIT
    primary_keys: ClassVar[list[str]] = [
        "customer_id",
        "billable_metric_id",
        "start_timestamp",
    ]
    replication_key = "start_timestamp"
    strict_fields = frozenset({"end_timestamp"})  # the window
    is_sorted = False  # paged per series, not by time: `synced_until` is the bookmark

    @classmethod
    def clean_state(
        cls, stream_state: Mapping[str, Any], where: str, logger: logging.Logger
    ) -> dict[str, Any]:
        """`synced_until` (a date) and the `customer_filter` it was read for."""
        value = one_bookmark(
            cls.name, stream_state, where, logger, key=SYNCED_UNTIL, kind=date
        )
        if value is None:
            return {}
        kept = {SYNCED_UNTIL: value}
        customers = stream_state.get(CUSTOMER_FILTER)
        if customers is not None:
            if not isinstance(customers, str):
                msg = f"{where}.{CUSTOMER_FILTER} must be a string, not {one_line(customers, 60)}"
                raise InputError(msg)
            kept[CUSTOMER_FILTER] = customers
        return kept

    def bookmark(self) -> date | None:
        """The end of the last complete query (checked when the state was read)."""
        value = self.stream_state.get(SYNCED_UNTIL)
        return parse_date(value) if isinstance(value, str) else None

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """One query over every customer; repeats are looked for within a series."""
        settings = self.services.settings
        end = settings.end_day(datetime.now(UTC))
        bookmark = self.bookmark()
        customers = customer_filter(settings.customer_ids)
        if bookmark is not None and self.stream_state.get(CUSTOMER_FILTER, ALL) != (
            customers
        ):
            self.logger.info(
                "usage: customer_ids changed since the bookmark %s; reading from "
                "start_date for the customers now selected",
                bookmark,
            )
            bookmark = None
        first = start_for(
            bookmark,
            start=settings.first_day(),
            lookback_days=settings.usage_lookback_days,
        )
        if first >= end:
            self.logger.info("usage: nothing to read before %s", end)
            return
        body: dict[str, Any] = {
            "window_size": settings.usage_window_size,
            "starting_on": rfc3339(first),
            "ending_before": rfc3339(end),
        }
        if settings.customer_ids:
            body["customer_ids"] = list(settings.customer_ids)
        rows = 0
        pages_before = self.pages_read
        series = _SeriesRepeats(self)
        for item in self.list_items(self.path, body=body):
            item = one_form(item)
            if series.is_repeat(item):
                continue
            rows += 1
            yield item
        series.close()
        if not self.dry_run:
            self.stream_state[SYNCED_UNTIL] = end.isoformat()
            self.stream_state[CUSTOMER_FILTER] = customers
            self.services.write_state()
        windows = (end - first).days * (
            24 if settings.usage_window_size == "hour" else 1
        )
        self.logger.info(
            "usage: %d %s windows (%s to %s), %d requests, %d rows, %d repeated rows "
            "skipped, %s",
            windows,
            settings.usage_window_size,
            first,
            end,
            self.pages_read - pages_before,
            rows,
            self.repeats_skipped,
            self.unexpected.summary(),
        )


def one_form(item: dict[str, Any]) -> dict[str, Any]:
    """The item with its `start_timestamp`, a key, in the tap's one form.

    Two spellings of one window (`...T00:00:00Z`, `...T00:00:00.000Z`,
    `...T01:00:00+01:00`) are one key: found as a repeat, written once, and
    upserted as one row by a target that compares keys as text. A value that
    is not a date-time is left for the schema check to name.
    """
    start = item.get("start_timestamp")
    if not isinstance(start, str):
        return item
    try:
        text = canonical(start)
    except ValueError:
        return item
    return item if text == start else {**item, "start_timestamp": text}


#: The customer filter of a usage bookmark read for every customer.
ALL = "all"


def customer_filter(customer_ids: Iterable[str] | None) -> str:
    """`all`, or a digest of the (already canonical) ids whatever their order."""
    if not customer_ids:
        return ALL
    return f"{digest(tuple(sorted(set(customer_ids)))):016x}"


class _SeriesRepeats:
    """Rows of a usage series listed a second time, found without keeping every key.

    Pages come per (customer, metric) series, so the stream's exact keys are
    kept for the series being read and forgotten at the next (memory stays flat
    at millions of rows). A series that comes back later keeps only rows after
    the latest window already emitted for it: earlier ones are repeats, skipped,
    counted and logged once per series.
    """

    def __init__(self, stream: UsageStream) -> None:
        self._stream = stream
        self._latest: dict[int, str] = {}  # series digest -> latest start emitted
        self._series: tuple[Any, Any] | None = None
        self._digest = 0
        self._floor: str | None = None
        self._top = ""
        self._skipped = 0

    def is_repeat(self, item: dict[str, Any]) -> bool:
        """Whether the item repeats a row already emitted (then it is counted)."""
        current = (item.get("customer_id"), item.get("billable_metric_id"))
        if current != self._series:
            self.close()
            self._series = current
            self._digest = digest(current)
            self._floor = self._latest.get(self._digest)
            self._top = self._floor or ""
            self._stream.keys_seen.clear()
        start = item.get("start_timestamp")
        if not isinstance(start, str):
            return False  # the schema check names it
        start = sortable(start)  # in the tap's form (`one_form`): time order
        if self._floor is not None and start <= self._floor:
            self._skipped += 1
            self._stream.repeats_skipped += 1
            return True
        self._top = max(self._top, start)
        return False

    def close(self) -> None:
        """End the current series: remember how far it went, log its repeats."""
        if self._series is None:
            return
        self._latest[self._digest] = self._top
        if self._skipped:
            self._stream.logger.warning(
                "Stream usage: POST /v1/usage listed customer %s, billable metric %s "
                "again; skipped %d rows already emitted",
                *self._series,
                self._skipped,
            )
        self._skipped = 0


class AuditLogsStream(MetronomeStream):
    """The account's change log, incremental on `timestamp`."""

    name = "audit_logs"
    path = "/v1/auditLogs"
    description = (
        "The account's change log, oldest first; timestamp is the replication key."
    )
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = "timestamp"
    is_sorted = True
    #: The bookmark is the last entry's timestamp, compared by the SDK as text: a
    #: change of format between entries (milliseconds or not) must not stop the run.
    check_sorted = False
    #: STATE during the listing, so that a stopped run resumes near where it was.
    STATE_MSG_FREQUENCY = 1000

    @classmethod
    def clean_state(
        cls, stream_state: Mapping[str, Any], where: str, logger: logging.Logger
    ) -> dict[str, Any]:
        """The SDK's `replication_key_value` (an instant), in the tap's one form."""
        key = "replication_key_value"
        value = one_bookmark(
            cls.name, stream_state, where, logger, key=key, kind=datetime
        )
        return (
            {}
            if value is None
            else {"replication_key": cls.replication_key, key: value}
        )

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every entry from the bookmark (inclusive: same-second entries are kept)."""
        settings = self.services.settings
        start = self.get_starting_timestamp(context) or settings.start_date
        # Whole seconds: entries of the bookmark's second are read again (they
        # upsert on `id`), so an order within one second does not matter.
        first_only = {
            "sort": "date_asc",
            "starting_on": instant_text(start.replace(microsecond=0)),
        }
        if settings.end_date is not None:
            first_only["ending_before"] = instant_text(settings.end_date)
        entries = 0
        pages_before = self.pages_read
        latest: datetime | None = None
        for entry in self.list_items(
            self.path, first_only=first_only, until_empty=True
        ):
            entries += 1
            yield entry
            moment = _second(entry.get("timestamp"))
            if moment is None:
                continue
            if latest is not None and moment < latest:
                msg = (
                    f"Stream audit_logs: GET {self.path} listed entry "
                    f"{one_line(entry.get('id'), 60)} at {moment} after one at "
                    f"{latest}, though sort=date_asc was asked; a STATE written "
                    "earlier in this run may have passed entries not yet listed, so "
                    "the run stops (everything listed so far is written)"
                )
                raise ResponseError(msg)
            latest = moment
        self.logger.info(
            "audit_logs: %d entries from %s, %d requests, %d repeated entries "
            "skipped, %s",
            entries,
            first_only["starting_on"],
            self.pages_read - pages_before,
            self.repeats_skipped,
            self.unexpected.summary(),
        )


def _second(value: Any) -> datetime | None:
    """An entry's timestamp to the second; None if unreadable (the schema names it)."""
    try:
        return parse_date_time(value).replace(microsecond=0)
    except (TypeError, ValueError):
        return None
