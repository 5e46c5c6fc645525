"""Per-customer bookmarks: one date per customer, stored grouped by date.

Costs keep where each customer's written costs end (`synced_until`); invoices,
where each customer's invoices are re-read from (`reread_from`). Both are
per-customer dates that move as a stream writes, so both use
`CustomerBookmarks`; ids are compared in their one form (`canonical_id`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Any

from tap_metronome.errors import InputError, one_line
from tap_metronome.times import parse_date


def canonical_id(customer_id: str) -> str:
    """The one form of an id for comparing and keeping it.

    A uuid in lower case with hyphens (as `customer_ids` and saved bookmarks
    are), any other id as is. The API may list a uuid in upper case; records keep the id as the API sent
    it, and bookmarks are found whatever the case (issue 23).
    """
    if isinstance(customer_id, str) and _CANONICAL_UUID.fullmatch(customer_id):
        return customer_id  # already canonical: the same object, not a copy
    try:
        return str(uuid.UUID(customer_id))
    except (ValueError, TypeError, AttributeError):
        return customer_id


#: A uuid already in its canonical form (most ids): kept as the very same string,
#: so millions of bookmarks are not held twice.
_CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


class CustomerBookmarks:
    """Per customer, one date: where costs end, or where invoices are re-read from.

    For costs, the exclusive end of the costs already written; for invoices, the
    billing-period start the next run re-reads from.

    Stored grouped by date (`{"2026-11-23": [ids...]}`), which is smaller than a
    map of id to date and nearly constant in size once customers are caught up.
    """

    def __init__(self, synced_until: Mapping[str, date] | None = None) -> None:
        self._until: dict[str, date] = dict(synced_until or {})
        self._days: dict[date, date] = {}
        #: Bookmarks of customers no longer listed, left out when read.
        self.forgotten = 0

    @staticmethod
    def _groups(
        stream_state: Mapping[str, Any], *, stream: str, key: str
    ) -> Iterator[tuple[date, list[str]]]:
        """Each (date, customer ids) of the stream's state, checked.

        A wrong shape is `InputError`, one line naming the place.
        """
        where = f"state: bookmarks.{stream}.{key}"
        grouped = stream_state.get(key)
        if grouped is None:
            grouped = {}
        if not isinstance(grouped, Mapping):
            msg = f"{where} must be an object of date -> customer ids, not {type(grouped).__name__}"
            raise InputError(msg)
        for day, customer_ids in grouped.items():
            try:
                parsed = parse_date(day)
            except (TypeError, ValueError):
                msg = f"{where} has key {one_line(day, 40)}, which is not a date (YYYY-MM-DD)"
                raise InputError(msg) from None
            if not isinstance(customer_ids, list) or not all(
                isinstance(customer_id, str) for customer_id in customer_ids
            ):
                msg = f"{where}[{day!r}] must be a list of customer ids (strings)"
                raise InputError(msg)
            yield parsed, customer_ids

    @classmethod
    def from_state(
        cls,
        stream_state: Mapping[str, Any],
        *,
        latest: date,
        stream: str,
        key: str,
        listed: Iterable[str] | None = None,
    ) -> tuple[CustomerBookmarks, dict[str, date]]:
        """Read bookmarks from the stream's state (absent or empty: none).

        Returns the bookmarks and, apart, those later than `latest` (the end of
        the current UTC day): no run can have written that far, so the state was
        edited or corrupted, and those customers are re-read from `start_date`.
        A state of the wrong shape is refused with one line naming the place.
        With `listed` (the customers now listed), bookmarks of other customers
        are not read at all, only counted in `forgotten`: a state may hold
        millions of customers long gone.
        """
        keep = None if listed is None else set(map(canonical_id, listed))
        until: dict[str, date] = {}
        future: dict[str, date] = {}
        forgotten: set[str] = set()
        for parsed, customer_ids in cls._groups(stream_state, stream=stream, key=key):
            target = future if parsed > latest else until
            for customer_id in map(canonical_id, customer_ids):
                if keep is not None and customer_id not in keep:
                    forgotten.add(customer_id)
                    continue
                target[customer_id] = max(parsed, target.get(customer_id, parsed))
        for customer_id in future:
            until.pop(customer_id, None)
        bookmarks = cls(until)
        bookmarks.forgotten = len(forgotten)
        return bookmarks, future

    @classmethod
    def checked_state(
        cls,
        stream_state: Mapping[str, Any],
        *,
        latest: date,
        stream: str,
        key: str,
    ) -> tuple[Any, dict[str, date]]:
        """The state's bookmarks as they are to be kept, and those in the future.

        A state without future bookmarks and with ids in their one form is kept
        as it is, not rebuilt: building a second copy of millions of bookmarks
        only to check them doubled the memory of a large state.
        """
        for parsed, customer_ids in cls._groups(stream_state, stream=stream, key=key):
            if parsed > latest or any(
                canonical_id(customer_id) is not customer_id
                for customer_id in customer_ids
            ):
                bookmarks, future = cls.from_state(
                    stream_state, latest=latest, stream=stream, key=key
                )
                return bookmarks.to_state(), future
        return stream_state.get(key) or {}, {}

    def to_state(self) -> dict[str, list[str]]:
        """The grouped, sorted form written into STATE messages."""
        grouped: dict[str, list[str]] = {}
        for customer_id, day in self._until.items():
            grouped.setdefault(day.isoformat(), []).append(customer_id)
        return {day: sorted(ids) for day, ids in sorted(grouped.items())}

    def get(self, customer_id: str) -> date | None:
        """The customer's bookmark, or None if it was never synced."""
        return self._until.get(canonical_id(customer_id))

    def advance(self, customer_id: str, end: date) -> None:
        """Record that costs before `end` are written; bookmarks never go back."""
        customer_id = canonical_id(customer_id)
        current = self._until.get(customer_id)
        if current is None or end > current:
            # One date object per distinct day, however many customers share it.
            self._until[customer_id] = self._days.setdefault(end, end)

    def set(self, customer_id: str, day: date) -> None:
        """Put the customer's bookmark at `day`, earlier or later than before.

        For invoices: where the next run re-reads from, which may move back.
        """
        self._until[canonical_id(customer_id)] = self._days.setdefault(day, day)

    def keep_only(self, customer_ids: Iterable[str]) -> int:
        """Forget customers no longer listed; return how many were dropped."""
        keep = set(map(canonical_id, customer_ids))
        before = len(self._until)
        # A new dict: one emptied by `del` keeps its size (millions of bookmarks of
        # customers long gone would stay allocated for the whole run).
        self._until = {cid: day for cid, day in self._until.items() if cid in keep}
        return before - len(self._until)

    def __len__(self) -> int:
        return len(self._until)
