"""API items turned into records, with the type checks the schema promises.

Cost rows skip the SDK's per-record conformance (it was ~40% of the tap's CPU),
so every field is checked here instead, against `schemas/customer_costs.json`.
A day or cost of the wrong type stops the run with a line naming the customer
and day (bookmarks and amounts depend on them); a credit type name or line item
value of the wrong type is nulled and kept in `_unexpected_values`
(`unexpected.py`), rather than reaching a target that would reject or mis-type
it. Fields the API may add inside a line item pass through, as the schema
admits them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tap_metronome import times
from tap_metronome.errors import ResponseError, one_line
from tap_metronome.unexpected import COLUMN, pointer
from tap_metronome.windows import day_stamps

if TYPE_CHECKING:
    from tap_metronome.windows import Window

_STRING = (str,)
_NUMBER = (int, Decimal)


def _is(value: Any, types: tuple[type, ...], *, nullable: bool) -> bool:
    if value is None:
        return nullable
    return isinstance(value, types) and not isinstance(value, bool)


def _refuse(where: str, what: str, value: Any) -> ResponseError:
    return ResponseError(f"{where} returned {what}: {one_line(value, 80)}")


#: Line item fields the schema types: (name, allowed types). Checked with
#: `type(...) in`, which also refuses bool where a number is expected.
_LINE_FIELDS = (
    ("name", (str,)),
    ("cost", (int, Decimal)),
    ("group_key", (str,)),
    ("group_value", (str,)),
)


def _checked_line_items(lines: Any, moved: dict[str, Any]) -> Any:
    """The line items, with each value of the wrong type nulled and put in `moved`.

    Line items are described, not computed with: a value that does not match is
    kept as an unexpected value (`unexpected.py`), not fatal.
    """
    if lines is None:
        return None
    if type(lines) is not list or not all(type(line) is dict for line in lines):
        moved["/line_item_breakdown"] = lines
        return None
    out = lines
    for index, line in enumerate(lines):
        for key, types in _LINE_FIELDS:
            value = line.get(key)
            if value is None or type(value) in types:
                continue
            if out is lines:
                out = list(lines)
            if out[index] is line:
                out[index] = dict(line)
            out[index][key] = None
            moved[f"/line_item_breakdown/{index}/{pointer([key])[1:]}"] = value
    return out


def _day(start: str, end: str, window: Window | None, where: str) -> tuple[str, str]:
    """The item's day in the tap's one form; it must lie in the window asked for.

    Bookmarks depend on the day, and a day is a key: two spellings of one
    instant (`...T00:00:00Z`, `...T00:00:00.000Z`, `...t01:00:00+01:00`) are
    one day, written as `windows.rfc3339` writes it. The API's own form is a
    dict lookup (the costs stream's hottest check); any other is parsed
    (`times`).
    """
    if window is not None and day_stamps(window).get(start) == end:
        return start, end
    try:
        first = times.parse_date_time(start)
        last = times.parse_date_time(end)
    except ValueError:
        raise _refuse(
            where,
            "an item whose start_timestamp or end_timestamp is not an RFC 3339 "
            "date-time",
            f"{start} .. {end}",
        ) from None
    if window is not None and (
        first.time() != datetime.min.time()
        or not window.start <= first.date() < window.end
        or not first < last <= datetime(*window.end.timetuple()[:3], tzinfo=UTC)
    ):
        raise _refuse(
            where,
            f"an item outside the requested days {window.start}..{window.end} "
            "(exclusive)",
            f"{start} .. {end}",
        )
    return times.instant_text(first), times.instant_text(last)


def cost_rows(
    customer_id: str, item: Any, *, where: str, window: Window | None = None
) -> list[dict[str, Any]]:
    """One row per credit type of a daily costs item (the API keys them by id).

    `where` names the stream and endpoint for error messages; `window` is the
    request's days, which the item must fall in. The day is written in the tap's
    one form (`2024-06-01T00:00:00Z`), whatever the API's spelling.
    """
    if not isinstance(item, dict):
        raise _refuse(where, "an item that is not an object", item)
    start = item.get("start_timestamp")
    end = item.get("end_timestamp")
    if not isinstance(start, str) or not isinstance(end, str):
        raise _refuse(
            where, "an item without start_timestamp and end_timestamp strings", item
        )
    start, end = _day(start, end, window, where)
    credit_types = item.get("credit_types")
    if not isinstance(credit_types, dict):
        raise _refuse(
            where, f"credit_types that is not an object on {start}", credit_types
        )
    rows = []
    for credit_type_id, entry in credit_types.items():
        if not isinstance(entry, dict):
            raise _refuse(
                where, f"a credit type entry that is not an object on {start}", entry
            )
        name = entry.get("name")
        cost = entry.get("cost")
        lines = entry.get("line_item_breakdown")
        if not _is(cost, _NUMBER, nullable=True):
            raise _refuse(where, f"a cost that is not a number on {start}", cost)
        moved: dict[str, Any] = {}
        if not _is(name, _STRING, nullable=True):
            moved["/credit_type_name"] = name
            name = None
        row = {
            "customer_id": customer_id,
            "start_timestamp": start,
            "end_timestamp": end,
            "credit_type_id": credit_type_id,
            "credit_type_name": name,
            "cost": cost,
            "line_item_breakdown": _checked_line_items(lines, moved),
        }
        if moved:
            row[COLUMN] = moved
        rows.append(row)
    return rows
