"""UTC day windows for the costs endpoint, and per-customer costs bookmarks.

Metronome answers one costs item per UTC day, `starting_on` inclusive and
`ending_before` exclusive. A window spans at most `page_size` days so that it is
normally one request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

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


@functools.lru_cache(maxsize=256)
def day_stamps(window: Window) -> dict[str, str]:
    """Start -> end timestamp of each day in `window`, as the API writes them.

    Checking an item's day against this is a dict lookup instead of two
    date-time parses per item (the costs stream's hottest check).
    """
    stamps = {}
    day = window.start
    while day < window.end:
        following = day + timedelta(days=1)
        stamps[rfc3339(day)] = rfc3339(following)
        day = following
    return stamps


def rfc3339(day: date) -> str:
    """UTC midnight of `day` as the API writes timestamps."""
    return f"{day.isoformat()}T00:00:00Z"


def end_of_today(now: datetime | None = None) -> date:
    """The exclusive end of the current UTC day: no bookmark may pass it."""
    return (now or datetime.now(UTC)).astimezone(UTC).date() + timedelta(days=1)


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


def start_for(bookmark: date | None, *, start: date, lookback_days: int) -> date:
    """Where a customer's sync starts.

    A customer never synced is backfilled from `start_date`; otherwise the run
    re-reads `lookback_days` before its bookmark, because late usage changes
    recent days' pending costs.
    """
    if bookmark is None or (bookmark - start).days <= lookback_days:
        return start
    return bookmark - timedelta(days=lookback_days)
