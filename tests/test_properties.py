"""Property-based tests: any input either parses to what it means or fails with
one line that names the setting (or the state), and never echoes the token."""

from __future__ import annotations

import re
import string
import tempfile
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_metronome.bookmarks import CustomerBookmarks
from tap_metronome.errors import InputError, _one_line_by_character, one_line
from tap_metronome.listings import _CHUNK, _Listing
from tap_metronome.listings import _ENCODER as _LISTING_ENCODER
from tap_metronome.logs import SafeLines
from tap_metronome.setting_table import SETTING
from tap_metronome.settings import (
    NUMBER_SETTINGS,
    SETTING_NAMES,
    parse_instant,
    parse_settings,
)

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
TOKEN = "sk-PROPERTY-TOKEN-31337"
BASE = {"auth_token": TOKEN, "start_date": "2024-01-01"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


def assert_named(errors: list[str], name: str) -> None:
    for error in errors:
        assert error.startswith(f"{name}: "), error
        assert "\n" not in error
        assert "\r" not in error
        assert TOKEN not in error


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(SETTING_NAMES)), value=json_values)
def test_any_value_of_any_setting_is_parsed_or_named(name, value):
    config = {**BASE, name: value}
    if name == "end_date" and isinstance(value, str):
        config["start_date"] = "2024-01-01"
    parsed, errors, _ = parse_settings(config, now=NOW)
    assert (parsed is None) == bool(errors)
    assert_named(errors, name)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(NUMBER_SETTINGS)),
    fraction=st.floats(min_value=0, max_value=1, allow_nan=False),
    as_text=st.booleans(),
)
def test_numbers_in_range_are_kept_exactly_whatever_their_form(name, fraction, as_text):
    integer = SETTING[name].type == "integer"
    low, high = SETTING[name].bounds
    value: float | int = low + (high - low) * fraction
    if integer:
        value = round(value)
    elif value <= low:
        return
    parsed, errors, _ = parse_settings(
        {**BASE, name: str(value) if as_text else value}, now=NOW
    )
    assert errors == []
    assert getattr(parsed, name) == value


@settings(max_examples=200, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)
    ),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_rfc3339_date_times_and_dates_mean_what_they_say(instant, offset_minutes):
    offset = timedelta(minutes=offset_minutes)
    aware = instant.replace(microsecond=0)
    sign = "+" if offset_minutes >= 0 else "-"
    minutes = abs(offset_minutes)
    text = (
        aware.strftime("%Y-%m-%dT%H:%M:%S")
        + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    )
    expected = (aware - offset).replace(tzinfo=UTC)
    assert parse_instant(text) == expected
    assert parse_instant(aware.strftime("%Y-%m-%d")) == datetime(
        aware.year, aware.month, aware.day, tzinfo=UTC
    )


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="0123456789-/:.TZ+ tz", max_size=30) | st.text(max_size=30)
)
def test_only_dates_and_rfc3339_date_times_parse(text):
    try:
        parsed = parse_instant(text)
    except ValueError:
        return
    assert parsed.tzinfo is not None
    assert "/" not in text
    assert text.strip()[4] == "-"


@settings(max_examples=200, deadline=None)
@given(raw=st.uuids(), form=st.sampled_from(["upper", "braces", "urn", "hex", "plain"]))
def test_customer_ids_are_canonical_uuids(raw, form):
    text = {
        "upper": str(raw).upper(),
        "braces": "{" + str(raw) + "}",
        "urn": f"urn:uuid:{raw}",
        "hex": raw.hex,
        "plain": str(raw),
    }[form]
    parsed, errors, _ = parse_settings(
        {**BASE, "customer_ids": [text, str(raw)]}, now=NOW
    )
    assert errors == []
    assert parsed.customer_ids == (str(uuid.UUID(str(raw))),)


@settings(max_examples=400, deadline=None)
@given(
    url=st.from_regex(
        r"(https?|ftp|HTTP)://[a-z0-9.:@\\\[\] %/?#-]{0,30}", fullmatch=True
    )
    | st.text(max_size=40)
)
def test_api_url_accepted_only_when_unambiguous(url):
    parsed, errors, _ = parse_settings({**BASE, "api_url": url}, now=NOW)
    assert_named(errors, "api_url")
    if parsed is None:
        return
    accepted = parsed.api_url
    assert not any(c in accepted for c in "@\\ \t\r\n?#")
    parts = urlsplit(accepted)
    assert not re.search(r"/v\d+$", parts.path, re.IGNORECASE)
    if parts.scheme == "http":
        assert parts.hostname in {"localhost"} or parts.hostname.startswith(
            ("127.", "::1", "0:0:0:0:0:0:0:1")
        )


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(token=json_values)
def test_no_malformed_token_is_echoed(token):
    _, errors, warnings = parse_settings({**BASE, "auth_token": token}, now=NOW)
    if isinstance(token, str) and len(token) >= 4:
        for line in errors + warnings:
            assert token not in line
    assert_named(errors, "auth_token")


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(state=json_values)
def test_any_costs_state_is_read_or_refused_naming_the_state(state):
    message = ""
    try:
        CustomerBookmarks.from_state(
            {"synced_until": state},
            latest=NOW.date() + timedelta(days=1),
            stream="customer_costs",
            key="synced_until",
        )
    except InputError as exc:
        message = str(exc)
    if message:
        assert message.startswith("state: ")
        assert "\n" not in message


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=500), limit=st.integers(min_value=1, max_value=200))
def test_one_line_is_one_printable_line(text, limit):
    line = one_line(text, limit)
    assert line.splitlines() in ([line], [])
    assert not any(unicodedata.category(c) in {"Cc", "Zl", "Zp"} for c in line)
    assert len(line) <= limit + 40


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(max_size=300)
    | st.text(alphabet=string.printable + "\u00a0\u2028\u200b\u00e9", max_size=300),
    limit=st.integers(min_value=1, max_value=300),
)
def test_one_line_escapes_and_cuts_exactly_as_character_by_character(text, limit):
    assert one_line(text, limit) == _one_line_by_character(text, limit)


@pytest.mark.parametrize(
    "bad", ["01/10/2026", "10/01/2026", "2026.01.10", "Jan 10 2026"]
)
def test_ambiguous_dates_are_refused(bad):
    with pytest.raises(ValueError, match="not a date"):
        parse_instant(bad)


@settings(max_examples=300, deadline=None)
@given(
    token=st.text(
        alphabet=string.ascii_letters + string.digits + "-_", min_size=12, max_size=48
    ),
    length=st.integers(min_value=8, max_value=12),
    noise=st.text(max_size=40),
    from_start=st.booleans(),
)
def test_an_echoed_start_or_end_of_the_token_is_redacted(
    token, length, noise, from_start
):
    lines = SafeLines()
    lines.add_secrets({token})
    fragment = token[:length] if from_start else token[-length:]
    out = lines.redact(f"{noise}{fragment.upper()}{noise}")
    assert fragment.lower() not in out.lower()


def test_words_the_token_merely_contains_stay_readable():
    lines = SafeLines()
    lines.add_secrets({"fake-metronome-token"})
    text = "Metronome API error 422 (X-Metronome-Rate-Limit-Type: client)"
    assert lines.redact(text) == text


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=40),
            st.sampled_from([_CHUNK - 20, _CHUNK - 19, _CHUNK - 18, 3 * _CHUNK]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_a_listing_reads_back_every_item_whatever_its_length(sizes):
    """Items kept on disk come back whole and in order, a line across chunk
    boundaries included (read in linear time: one join per item)."""
    items = [{"id": f"id-{n}", "name": "é" * size} for n, size in enumerate(sizes)]
    with tempfile.TemporaryFile() as file:
        for item in items:
            file.write(_LISTING_ENCODER.encode(item) + b"\n")
        file.flush()
        assert list(_Listing(file).items()) == items
