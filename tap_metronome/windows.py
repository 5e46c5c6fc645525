"""UTC day windows for the costs endpoint, and per-customer costs bookmarks.

Metronome answers one costs item per UTC day, `starting_on` inclusive and
`ending_before` exclusive. A window spans at most `page_size` days so that it is
normally one request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pendulum

from tap_metronome.settings import parse_instant

#: The state key holding costs bookmarks: {exclusive end date: [customer ids]}.
SYNCED_UNTIL = "synced_until"


@dataclass(frozen=True, slots=True)
class Window:
    """Days `start` (inclusive) to `end` (exclusive), both UTC midnights."""

    start: date
    end: date

    @property
    def days(self) -> int:
        """How many daily costs items the window holds."""
        return (self.end - self.start).days

    def params(self) -> dict[str, str]:
        """The costs endpoint's query parameters for this window."""
        return {"starting_on": rfc3339(self.start), "ending_before": rfc3339(self.end)}


def rfc3339(day: date) -> str:
    """UTC midnight of `day` as the API writes timestamps."""
    return f"{day.isoformat()}T00:00:00Z"


def floor_day(value: str) -> date:
    """The UTC day containing the instant `value` (a date or a date-time)."""
    return parse_instant(value).date()


def ceil_day(value: str) -> date:
    """The first UTC midnight at or after the instant `value`."""
    instant = parse_instant(value)
    day = instant.date()
    if instant == datetime.combine(day, time(), tzinfo=UTC):
        return day
    return day + timedelta(days=1)


def default_end(now: datetime | None = None) -> date:
    """By default sync through the end of the current UTC day (pending costs)."""
    today = (now or pendulum.now("UTC")).astimezone(UTC).date()
    return today + timedelta(days=1)


def day_windows(start: date, end: date, max_days: int) -> Iterator[Window]:
    """Consecutive windows covering [start, end), each at most `max_days` long."""
    if max_days < 1:
        msg = f"max_days must be >= 1, got {max_days}"
        raise ValueError(msg)
    cursor = start
    while cursor < end:
        stop = min(cursor + timedelta(days=max_days), end)
        yield Window(cursor, stop)
        cursor = stop


class CostsBookmarks:
    """Per customer, the exclusive end of the costs already written.

    Stored grouped by date (`{"2026-11-23": [ids...]}`), which is smaller than a
    map of id to date and nearly constant in size once customers are caught up.
    """

    def __init__(self, synced_until: Mapping[str, date] | None = None) -> None:
        self._until: dict[str, date] = dict(synced_until or {})

    @classmethod
    def from_state(cls, stream_state: Mapping[str, Any]) -> CostsBookmarks:
        """Read bookmarks from the stream's state (absent or empty: none)."""
        grouped = stream_state.get(SYNCED_UNTIL) or {}
        until: dict[str, date] = {}
        for day, customer_ids in grouped.items():
            parsed = date.fromisoformat(day)
            for customer_id in customer_ids:
                until[customer_id] = max(parsed, until.get(customer_id, parsed))
        return cls(until)

    def to_state(self) -> dict[str, list[str]]:
        """The grouped, sorted form written into STATE messages."""
        grouped: dict[str, list[str]] = {}
        for customer_id, day in self._until.items():
            grouped.setdefault(day.isoformat(), []).append(customer_id)
        return {day: sorted(ids) for day, ids in sorted(grouped.items())}

    def get(self, customer_id: str) -> date | None:
        """The customer's bookmark, or None if it was never synced."""
        return self._until.get(customer_id)

    def advance(self, customer_id: str, end: date) -> None:
        """Record that costs before `end` are written; bookmarks never go back."""
        current = self._until.get(customer_id)
        if current is None or end > current:
            self._until[customer_id] = end

    def keep_only(self, customer_ids: Iterable[str]) -> int:
        """Forget customers no longer listed; return how many were dropped."""
        keep = set(customer_ids)
        dropped = [cid for cid in self._until if cid not in keep]
        for customer_id in dropped:
            del self._until[customer_id]
        return len(dropped)

    def __len__(self) -> int:
        return len(self._until)


def start_for(bookmark: date | None, *, start: date, lookback_days: int) -> date:
    """Where a customer's sync starts.

    A customer never synced is backfilled from `start_date`; otherwise the run
    re-reads `lookback_days` before its bookmark, because late usage changes
    recent days' pending costs.
    """
    if bookmark is None:
        return start
    return max(start, bookmark - timedelta(days=lookback_days))
