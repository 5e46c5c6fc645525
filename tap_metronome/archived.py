"""Archived customers whose data can no longer change cost no request once read.

Metronome archives a customer for good ("it cannot be unarchived"): archiving
archives its contracts and voids its invoices, and its notifications stop. What
can still change after that is late: usage reported up to 34 days late, and the
processing of the archive itself. So a per-customer stream remembers, in its
state under `archived_read_on`, the UTC day on which it last read each archived
customer completely; a customer read more than `settle_days` (at least
`SETTLE_DAYS`, and at least `lookback_days`, and for invoices
`invoices_lookback_days`) after the day it was archived is settled: later runs
send it no request, and its rows stay downstream as they were (these streams
emit no ACTIVATE_VERSION unless asked to, and then every customer is read).

Only customers the whole listing shows archived are kept, so the state is
bounded by the archived customers; `customer_ids` (no listing) and `--test`
settle no one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from tap_metronome.bookmarks import CustomerBookmarks, canonical_id
from tap_metronome.times import parse_date_time

#: The state key: {UTC day of the last complete read: [archived customer ids]}.
ARCHIVED_READ_ON = "archived_read_on"
#: The fewest days between archiving and a read that settles a customer: 34 days
#: of late usage and 1 of margin, as `lookback_days`' default; a month-end
#: invoice of the period the customer was archived in is voided by the archive.
SETTLE_DAYS = 35


def archived_days(archived_at: Mapping[str, str]) -> dict[str, date]:
    """Each archived customer's UTC archive day, by canonical id.

    An `archived_at` that is not a date-time settles nothing (the customer is
    read as usual, and not remembered).
    """
    days: dict[str, date] = {}
    for customer_id, value in archived_at.items():
        try:
            days[canonical_id(customer_id)] = parse_date_time(value).date()
        except (TypeError, ValueError):
            continue
    return days


class ArchivedReads:
    """One stream's archived customers and the day each was last read completely."""

    def __init__(
        self,
        stream_state: Mapping[str, Any],
        *,
        stream: str,
        archived_at: Mapping[str, str],
        listed: Iterable[str],
        today: date,
        settle_days: int,
    ) -> None:
        self.today = today
        self.settle_days = settle_days
        self.archived = archived_days(archived_at)
        # Read days after today are not read: no run can have written them.
        self.read_on, _ = CustomerBookmarks.from_state(
            stream_state,
            latest=today,
            stream=stream,
            key=ARCHIVED_READ_ON,
            listed=listed,
        )

    def settled(self, customer_id: str) -> bool:
        """Whether the customer is archived and was read `settle_days` after that."""
        archived = self.archived.get(canonical_id(customer_id))
        read_on = self.read_on.get(customer_id)
        if archived is None or read_on is None:
            return False
        # Days, not instants: the read began on `read_on` or later and the archive
        # ended its day, so more than `settle_days` days apart is at least that.
        return read_on > archived + timedelta(days=self.settle_days)

    def read(self, customer_id: str) -> None:
        """The customer's items are all written: remember today, if it is archived."""
        if canonical_id(customer_id) in self.archived:
            self.read_on.set(customer_id, self.today)

    def to_state(self) -> dict[str, list[str]]:
        """The grouped form for the stream's state, of archived customers only."""
        self.read_on.keep_only(self.archived)
        return self.read_on.to_state()
