"""Unit checks of `tap_metronome.unexpected` through a stream's `post_process`."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from tap_metronome.tap import TapMetronome
from tap_metronome.unexpected import FORMATS

ID = "7c7f2a2e-1111-4222-8333-444455556666"


def _tap() -> TapMetronome:
    return TapMetronome(
        config={"auth_token": "t" * 20, "start_date": "2024-06-01"},
        validate_config=True,
    )


def test_a_key_of_another_form_does_not_stop_a_row_with_a_value_kept():
    # A key's form is not checked (an id need not be a uuid), with or without
    # another value of the row moved to _unexpected_values.
    stream = _tap().streams["customers"]
    row = stream.post_process({"id": "legacy-7", "name": 5})
    assert row is not None
    assert row["name"] is None
    assert row["_unexpected_values"] == {"/name": 5}


def test_a_date_inside_an_invoice_line_item_is_kept_like_any_other():
    stream = _tap().streams["invoices"]
    line = {"name": "x", "total": "12", "starting_at": "garbage"}
    invoice = {
        "id": ID,
        "start_timestamp": "2024-06-01T00:00:00Z",
        "status": "DRAFT",
        "line_items": [line],
    }
    row = stream.post_process(invoice)
    assert row is not None
    assert row["_unexpected_values"] == {
        "/line_items/0/starting_at": "garbage",
        "/line_items/0/total": "12",
    }
    validator = Draft202012Validator(stream.schema, format_checker=FORMATS)
    assert not list(validator.iter_errors(row))
    assert line == {"name": "x", "total": "12", "starting_at": "garbage"}  # not shared
