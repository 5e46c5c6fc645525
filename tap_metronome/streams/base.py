"""What every stream shares, and list streams as declarations.

A list stream is a handful of class attributes: its endpoint and method, fixed
query parameters or JSON body, where the cursor goes, primary key, and parent
(none, customers or plans); a key nested in the item is lifted into a column by
the `record_from_item` hook. `ListStream` turns that into requests
(`pagination.iter_pages`), records (`MetronomeStream.post_process`: schema
check, repeats skipped) and, for a per-parent stream, one fan-out over the
parent's ids (`partitions.Partitions`), whose ids come from the tap's listing
cache (`listings.Listings`) whatever the order streams run in.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from singer_sdk import SchemaDirectory, Stream, StreamSchema
from singer_sdk.singerlib.catalog import REPLICATION_FULL_TABLE

from tap_metronome.archived import ARCHIVED_READ_ON, SETTLE_DAYS, ArchivedReads
from tap_metronome.bookmarks import CustomerBookmarks
from tap_metronome.errors import ResponseError, one_line
from tap_metronome.output import BufferedRecordWriter
from tap_metronome.pagination import PageStyle, iter_pages
from tap_metronome.paths import with_id
from tap_metronome.seen import SeenKeys
from tap_metronome.state import customer_bookmarks
from tap_metronome.streams.partitions import PARENT_KEYS, Parent, Partitions
from tap_metronome.unexpected import UnexpectedValues
from tap_metronome.windows import end_of_today

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_metronome.services import Services


#: The line singer-sdk 0.54.9 logs when a stream's sync raises (`Stream.sync`).
SDK_SYNC_ERROR = "An unhandled error occurred while syncing '%s'"


def schema_dir() -> Traversable:
    """Where the stream schemas are, whatever the working directory.

    A built wheel carries them as `tap_metronome/schemas`; an editable install
    (Meltano's `pip_url: -e .`) reads the repository's top-level `schemas/`.
    """
    packaged = importlib.resources.files("tap_metronome") / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "schemas"


class MetronomeStream(Stream):
    """A stream read through the tap's one client; records checked against the schema."""

    schema = StreamSchema(SchemaDirectory(schema_dir()))
    #: The endpoint's path template, for messages and metrics.
    path: ClassVar[str] = ""
    method: ClassVar[Literal["GET", "POST"]] = "GET"
    #: How the endpoint pages (where the cursor goes, its name, whether it takes
    #: a `limit`), named after the official client's page class.
    page_style: ClassVar[PageStyle] = PageStyle.CURSOR_PAGE
    #: The largest `limit` the endpoint accepts.
    max_page_size: ClassVar[int] = 100
    #: What a record is, beyond "An item of <method> <path>.": the schema's
    #: description (`scripts/generate_schemas.py`).
    description: ClassVar[str] = ""
    #: Items skipped in this run because the API listed them a second time.
    repeats_skipped = 0
    #: Pages this stream requested in this run (summary lines).
    pages_read = 0

    def __init__(self, tap: Tap, services: Services | None = None) -> None:
        """A stream of `tap`'s run, using the run's `services` (not the tap's insides).

        A stream built the SDK's way, `Stream(tap)`, finds them on the tap.
        """
        found = services or getattr(tap, "services", None)
        if found is None:
            msg = f"{type(self).__name__} needs the run's services (TapMetronome.services)"
            raise TypeError(msg)
        self.services: Services = found
        super().__init__(tap)

    def log(
        self, message: str, *args: Any, level: int = logging.INFO, **kwargs: Any
    ) -> None:
        """Log as the SDK does, but its "unhandled error" line at DEBUG.

        The SDK logs it at ERROR before the exception reaches the tap's command,
        which writes the one ERROR line naming the cause (`failures.describe`):
        the first ERROR a user reads must be that one (a timeout listing
        customers for `balances` was "An unhandled error occurred while syncing
        'balances'").
        """
        if message == SDK_SYNC_ERROR:
            level = min(level, logging.DEBUG)
        super().log(message, *args, level=level, **kwargs)

    @property
    def page_size(self) -> int:
        """Items per list request: the `page_size` setting, within the endpoint's cap."""
        return min(self.services.settings.page_size, self.max_page_size)

    def finalize_state_progress_markers(self, state: dict | None = None) -> None:
        """Finalize as the SDK does, then tell the writer that the stream ended.

        The SDK calls this once after each stream's sync; Singer has no message
        for a stream's end, which the Airbyte protocol needs (`airbyte.writer`).
        """
        super().finalize_state_progress_markers(state)
        writer = self.services.host.message_writer
        if isinstance(writer, BufferedRecordWriter):
            writer.end_stream(self.name, self.stream_state)

    @property
    def dry_run(self) -> bool:
        """Whether this is `--test`: the SDK caps every stream at a few records."""
        return self.ABORT_AT_RECORD_COUNT is not None

    def list_items(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        **paging: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, in API order; each must be an object.

        In a dry run, only the first page is read. `paging` goes to `iter_pages`
        (`first_only`, `until_empty`).
        """
        for page in iter_pages(
            self.services.client,
            path,
            stream=self.name,
            page_size=self.page_size if self.page_style.takes_limit else None,
            method=self.method,
            params=params,
            body=body,
            cursor_in=self.page_style.where,
            cursor=self.page_style.cursor,
            cursor_optional=self.page_style.cursor_optional,
            endpoint=self.path,
            stop=self.services.stop,
            **paging,
        ):
            self.pages_read += 1
            for item in page.records:
                if not isinstance(item, dict):
                    msg = (
                        f"Stream {self.name}: {self.method} {path} returned an item "
                        f"that is not an object: {one_line(item, 80)}"
                    )
                    raise ResponseError(msg)
                yield item
            if self.dry_run and page.records:
                return

    @functools.cached_property
    def keys_seen(self) -> SeenKeys:
        """The primary keys emitted: the API must not list an item twice."""
        return SeenKeys()

    #: Fields the tap computes with beyond its keys: a value that does not match
    #: the schema stops the run whatever `unexpected_values` says.
    strict_fields: ClassVar[frozenset[str]] = frozenset()

    @functools.cached_property
    def unexpected(self) -> UnexpectedValues:
        """The schema check of this stream's records, with the run's policy."""
        strict = {*self.strict_fields, *(self.primary_keys or ())}
        if self.replication_key:
            strict.add(self.replication_key)
        parent = getattr(self, "parent", None)
        if parent:  # the parent's id the tap adds
            strict.add(PARENT_KEYS[parent])
        return UnexpectedValues(
            self.schema,
            stream=self.name,
            where=f"{self.method} {self.path}",
            strict=strict,
            policy=self.services.settings.unexpected_values,
            logger=self.logger,
        )

    def post_process(
        self, row: dict[str, Any], context: Context | None = None
    ) -> dict[str, Any] | None:
        """Check a row against the schema; skip an item listed twice.

        A value that does not match is nulled and kept in `_unexpected_values`
        (`unexpected.py`), or stops the run naming the field if the tap computes
        with it or the setting says `fail`; a repeat is skipped with a WARNING
        naming its primary key. The SDK's conformance drops unknown fields (with
        a WARNING) but passes a value of the wrong type on, which a target then
        rejects or mis-types.
        """
        row = self.unexpected.check(row)
        key = tuple(str(row.get(name)) for name in self.primary_keys or [])
        if key and not self.keys_seen.add(key):
            self.repeats_skipped += 1
            self.logger.warning(
                "Stream %s: skipped an item that %s %s listed twice (primary key %s)",
                self.name,
                self.method,
                self.path,
                ", ".join(key),
            )
            return None
        return row

    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """No child context for a stream without child streams.

        The SDK builds one per record regardless (4% of a costs backfill's CPU);
        a child declared the SDK way (`parent_stream_type`) still gets its own.
        """
        if self.child_streams:
            yield from super().generate_child_contexts(record, context)

    #: The state key of a per-customer stream's bookmarks (`CustomerBookmarks`).
    bookmark_key: ClassVar[str] = ""

    @classmethod
    def clean_state(
        cls, stream_state: Mapping[str, Any], where: str, logger: logging.Logger
    ) -> dict[str, Any]:
        """What of a saved state this stream reads, checked; the rest is dropped.

        Each stream knows its own bookmark keys (`state.read_state` asks every
        stream): a per-customer stream keeps its `bookmark_key` and its reads of
        archived customers (`archived`), a full-table stream nothing else. A
        wrong shape is `InputError` naming the place.
        """
        kept: dict[str, Any] = {}
        if cls.bookmark_key:
            kept = customer_bookmarks(cls.name, stream_state, cls.bookmark_key, logger)  # type: ignore[misc]
        if cls.keeps_archived_reads() and ARCHIVED_READ_ON in stream_state:
            kept.update(
                customer_bookmarks(cls.name, stream_state, ARCHIVED_READ_ON, logger)  # type: ignore[misc]
            )
        return kept

    #: Whether this stream skips archived customers whose data can no longer
    #: change (`archived`); None: every stream that fans out over customers
    #: (`parent = "customers"` or `{customer_id}` in its path) does.
    settles_archived: ClassVar[bool | None] = None

    @classmethod
    def keeps_archived_reads(cls) -> bool:
        """Whether the stream's state remembers its reads of archived customers."""
        if cls.settles_archived is not None:
            return cls.settles_archived
        return (
            getattr(cls, "parent", None) == "customers" or "{customer_id}" in cls.path
        )

    def settle_days(self) -> int:
        """Days after archiving a read must be to settle a customer.

        At least `SETTLE_DAYS`, and at least `lookback_days`: the longest the
        run is told data keeps changing.
        """
        return max(SETTLE_DAYS, self.services.settings.lookback_days)

    @property
    def skips_settled(self) -> bool:
        """Whether settled customers are left out of this run.

        Not when the SDK sends ACTIVATE_VERSION around this stream (a full-table
        stream with `emit_activate_version_messages`): the target would mark
        the rows of customers not read deleted.
        """
        return not (
            self.replication_method == REPLICATION_FULL_TABLE
            and self.emit_activate_version_messages
        )

    def archived_reads(self) -> ArchivedReads | None:
        """This run's archived customers and their last complete reads.

        None when the stream does not keep them, in a dry run (it has no
        state), and under `customer_ids` or without the customers listing (no
        listing says who is archived).
        """
        if (
            not self.keeps_archived_reads()
            or self.dry_run
            or self.services.settings.customer_ids
        ):
            return None
        listing = self.services.listings.archived_if_listed("customers")
        if listing is None:
            return None
        listed, archived_at = listing
        return ArchivedReads(
            self.stream_state,
            stream=self.name,
            archived_at=archived_at,
            listed=listed,
            today=datetime.now(UTC).date(),
            settle_days=self.settle_days(),
        )

    def customer_ids(self) -> tuple[list[str], bool]:
        """The customers to sync, and whether they are the whole listing."""
        configured = self.services.settings.customer_ids
        if configured:
            return list(configured), False
        # A dry run lists one page of customers: not a reason to forget the others.
        return self.services.parent_ids(
            "customers", self.name, dry_run=self.dry_run
        ), not self.dry_run

    def read_bookmarks(self, listed: Iterable[str] | None = None) -> CustomerBookmarks:
        """This stream's per-customer bookmarks, of the `listed` customers if given.

        Future ones were dropped when the state was read: no run can have written
        them. Those of customers no longer listed are counted, not read.
        """
        bookmarks, _ = CustomerBookmarks.from_state(
            self.stream_state,
            latest=end_of_today(),
            stream=self.name,
            key=self.bookmark_key,
            listed=listed,
        )
        return bookmarks

    def write_bookmarks(
        self, bookmarks: CustomerBookmarks, *, flush: bool = True
    ) -> None:
        """Put bookmarks into the stream state and, if `flush`, emit a STATE message.

        Only called after the rows the bookmarks cover were written (between
        customers, or on a stop), so no STATE message covers records not yet out. Not in a dry run (`--test`): it
        starts without the state (the SDK does not pass it) and reads a page, so
        its bookmarks would forget every other customer.
        """
        if self.dry_run:
            return
        self.stream_state[self.bookmark_key] = bookmarks.to_state()
        if flush:
            self.services.write_state()

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The stream's records; its HTTP request counts are written at its end."""
        self.keys_seen.clear()
        try:
            yield from self.records(context)
        finally:
            # Every count so far, including parent listings read for this stream.
            self.services.http_metrics.flush()

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The records of one sync of this stream (each stream says how)."""
        raise NotImplementedError


def nested(item: Mapping[str, Any], *names: str) -> Any:
    """The value at `item[names[0]][names[1]]...`; None where an object or name lacks.

    For a `record_from_item` that lifts a nested key into a column: a value
    missing on the way is a null key, which the schema check refuses with one
    line naming the column.
    """
    value: Any = item
    for name in names:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


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


class ParentStream(MetronomeStream):
    """A listing other streams need the ids of (customers, plans).

    `fetch_all()` reads it from the API; the run's listing cache
    (`listings.Listings`) calls it at most once per run, for this stream or for
    a child, whichever asks first.
    """

    replication_key = None

    def fetch_all(self) -> Iterator[dict[str, Any]]:
        """Every item of the parent endpoint, each with a string `id`."""
        raise NotImplementedError

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The items of this run's listing (kept on disk since it was read)."""
        rows = 0
        for item in self.services.listings.items(self.name, requested_by=self.name):
            rows += 1
            yield item
        self.logger.info(
            "%s: %d records, %d repeated items skipped, %s",
            self.name,
            rows,
            self.repeats_skipped,
            self.unexpected.summary(),
        )

    def get_child_context(
        self, record: dict[str, Any], context: Context | None
    ) -> dict[str, Any]:
        """For a child declared the SDK way (`parent_stream_type`): the parent's id."""
        return {PARENT_KEYS[self.name]: record["id"]}


class ListStream(MetronomeStream):
    """A list endpoint as a declaration: full table, one item per record.

    Account-wide (`parent = None`): every page of `path`. Per parent
    (`parent = "customers"` or `"plans"`): `path` holds `{customer_id}` or
    `{plan_id}`; every parent's pages are read in one fan-out, each record gets
    the parent's id, and a parent that answers a status in `skip_statuses`
    (by default its parent's: `partitions.SKIPPABLE_STATUSES`) is skipped with a
    WARNING and counted.
    """

    replication_key = None
    #: Fixed query parameters and, for POST, the fixed JSON body.
    params: ClassVar[Mapping[str, Any]] = {}
    body: ClassVar[Mapping[str, Any] | None] = None
    parent: ClassVar[Parent | None] = None
    #: Where the parent's id goes: the path (`{customer_id}`) or the JSON body.
    parent_in: ClassVar[Literal["path", "body"]] = "path"
    #: Statuses for which one parent is skipped (WARNING, counted), not the run;
    #: None: the parent's (per customer 400 and 404, per plan 404).
    skip_statuses: ClassVar[frozenset[int] | None] = None
    #: Columns the tap adds to each item besides the parent's id, with their JSON
    #: Schema (`scripts/generate_schemas.py` declares them first); the stream's
    #: `record_from_item` fills them.
    added_columns: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def record_from_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """The record of one API item: the item itself, unless the stream adds columns.

        The hook for a key nested in the item: an item `{"alert": {"id": ...}}`
        becomes `{"alert_id": nested(item, "alert", "id"), **item}`, with
        `alert_id` in `added_columns` and `primary_keys`. `post_process` then
        checks the record as any other: a missing key stops the run naming it,
        and a repeated one is skipped.
        """
        return item

    def request_body(self) -> Mapping[str, Any] | None:
        """The JSON body of every request: `body`, unless the stream adds to it."""
        return self.body

    def record(
        self, item: dict[str, Any], parent_id: str | None = None
    ) -> dict[str, Any]:
        """The record written for one item: the parent's id first, if per parent."""
        record = self.record_from_item(item)
        if self.parent is None or parent_id is None:
            return record
        return {PARENT_KEYS[self.parent]: parent_id, **record}

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every item, or every parent's items, in the order the API lists them."""
        if self.parent is None:
            rows = 0
            for item in self.list_items(self.path, self.params, self.request_body()):
                rows += 1
                yield self.record(item)
            self.logger.info(
                "%s: %d records, %d requests, %d repeated items skipped, %s",
                self.name,
                rows,
                self.pages_read,
                self.repeats_skipped,
                self.unexpected.summary(),
            )
            return
        partitions: Partitions[list[dict[str, Any]]] = Partitions(
            self,
            self.services.parent_ids(self.parent, self.name, dry_run=self.dry_run),
            parent=self.parent,
            skippable=self.skip_statuses,
        )
        rows = 0
        # A key with the parent's id can only repeat within that parent's listing:
        # then the keys seen are forgotten between parents, so memory stays flat.
        per_parent = PARENT_KEYS[self.parent] in (self.primary_keys or ())
        for _, items in partitions.fetch(self.items_of):
            if per_parent:
                self.keys_seen.clear()
            rows += len(items)
            yield from items
            partitions.done(rows)
        partitions.summary(
            f"{rows} records",
            f"{self.repeats_skipped} repeated items skipped",
            self.unexpected.summary(),
        )

    def items_of(self, parent_id: str) -> list[dict[str, Any]]:
        """All items of one parent, each carrying the parent's id (a worker thread)."""
        key = PARENT_KEYS[self.parent or ""]
        path, body = self.path, self.request_body()
        if self.parent_in == "body":
            body = {**(body or {}), key: parent_id}
        else:
            path = with_id(path, key, parent_id, stream=self.name)
        return [
            self.record(item, parent_id)
            for item in self.list_items(path, self.params, body)
        ]
