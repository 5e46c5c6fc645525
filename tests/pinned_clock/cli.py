"""`tap-metronome` whose clock reads `TAP_TESTS_UTC_NOW` (an RFC 3339 instant).

A daily snapshot is dated by the run's clock (`tap_metronome.times.utc_now`):
a test runs "tomorrow" without waiting a day. Only that clock is pinned; the
rest is the tap's own command line (`tap_process.run(..., program=PROGRAM)`).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import NoReturn

from tap_metronome import times
from tap_metronome.cli import main as tap_main

#: `tap_process`'s name of this program.
PROGRAM = "tests.pinned_clock"


def main(argv: list[str] | None = None) -> NoReturn:
    """Pin the clock, then run the tap."""
    pinned = times.parse_date_time(os.environ["TAP_TESTS_UTC_NOW"])

    def utc_now() -> datetime:
        return pinned

    times.utc_now = utc_now
    tap_main(argv)
