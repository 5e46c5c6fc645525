"""The one reading of times: RFC 3339 date-times and dates, for every stream.

Every place that parses a time goes through here: the settings (`parse_instant`),
the state check, the schema's `date-time` and `date` formats (`unexpected.py`),
costs' days (`records.py`), invoices' billing periods, usage windows and the
audit log's order. Before this module each had its own reading, and they
disagreed: a costs day in lower case (`...t00:00:00z`) stopped costs while the
audit log took it, and a bookmark could be written that the next run refused.

The rules (RFC 3339, section 5.6):

- `YYYY-MM-DD`, `T` or `t` (or a space, which RFC 3339 allows "for
  readability"), `HH:MM:SS`, a fraction of any length (cut to microseconds, not
  rounded: a time never moves into the next second), then `Z`, `z` or an offset
  `+HH:MM` / `-HH:MM` (hours 00-23). `-00:00` is UTC.
- The result is an aware datetime in UTC: `...T01:00:00+01:00` is the same
  instant as `...T00:00:00Z`, and compares equal to it.
- A leap second, `23:59:60` (in UTC, after the offset), is read as
  `23:59:59.999999` of that minute: the last instant Python can hold that is
  still in the same UTC day and minute. So it sorts after every earlier time,
  stays in its own day (a costs day, a date bookmark), and never becomes the
  next day's midnight, which is another day's key. Second `60` at any other
  minute is refused.
- An instant outside years 1..9999 in UTC (`9999-12-31T23:30:00-01:00`) is
  refused: nothing can be computed or bookmarked with it.

`instant_text` writes an instant in the tap's one form (UTC, `T`, `Z`, a
fraction only when there is one): the form of costs' days, usage windows' keys
and the bookmarks the tap writes, so that two spellings of one instant are one
key. `written_as_is` tells whether a date-time may go to a target as the API
wrote it: Python's `datetime.fromisoformat`, which Singer SDK targets use,
refuses `z` and leap seconds, so the tap writes those in its own form.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,  # `\d` is 0-9 only, not other scripts' digits
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
#: What a person may type in a setting or an edited state besides RFC 3339: a
#: date alone, no seconds, no offset (UTC), whitespace around it.
_LENIENT = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?"
    r"([Zz]|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)
_LAST_MICROSECOND = 999_999


def _refused(
    value: object, why: str = "", what: str = "an RFC 3339 date-time"
) -> ValueError:
    because = f" ({why})" if why else ""
    return ValueError(f"not {what}{because}: {str(value)[:80]!r}")


def parse_date_time(value: Any) -> datetime:
    """An RFC 3339 date-time as an aware datetime in UTC (see the module's rules).

    Raises `ValueError` for anything else (`TypeError` for a value not a string).
    """
    if not isinstance(value, str):
        msg = f"not a string: {type(value).__name__}"
        raise TypeError(msg)
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        raise _refused(value)
    if value[-1] == "Z" and value[17:19] != "60":  # the API's form: in C
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise _refused(value, "a day or time that does not exist") from None
    year, month, day, hour, minute, second = map(int, match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7)
    microsecond = int(fraction[:6].ljust(6, "0")) if fraction else 0
    sign, offset_hours, offset_minutes = match.group(8, 9, 10)
    offset = timedelta()
    if sign is not None:
        hours, minutes = int(offset_hours), int(offset_minutes)
        if hours > 23 or minutes > 59:
            raise _refused(value, "an offset outside -23:59..+23:59")
        offset = timedelta(hours=hours, minutes=minutes)
        if sign == "-":
            offset = -offset
    leap = second == 60
    if leap:
        second, microsecond = 59, _LAST_MICROSECOND
    try:
        local = datetime(year, month, day, hour, minute, second, microsecond, UTC)
        moment = local - offset
    except (ValueError, OverflowError):
        raise _refused(
            value, "a day that does not exist, or outside years 1..9999 in UTC"
        ) from None
    if leap and (moment.hour, moment.minute) != (23, 59):
        raise _refused(value, "a leap second other than 23:59:60 UTC")
    return moment


def parse_date(value: Any) -> date:
    """An RFC 3339 `full-date` (`YYYY-MM-DD`, nothing else: not `20240101`)."""
    if not isinstance(value, str):
        msg = f"not a string: {type(value).__name__}"
        raise TypeError(msg)
    if _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _refused(value, what="a date (YYYY-MM-DD)")


def parse_instant(value: Any) -> datetime:
    """A setting's or an edited state's date or date-time, as an aware UTC datetime.

    RFC 3339, plus what a person types: a date alone (its UTC midnight), no
    seconds, no offset (UTC), whitespace around it. Only these forms:
    `01/10/2026` means 1 October to some and 10 January to others, so it is
    refused rather than guessed.
    """
    if not isinstance(value, str):
        msg = f"not a string: {type(value).__name__}"
        raise TypeError(msg)
    match = _LENIENT.fullmatch(value.strip())
    if match is None:
        raise _refused(value, what="a date or date-time")
    day, clock, seconds, offset = match.groups()
    if clock is None:
        return datetime.combine(parse_date(day), datetime.min.time(), UTC)
    return parse_date_time(f"{day}T{clock}{seconds or ':00'}{offset or 'Z'}")


def instant_text(moment: datetime) -> str:
    """An aware datetime in the tap's one form: UTC, `T`, `Z` (`2024-06-01T00:00:00Z`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def canonical(value: str) -> str:
    """`value`, a date-time, in the tap's one form; `ValueError` if it is not one."""
    return instant_text(parse_date_time(value))


def sortable(text: str) -> str:
    """A text in the tap's form, padded so that text order is time order.

    `...:00Z` sorts after `...:00.500000Z` as text; `...:00.000000Z` does not.
    """
    return text if text[19:20] == "." else f"{text[:19]}.000000Z"


def written_as_is(value: str) -> bool:
    """Whether `value` is a date-time every target reads as the tap does.

    Singer SDK targets read date-times with Python's `datetime.fromisoformat`,
    which refuses a lower-case `z` and a leap second; anything else this module
    reads, it reads as the same instant.
    """
    try:
        parse_date_time(value)
    except (TypeError, ValueError):
        return False
    return not value.endswith("z") and value[17:19] != "60"


def utc_now() -> datetime:
    """The run's clock, now in UTC: what a daily snapshot is dated by.

    One function, looked up on this module at each call, so that a test can pin
    the day a run believes it is (`tests/pinned_clock.py`).
    """
    return datetime.now(UTC)
