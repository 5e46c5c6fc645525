"""A primary key nested in the API's item is declared, not coded into post_process.

The stream below exists only here: a per-customer listing whose items carry
their id one level down (`{"alert": {"id": ...}, ...}`, as Metronome's customer
alerts do). It declares the lifted column (`added_columns`), the hook that fills
it (`record_from_item`) and its key; nothing else in the tap changes, and the
schema check and the repeat check of `post_process` apply to it as to any key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tap_metronome.errors import ResponseError
from tap_metronome.streams.base import ListStream, nested
from tap_metronome.tap import TapMetronome

ALERT_ID = {"type": "string", "description": "The alert's id (added by the tap)."}


class CustomerAlertsStream(ListStream):
    """Every customer's alerts, keyed by the alert's id inside the item."""

    name = "customer_alerts"
    path = "/v1/customer-alerts/list"
    method = "POST"
    parent = "customers"
    parent_in = "body"
    primary_keys: ClassVar[list[str]] = ["customer_id", "alert_id"]
    added_columns: ClassVar[dict[str, Any]] = {"alert_id": ALERT_ID}
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["customer_id", "alert_id"],
        "properties": {
            "customer_id": {"type": "string"},
            "alert_id": {"type": "string"},
            "alert": {"type": ["object", "null"], "properties": {}},
            "customer_status": {"type": ["string", "null"]},
            "_unexpected_values": {"type": ["object", "null"]},
        },
    }

    def record_from_item(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"alert_id": nested(item, "alert", "id"), **item}


def alert(alert_id: Any, status: Any = "ok") -> dict[str, Any]:
    return {"alert": {"id": alert_id, "name": "spend"}, "customer_status": status}


@pytest.fixture
def stream() -> CustomerAlertsStream:
    tap = TapMetronome(
        config={"auth_token": "t" * 20, "start_date": "2024-06-01"},
        validate_config=True,
    )
    return CustomerAlertsStream(tap)


def synced(
    stream: CustomerAlertsStream, monkeypatch, items: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """What a sync of `stream` writes when each customer's listing is `items[id]`."""

    def list_items(
        path: str, params: Any = None, body: Any = None, **_: Any
    ) -> Iterator[dict[str, Any]]:
        assert path == CustomerAlertsStream.path
        yield from items[body["customer_id"]]

    monkeypatch.setattr(stream, "list_items", list_items)
    monkeypatch.setattr(
        stream.services, "parent_ids", lambda parent, child, dry_run: list(items)
    )
    out = []
    for record in stream.get_records(None):
        checked = stream.post_process(record)
        if checked is not None:
            out.append(checked)
    return out


def test_the_hook_sets_the_nested_key_and_the_parent_id(stream, monkeypatch):
    rows = synced(stream, monkeypatch, {"c1": [alert("a1"), alert("a2")], "c2": []})
    assert rows == [
        {"customer_id": "c1", "alert_id": "a1", **alert("a1")},
        {"customer_id": "c1", "alert_id": "a2", **alert("a2")},
    ]


def test_a_repeated_nested_key_is_skipped(stream, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    rows = synced(stream, monkeypatch, {"c1": [alert("a1"), alert("a1", "late")]})
    assert [r["alert_id"] for r in rows] == ["a1"]
    assert stream.repeats_skipped == 1
    assert "listed twice (primary key c1, a1)" in caplog.text


def test_the_schema_check_applies_to_the_lifted_key_and_the_rest(stream, monkeypatch):
    rows = synced(stream, monkeypatch, {"c1": [alert("a1", status=7)]})
    assert rows[0]["customer_status"] is None
    assert rows[0]["_unexpected_values"] == {"/customer_status": 7}
    # A key is strict: an item without the nested id stops the run, naming it.
    with pytest.raises(ResponseError, match="alert_id"):
        synced(stream, monkeypatch, {"c1": [{"alert": None}]})
