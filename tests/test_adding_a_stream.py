"""Adding a stream touches one place: a declaration, synced with no other file changed.

The streams here are declared in this module only (as a contributor's first
draft would be, before its schema is generated and it joins `STREAM_TYPES`):
an account-wide list and a per-customer list, each a few class attributes, run
by a tap that offers them beside its own. They sync like the tap's streams:
every item of the fake API, the parent's id added, the skip rule of the parent,
and a state the next run accepts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from tests.conftest import REPO, clean_env, tap_config
from tests.fake_metronome import FakeData

DECLARATIONS = '''
from typing import Any, ClassVar

from tap_metronome.streams import STREAM_TYPES
from tap_metronome.streams.base import ListStream
from tap_metronome.tap import TapMetronome

ITEM = {"type": "object", "properties": {"id": {"type": "string"}}}


class CreditTypesAgain(ListStream):
    """An account-wide list (the credit types endpoint under a new name)."""

    name = "credit_types_again"
    path = "/v1/credit-types/list"
    primary_keys: ClassVar[list[str]] = ["id"]
    schema: ClassVar[dict[str, Any]] = ITEM


class CustomerPlansAgain(ListStream):
    """A per-customer list: the parent's id is added, 400 and 404 skip one customer."""

    name = "customer_plans_again"
    path = "/v1/customers/{customer_id}/plans"
    parent = "customers"
    primary_keys: ClassVar[list[str]] = ["customer_id", "id"]
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"customer_id": {"type": "string"}, "id": {"type": "string"}},
    }


class TapWithDrafts(TapMetronome):
    stream_types = (*STREAM_TYPES, CreditTypesAgain, CustomerPlansAgain)


TapWithDrafts.cli()
'''


def run_script(script: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), "--config", "config.json", *args],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": str(REPO)}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_streams_declared_in_one_place_sync_with_no_other_file_changed(
    fake_api, tmp_path
):
    data = FakeData.generate(customers=6, archived=1, plans=3, unsupported_every=4)
    server = fake_api(data)
    script = tmp_path / "tap_with_drafts.py"
    script.write_text(textwrap.dedent(DECLARATIONS))
    (tmp_path / "config.json").write_text(json.dumps(tap_config(server)))
    first = run_script(script, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    messages = [json.loads(line) for line in first.stdout.splitlines()]
    records = [m for m in messages if m["type"] == "RECORD"]
    # The draft schemas declare the keys only: the SDK writes what they declare.
    again = [m["record"] for m in records if m["stream"] == "credit_types_again"]
    assert again == [
        {"id": m["record"]["id"]} for m in records if m["stream"] == "credit_types"
    ]
    assert again  # the fake lists credit types
    plans_again = Counter(
        m["record"]["customer_id"]
        for m in records
        if m["stream"] == "customer_plans_again"
    )
    plans = Counter(
        m["record"]["customer_id"] for m in records if m["stream"] == "customer_plans"
    )
    assert plans_again == plans
    # Every customer was asked, through the run's one customers listing.
    asked = Counter(
        path.split("/")[3]
        for path, _ in server.app.requests
        if path.startswith("/v1/customers/") and path.endswith("/plans")
    )
    customers = {c["id"] for c in data.customers + data.archived_customers}
    assert set(asked) == customers
    assert set(asked.values()) == {2}  # once for each of the two streams
    assert first.stderr.count("customer_plans_again: ") == 1  # its summary line
    # The next run accepts the state this one wrote.
    state = next(m["value"] for m in reversed(messages) if m["type"] == "STATE")
    (tmp_path / "state.json").write_text(json.dumps(state))
    second = run_script(script, tmp_path, "--state", "state.json")
    assert second.returncode == 0, second.stderr[-3000:]
