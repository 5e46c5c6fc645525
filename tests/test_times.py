"""The one reading of times (`tap_metronome/times.py`) and the places that use it."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_metronome import times
from tap_metronome.errors import InputError, ResponseError
from tap_metronome.records import cost_rows
from tap_metronome.state import read_state
from tap_metronome.streams import STREAM_TYPES
from tap_metronome.unexpected import FORMATS, UnexpectedValues
from tap_metronome.windows import Window

MIDNIGHT = datetime(2024, 6, 1, tzinfo=UTC)
LEAP = datetime(2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2024-06-01T00:00:00Z",
        "2024-06-01t00:00:00z",
        "2024-06-01T00:00:00z",
        "2024-06-01 00:00:00Z",
        "2024-06-01T00:00:00.000Z",
        "2024-06-01T00:00:00.000000000000Z",
        "2024-06-01T00:00:00+00:00",
        "2024-06-01T00:00:00-00:00",
        "2024-06-01T01:00:00+01:00",
        "2024-05-31T19:00:00-05:00",
        "2024-06-01T05:30:00+05:30",
    ],
)
def test_spellings_of_one_instant_are_one_instant(text):
    assert times.parse_date_time(text) == MIDNIGHT
    assert times.canonical(text) == "2024-06-01T00:00:00Z"


@pytest.mark.parametrize(
    ("fraction", "microsecond"),
    [("1", 100_000), ("123", 123_000), ("123456", 123_456), ("1234569999", 123_456)],
)
def test_a_fraction_of_any_length_is_cut_to_microseconds(fraction, microsecond):
    moment = times.parse_date_time(f"2024-06-01T23:59:59.{fraction}Z")
    assert moment == datetime(2024, 6, 1, 23, 59, 59, microsecond, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2016-12-31T23:59:60Z",
        "2016-12-31t23:59:60.5z",
        "2017-01-01T00:59:60+01:00",  # 23:59:60 UTC
        "2016-12-31T18:59:60-05:00",
    ],
)
def test_a_leap_second_is_the_last_microsecond_of_its_minute(text):
    moment = times.parse_date_time(text)
    assert moment == LEAP
    assert moment.date() == date(2016, 12, 31)  # never the next day's midnight
    assert times.canonical(text) == "2016-12-31T23:59:59.999999Z"


@pytest.mark.parametrize(
    "text",
    [
        "not-a-date",
        "",
        " 2024-06-01T00:00:00Z",
        "2024-06-01T00:00:00",  # no offset
        "2024-06-01T00:00Z",  # no seconds
        "2024-06-01",
        "20240601T000000Z",
        "2024-02-30T00:00:00Z",
        "2024-06-01T24:00:00Z",
        "2024-06-01T00:60:00Z",
        "2024-06-01T00:00:61Z",
        "2016-12-31T23:58:60Z",  # a leap second only at 23:59 UTC
        "2016-12-31T23:59:60+01:00",  # 22:59:60 UTC
        "2024-06-01T00:00:00+24:00",
        "2024-06-01T00:00:00+01:60",
        "2024-06-01T00:00:00+0100",
        "2024-06-01T00:00:00.Z",
        "2024-06-01T00:00:00,5Z",
        "9999-12-31T23:30:00-01:00",  # year 10000 in UTC
        "0001-01-01T00:30:00+01:00",  # year 0 in UTC
        "0000-01-01T00:00:00Z",
        "２０２４-06-01T00:00:00Z",  # other digits  # noqa: RUF001
    ],
)
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError, match="not"):
        times.parse_date_time(text)
    assert not times.written_as_is(text)


@pytest.mark.parametrize("value", [None, 20240601, b"2024-06-01T00:00:00Z"])
def test_a_value_not_a_string_is_a_type_error(value):
    with pytest.raises(TypeError):
        times.parse_date_time(value)
    with pytest.raises(TypeError):
        times.parse_date(value)


def test_dates_are_rfc_3339_full_dates_only():
    assert times.parse_date("2024-02-29") == date(2024, 2, 29)
    for text in ["20240229", "2024-W09-4", "2024-2-29", "2023-02-29", "2024-02-29Z"]:
        with pytest.raises(ValueError, match="not a date"):
            times.parse_date(text)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2024-06-01", MIDNIGHT),
        (" 2024-06-01\n", MIDNIGHT),
        ("2024-06-01T00:00", MIDNIGHT),
        ("2024-06-01t02:00+02:00", MIDNIGHT),
        ("2024-06-01 00:00:00", MIDNIGHT),
        ("2016-12-31T23:59:60Z", LEAP),
    ],
)
def test_settings_and_edited_states_take_what_a_person_types(typed, expected):
    assert times.parse_instant(typed) == expected


@pytest.mark.parametrize("typed", ["01/10/2026", "2026.01.10", "Jan 10 2026", "now"])
def test_ambiguous_typed_dates_are_refused(typed):
    with pytest.raises(ValueError, match="not a date"):
        times.parse_instant(typed)


def test_the_tap_form_sorts_in_time_order():
    texts = [
        "2024-06-01T00:00:00Z",
        "2024-06-01T00:00:00.500000Z",
        "2024-06-01T00:00:01Z",
        "2016-12-31T23:59:59.999999Z",
    ]
    assert sorted(texts, key=times.sortable) == sorted(texts, key=times.parse_date_time)


_RFC3339 = st.builds(
    lambda moment, t, fraction, zone: (
        moment.isoformat(sep=t, timespec="seconds") + fraction + zone
    ),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["", ".0", ".123", ".999999", ".1234567"]),
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:00", "-23:59", "+05:30"]),
)


@settings(max_examples=300, deadline=None)
@given(text=_RFC3339)
def test_written_as_is_means_targets_read_the_same_instant(text):
    """Python's `fromisoformat` (what SDK targets use) reads what `written_as_is`
    passes as the same instant; what it refuses, `written_as_is` refuses."""
    moment = times.parse_date_time(text)
    try:
        theirs = datetime.fromisoformat(text)
    except ValueError:
        assert not times.written_as_is(text)
        return
    assert times.written_as_is(text)
    assert theirs == moment
    assert times.parse_date_time(times.canonical(text)) == moment


# -- the places that read times -----------------------------------------------------------


def _item(start: str, end: str) -> dict:
    return {"start_timestamp": start, "end_timestamp": end, "credit_types": {"ct": {}}}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z"),
        ("2024-06-01t00:00:00z", "2024-06-02t00:00:00z"),
        ("2024-06-01T00:00:00.000Z", "2024-06-02T00:00:00.000Z"),
        ("2024-06-01T01:00:00+01:00", "2024-06-01T19:00:00-05:00"),
    ],
)
def test_a_cost_day_is_written_in_one_form(start, end):
    window = Window(date(2024, 6, 1), date(2024, 6, 8))
    (row,) = cost_rows("c", _item(start, end), where="test", window=window)
    assert row["start_timestamp"] == "2024-06-01T00:00:00Z"
    assert row["end_timestamp"] == "2024-06-02T00:00:00Z"


def test_a_cost_day_that_is_not_a_date_time_is_named_so():
    window = Window(date(2024, 6, 1), date(2024, 6, 8))
    with pytest.raises(ResponseError, match="not an RFC 3339 date-time"):
        cost_rows(
            "c", _item("not-a-date", "2024-06-02T00:00:00Z"), where="t", window=window
        )
    with pytest.raises(ResponseError, match="outside the requested days"):
        cost_rows(
            "c",
            _item("2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z"),
            where="t",
            window=window,
        )


def _state(key: str, value: str) -> dict:
    stream = "audit_logs" if key == "replication_key_value" else "usage"
    return {"bookmarks": {stream: {key: value}}}


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),
        ("2024-06-01t01:00:00.000+01:00", "2024-06-01T00:00:00Z"),
    ],
)
def test_the_state_check_reads_every_bookmark_the_tap_can_write(value, kept):
    state = read_state(
        _state("replication_key_value", value), logging.getLogger(), STREAM_TYPES
    )
    assert state is not None
    assert state["bookmarks"]["audit_logs"]["replication_key_value"] == kept


@pytest.mark.parametrize("value", ["20240601", "2024-W22-6", "2024-06-01T00:00:00Z"])
def test_a_date_bookmark_is_a_full_date(value):
    with pytest.raises(InputError, match="synced_until must be a date"):
        read_state(_state("synced_until", value), logging.getLogger(), STREAM_TYPES)


def _checker(strict: set[str]) -> UnexpectedValues:
    schema = {
        "type": "object",
        "properties": {
            "timestamp": {"type": ["string", "null"], "format": "date-time"},
            "created_at": {"type": ["string", "null"], "format": "date-time"},
            "_unexpected_values": {"type": ["object", "null"]},
        },
    }
    return UnexpectedValues(
        schema,
        stream="s",
        where="GET /x",
        strict=strict,
        policy="fail",
        logger=logging.getLogger(),
    )


@pytest.mark.parametrize(
    ("sent", "written"),
    [
        ("2024-06-01T00:00:00z", "2024-06-01T00:00:00Z"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),
    ],
)
def test_a_time_the_tap_computes_with_is_written_in_a_form_targets_read(sent, written):
    row = {"timestamp": sent}
    assert _checker({"timestamp"}).check(row) == {"timestamp": written}
    assert row == {"timestamp": sent}  # the API's item is not changed
    assert FORMATS.conforms(written, "date-time")
    assert not FORMATS.conforms(sent, "date-time")


def test_elsewhere_such_a_time_is_an_unexpected_value():
    with pytest.raises(ResponseError, match="created_at"):
        _checker({"timestamp"}).check({"created_at": "2016-12-31T23:59:60Z"})


def test_a_year_10000_instant_stops_as_a_strict_mismatch():
    with pytest.raises(ResponseError, match="timestamp"):
        _checker({"timestamp"}).check({"timestamp": "9999-12-31T23:30:00-01:00"})
