"""Cursor pagination shared by every Metronome list endpoint.

Metronome lists answer `{"data": [...], "next_page": cursor | null}`. A page may
be empty and still carry a cursor, so emptiness never ends a listing: only a null
cursor does. A cursor seen before means the listing would loop forever, which is
an error rather than a silent truncation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from singer_sdk.pagination import BaseAPIPaginator

from tap_metronome.errors import ResponseError, one_line

if TYPE_CHECKING:
    from tap_metronome.client import MetronomeClient
    from tap_metronome.stopping import StopRequest


class PaginationError(ResponseError):
    """The API's cursors or page shape make the listing untrustworthy."""


@dataclass(frozen=True, slots=True)
class CursorPage:
    """One parsed list response."""

    records: list[dict[str, Any]]
    next_page: str | None

    @classmethod
    def from_body(
        cls, body: Any, *, stream: str, request: str, cursor: str = "next_page"
    ) -> CursorPage:
        """Check the body has the list shape the spec promises.

        `next_page` is required; `cursor` (contracts) may be absent, as in the
        spec's shape, which has no pagination: absent means the last page.
        """
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("data"), list)
            or (cursor == "next_page" and cursor not in body)
            or not isinstance(body.get(cursor), str | None)
        ):
            msg = (
                f"Stream {stream}: {request} did not answer a list page "
                f"(expected an object with 'data' list and '{cursor}')"
            )
            raise PaginationError(msg)
        return cls(records=body["data"], next_page=body.get(cursor) or None)


class MetronomeCursorPaginator(BaseAPIPaginator[str | None]):
    """Follows `next_page` cursors until a null one, refusing any repeated cursor.

    Only the cursor ends a listing: `iter_pages` asks for the next page whether or
    not the last one had data.
    """

    #: Empty pages in a row after which a listing is taken to be endless: the API
    #: returns an empty page with a cursor now and then, never hundreds in a row.
    MAX_EMPTY_PAGES = 200

    def __init__(self, stream: str) -> None:
        super().__init__(None)
        self.stream = stream
        self._seen: set[str] = set()
        self._empty_in_a_row = 0

    def get_next(self, response: CursorPage) -> str | None:  # type: ignore[override]
        """Return the next cursor, refusing any cursor already followed."""
        cursor = response.next_page
        self._empty_in_a_row = 0 if response.records else self._empty_in_a_row + 1
        if cursor is not None and self._empty_in_a_row >= self.MAX_EMPTY_PAGES:
            msg = (
                f"Stream {self.stream}: the API returned {self._empty_in_a_row} empty "
                "pages in a row, each with a new cursor; stopping instead of paging "
                "forever"
            )
            raise PaginationError(msg)
        if cursor is not None:
            if cursor in self._seen:
                msg = (
                    f"Stream {self.stream}: the API returned cursor '{one_line(cursor, 40)}' "
                    f"a second time after {self.count} pages; stopping instead of "
                    "looping forever"
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
) -> Iterator[CursorPage]:
    """Yield every page of a list endpoint, empty pages included, in order.

    `limit` and the cursor (named `cursor`: `next_page`, or `cursor` for
    contracts, both in the request and the answer) go in the query, or in the
    JSON body when `cursor_in` is "body". Before each request, `stop` is
    checked: a signal ends the listing there.

    `page_size` None sends no `limit` (usage has none). `first_only` query
    parameters go with the first request only (audit logs refuse `starting_on`
    beside a cursor). With `until_empty`, an empty page ends the listing (audit
    logs return a cursor on every page, the last, empty one included).
    """
    paginator = MetronomeCursorPaginator(stream)
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
            answer, stream=stream, request=f"{method} {path}", cursor=cursor
        )
        yield page
        if until_empty and not page.records:
            return
        paginator.advance(page)  # type: ignore[arg-type]
