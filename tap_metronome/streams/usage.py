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
upsert on their key), so nothing is lost.

`audit_logs` (GET /v1/auditLogs) is the SDK's own incremental stream on
`timestamp`, sorted, so STATE written mid-listing resumes correctly. The first
request carries `starting_on` (inclusive), later ones only the cursor, which the
API requires; the API returns a cursor on every page, so an empty page, not a
null cursor, ends the listing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from tap_metronome.seen import digest
from tap_metronome.streams.base import MetronomeStream
from tap_metronome.windows import SYNCED_UNTIL, rfc3339, start_for

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class UsageStream(MetronomeStream):
    """Usage per customer, billable metric and day (or hour), with a lookback."""

    name = "usage"
    path = "/v1/usage"
    method = "POST"
    max_page_size = 0  # the endpoint takes no `limit`
    primary_keys: ClassVar[list[str]] = [
        "customer_id",
        "billable_metric_id",
        "start_timestamp",
    ]
    replication_key = "start_timestamp"
    is_sorted = False  # paged per series, not by time: `synced_until` is the bookmark

    def bookmark(self) -> date | None:
        """The end of the last complete query (checked when the state was read)."""
        value = self.stream_state.get(SYNCED_UNTIL)
        return date.fromisoformat(value) if isinstance(value, str) else None

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """One query over every customer; repeats are looked for within a series."""
        settings = self._tap.require_settings()
        end = settings.costs_end(datetime.now(UTC))
        bookmark = self.bookmark()
        first = start_for(
            bookmark,
            start=settings.costs_start(),
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
            if series.is_repeat(item):
                continue
            rows += 1
            yield item
        series.close()
        if not self.dry_run:
            self.stream_state[SYNCED_UNTIL] = end.isoformat()
            self._tap.state_writer.write_state(self.tap_state)
        windows = (end - first).days * (
            24 if settings.usage_window_size == "hour" else 1
        )
        self.logger.info(
            "usage: %d %s windows (%s to %s), %d requests, %d rows, %d repeated rows "
            "skipped",
            windows,
            settings.usage_window_size,
            first,
            end,
            self.pages_read - pages_before,
            rows,
            self.repeats_skipped,
        )


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
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = "timestamp"
    is_sorted = True
    #: The bookmark is the last entry's timestamp, compared by the SDK as text: a
    #: change of format between entries (milliseconds or not) must not stop the run.
    check_sorted = False
    #: STATE during the listing, so that a stopped run resumes near where it was.
    STATE_MSG_FREQUENCY = 1000

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every entry from the bookmark (inclusive: same-second entries are kept)."""
        settings = self._tap.require_settings()
        start = self.get_starting_timestamp(context) or settings.start_date
        first_only = {"sort": "date_asc", "starting_on": _instant(start)}
        if settings.end_date is not None:
            first_only["ending_before"] = _instant(settings.end_date)
        entries = 0
        pages_before = self.pages_read
        for entry in self.list_items(
            self.path, first_only=first_only, until_empty=True
        ):
            entries += 1
            yield entry
        self.logger.info(
            "audit_logs: %d entries from %s, %d requests, %d repeated entries skipped",
            entries,
            first_only["starting_on"],
            self.pages_read - pages_before,
            self.repeats_skipped,
        )


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
