"""Cursor pagination shared by every Metronome list endpoint, and its one progress rule.

Metronome lists answer `{"data": [...], "next_page": cursor | null}`. A page may
be empty and still carry a cursor, so emptiness never ends a listing: only a null
cursor does (or, with `until_empty`, an empty page).

Every listing of the tap is paged here (`MetronomeStream.list_items`: account-wide
streams, per-customer and per-plan fan-outs, each costs window, and the customers
and plans listings of `listings.Listings`), so the rule that ends a listing which
can no longer bring anything new lives here, once. A page is *new* unless it is
empty or its items are exactly those of a page already read in this listing. An
API that ignores the cursor and answers a fresh one every time (as it would a
cursor sent under the wrong name) re-sends its first page forever: about 20,000
requests in 45 s, and costs kept every copy in memory. The listing stops with a
`PaginationError` (one line naming the stream and the request; exit 2) when

- a cursor comes back (a cycle of cursors, of any length);
- 5 pages in a row are each a page read twice already (empty pages and second
  sightings between them do not break the row): an API may serve a page a
  second time (a customer listed both as active and as archived lists its usage
  series twice; an insert shifting an offset), which must not stop a run, but
  a third time only an API that ignores the cursor (or cycles through old
  pages) does;
- 200 pages in a row bring nothing new: the API returns an empty page with a
  cursor now and then, never hundreds in a row; an empty listing re-sent under
  fresh cursors costs those 200 requests (25 s at the default pace).

A repeated page is not passed on (an empty page stands in for it, so pages still
count requests): every stream would skip its items as repeats anyway, with a
WARNING per item and page, and audit_logs would take them for entries out of
order. If the listing then ends, one WARNING counts the pages skipped. A page
that brings even one item not read before is progress and is passed on whole:
streams skip its repeats as they always did (`post_process`, `seen.py`), so an
item listed twice by a legitimate API is handled as before. An API inventing new
items forever cannot be told, at this depth, from a long listing; each of its
pages writes new records. Where the request bounds the answer (a costs window of
D days holds at most D items) a cap could stop that too; it is not here, since
only `streams/costs.py` knows its windows, and the rule above already ends costs'
endless listing after 7 requests a window.

Pages, not items, are remembered: 8 bytes per page read (`seen.SeenKeys`; 8 more
for a page read twice), where
items would cost 8 bytes per item of one listing (usage is one listing of
millions of rows, kept flat on purpose), and a page catches what goes wrong here
(its own first page again, or a cycle of old pages under fresh cursors). A page
is known by a 64-bit hash of its items as encoded: about 60 µs for a 100-day
costs page, a third of decoding it. When a listing stops, what was written stays
written and bookmarks cover only that (costs saves them on the way out).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import msgspec
from singer_sdk.pagination import BaseAPIPaginator

from tap_metronome.errors import ResponseError, one_line
from tap_metronome.seen import SeenKeys

if TYPE_CHECKING:
    from tap_metronome.client import MetronomeClient
    from tap_metronome.stopping import StopRequest

_ENCODER = msgspec.json.Encoder(decimal_format="number")


class PageStyle(Enum):
    """How an endpoint pages, named after the official client's page classes.

    metronome-sdk's `pagination.py` has one class per style; each stream names
    its endpoint's (`MetronomeStream.page_style`), which says where the cursor
    goes (the query or the JSON body), what it is called, and whether the
    endpoint takes a `limit`.
    """

    #: `SyncCursorPage`: `next_page` and `limit` in the query (most lists).
    CURSOR_PAGE = ("query", "next_page", True)
    #: `SyncCursorPageWithoutLimit`: `next_page` in the query, no `limit` (usage).
    CURSOR_PAGE_WITHOUT_LIMIT = ("query", "next_page", False)
    #: `SyncBodyCursorPage`: `next_page` and `limit` in the JSON body (balances).
    BODY_CURSOR_PAGE = ("body", "next_page", True)
    #: `SyncBodyCursorPageCursorField`: `cursor` and `limit` in the body (contracts).
    BODY_CURSOR_PAGE_CURSOR_FIELD = ("body", "cursor", True)
    #: No page class: the spec and the client read one answer, `{"data": [...]}`
    #: (billing provider configurations). A `next_page` the API may add one day
    #: is followed in the query rather than its pages dropped.
    NO_PAGING = ("query", "next_page", False, True)

    def __init__(
        self, where: str, cursor: str, takes_limit: bool, cursor_optional: bool = False
    ) -> None:
        self.where = where
        self.cursor = cursor
        self.takes_limit = takes_limit
        #: Whether an answer may lack the cursor (then it is the last page).
        self.cursor_optional = cursor_optional


class PaginationError(ResponseError):
    """The API's cursors or page shape make the listing untrustworthy."""


@dataclass(frozen=True, slots=True)
class CursorPage:
    """One parsed list response."""

    records: list[dict[str, Any]]
    next_page: str | None

    @classmethod
    def from_body(
        cls,
        body: Any,
        *,
        stream: str,
        request: str,
        cursor: str = "next_page",
        cursor_optional: bool = False,
    ) -> CursorPage:
        """Check the body has the list shape the spec promises.

        `next_page` is required, unless `cursor_optional` (an endpoint without
        paging); `cursor` (contracts) may be absent, as in the spec's shape,
        which has no pagination: absent means the last page.
        """
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("data"), list)
            or (cursor == "next_page" and not cursor_optional and cursor not in body)
            or not isinstance(body.get(cursor), str | None)
        ):
            msg = (
                f"Stream {stream}: {request} did not answer a list page "
                f"(expected an object with 'data' list and '{cursor}')"
            )
            raise PaginationError(msg)
        return cls(records=body["data"], next_page=body.get(cursor) or None)


class MetronomeCursorPaginator(BaseAPIPaginator[str | None]):
    """Follows `next_page` cursors until a null one; refuses a listing without progress.

    Only the cursor ends a listing: `iter_pages` asks for the next page whether or
    not the last one had data. `admit` applies the progress rule (module
    docstring) to each page before it is passed on; `get_next` refuses a cursor
    already followed.
    """

    #: Pages in a row without a new page (empty or repeated) after which a listing
    #: is taken to be endless: the API returns an empty page with a cursor now
    #: and then, never hundreds in a row.
    MAX_IDLE_PAGES = 200
    #: Of those, pages served a third time or more after which it is taken to be
    #: endless (a second sighting alone can be an item listed twice).
    MAX_REPEATED_PAGES = 5

    def __init__(self, stream: str, request: str) -> None:
        super().__init__(None)
        self.stream = stream
        self.request = request
        self._seen: set[str] = set()
        self._pages = SeenKeys()
        #: Pages seen twice already (a third sighting counts toward the stop).
        self._twice = SeenKeys()
        self._idle = 0
        self._repeated = 0
        #: Pages of this listing skipped because they repeated one already read.
        self.repeated_pages = 0

    def admit(self, page: CursorPage) -> bool:
        """Whether `page` brings an item not read before (then remember it).

        Raises `PaginationError` on a page with a cursor that ends a row of
        `MAX_REPEATED_PAGES` repeated pages or `MAX_IDLE_PAGES` pages with
        nothing new; a repeated last page ends the listing anyway.
        """
        page_key = hash(_ENCODER.encode(page.records)) if page.records else 0
        if page.records and self._pages.add(page_key):
            self._idle = self._repeated = 0
            return True
        self._idle += 1
        if page.records:
            self.repeated_pages += 1
            # A page served a second time can be the API listing something twice
            # (a customer both active and archived lists its usage series twice);
            # only a third sighting is a loop.
            if not self._twice.add(page_key):
                self._repeated += 1
        if page.next_page is None:
            return False
        where = f"Stream {self.stream}: {self.request} returned"
        if self._repeated >= self.MAX_REPEATED_PAGES:
            msg = (
                f"{where} {self._repeated} pages in a row that repeat a page of this "
                "listing already read twice, each with a new cursor (is the cursor "
                "ignored?); stopping instead of paging forever"
            )
            raise PaginationError(msg)
        if self._idle >= self.MAX_IDLE_PAGES:
            what = (
                "empty pages"
                if not self._repeated
                else "pages without a new item (empty, or repeating a page already read)"
            )
            msg = (
                f"{where} {self._idle} {what} in a row, each with a new cursor; "
                "stopping instead of paging forever"
            )
            raise PaginationError(msg)
        return False

    def get_next(self, response: CursorPage) -> str | None:  # type: ignore[override]
        """Return the next cursor, refusing any cursor already followed."""
        cursor = response.next_page
        if cursor is not None:
            if cursor in self._seen:
                msg = (
                    f"Stream {self.stream}: {self.request} returned cursor "
                    f"'{one_line(cursor, 40)}' a second time after {self.count} pages; "
                    "stopping instead of looping forever"
                )
                raise PaginationError(msg)
            self._seen.add(cursor)
        return cursor


def iter_pages(
    client: MetronomeClient,
    path: str,
    *,
    stream: str,
    page_size: int | None,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    body: Mapping[str, Any] | None = None,
    cursor_in: str = "query",
    cursor: str = "next_page",
    endpoint: str | None = None,
    stop: StopRequest | None = None,
    first_only: Mapping[str, Any] | None = None,
    until_empty: bool = False,
    cursor_optional: bool = False,
) -> Iterator[CursorPage]:
    """Yield every page of a list endpoint, empty pages included, in order.

    `limit` and the cursor (named `cursor`: `next_page`, or `cursor` for
    contracts, both in the request and the answer) go in the query, or in the
    JSON body when `cursor_in` is "body". Before each request, `stop` is
    checked: a signal ends the listing there.

    `page_size` None sends no `limit` (usage has none). `first_only` query
    parameters go with the first request only (audit logs refuse `starting_on`
    beside a cursor). With `until_empty`, an empty page ends the listing (audit
    logs return a cursor on every page, the last, empty one included). With
    `cursor_optional`, an answer without `next_page` is the last page.

    A page that repeats one already read is yielded empty, and a listing that can
    no longer bring anything new stops (`MetronomeCursorPaginator.admit`).
    """
    request = f"{method} {path}"
    paginator = MetronomeCursorPaginator(stream, request)
    while not paginator.finished:
        if stop is not None:
            stop.check()
        paging: dict[str, Any] = {} if page_size is None else {"limit": page_size}
        if paginator.current_value is not None:
            paging[cursor] = paginator.current_value
        query = {**(params or {})}
        if first_only and paginator.current_value is None:
            query |= first_only
        payload = None if body is None and method == "GET" else {**(body or {})}
        if cursor_in == "body" and payload is not None:
            payload |= paging
        else:
            query |= paging
        answer = client.request(
            method,
            path,
            params=query,
            body=payload,
            stream=stream,
            endpoint=endpoint or path,
        )
        page = CursorPage.from_body(
            answer,
            stream=stream,
            request=request,
            cursor=cursor,
            cursor_optional=cursor_optional,
        )
        if paginator.admit(page):
            yield page
        else:
            yield CursorPage(records=[], next_page=page.next_page)
        if until_empty and not page.records:
            break
        paginator.advance(page)  # type: ignore[arg-type]
    if paginator.repeated_pages:
        client.logger.warning(
            "Stream %s: %s returned %d pages that repeat a page of this listing "
            "already read (the same items); they were skipped",
            stream,
            request,
            paginator.repeated_pages,
        )
