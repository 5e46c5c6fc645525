"""Digests of a sync, to prove a refactor leaves records, state and requests alone.

`golden_four_streams.json` was written by `python -m tests.golden` with the stream
layer of commit f45cac7 (before streams became declarations), and re-taken there
with this file when costs of long-archived customers stopped being re-read, and
when the fake's items came to carry every field of the spec (issue 22: only the
record digests of customers, plans and plan_charges changed; counts, costs,
state and requests did not);
`tests/test_golden.py` recomputes the digest with today's code.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

#: The streams and endpoints the tap had before the stream layer was rebuilt.
OLD_STREAMS = ("customers", "plans", "plan_charges", "customer_costs")
OLD_ENDPOINTS = ("/v1/customers", "/v1/plans", "/v1/planDetails/")
#: Per-customer endpoints of streams added later.
NEW_SUFFIXES = ("/plans", "/invoices")
GOLDEN = Path(__file__).with_name("golden_four_streams.json")
_ENCODER = msgspec.json.Encoder(decimal_format="number", order="sorted")


def _sha(values: list[Any]) -> str:
    lines = sorted(_ENCODER.encode(value) for value in values)
    return hashlib.sha256(b"\n".join(lines)).hexdigest()


def digest(
    messages: list[dict[str, Any]],
    requests: list[tuple[str, dict]],
    settled: frozenset[str] = frozenset(),
) -> dict:
    """Records per stream (count and hash), final state, and requests sent.

    Costs requests and rows of `settled` customers are left out: since issue 12 the tap
    no longer re-reads costs of customers archived before their bookmark minus
    lookback_days (the golden digest was re-taken with the old stream layer
    with the same filter).
    """
    records = {
        stream: [
            m["record"]
            for m in messages
            if m["type"] == "RECORD"
            and m["stream"] == stream
            and not (
                stream == "customer_costs" and m["record"]["customer_id"] in settled
            )
        ]
        for stream in OLD_STREAMS
    }
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    final = states[-1] if states else None
    if final is not None:  # streams added later have (empty) state of their own
        bookmarks = final.get("bookmarks", {})
        final = {
            **final,
            "bookmarks": {s: bookmarks[s] for s in OLD_STREAMS if s in bookmarks},
        }
    old = [
        (path, args)
        for path, args in requests
        if path.startswith(OLD_ENDPOINTS)
        and not (path.endswith("/costs") and path.split("/")[3] in settled)
        and not (path.startswith("/v1/customers/") and path.endswith(NEW_SUFFIXES))
    ]
    return {
        "records": {
            stream: {"count": len(rows), "sha256": _sha(rows)}
            for stream, rows in records.items()
        },
        "final_state": final,
        "requests": {
            "count": len(old),
            "sha256": _sha([[path, dict(sorted(args.items()))] for path, args in old]),
            "by_endpoint": dict(
                sorted(
                    Counter(
                        "/".join(
                            part if len(part) < 30 else "{id}"
                            for part in path.split("/")
                        )
                        for path, _ in old
                    ).items()
                )
            ),
        },
    }


def scenario() -> tuple[Any, dict[str, Any]]:
    """The fake data and config the digest is taken on (fixed dates: stable)."""
    from tests.fake_metronome import FakeData

    data = FakeData.generate(customers=57, archived=9, plans=6, unsupported_every=11)
    config = {
        "start_date": "2024-01-10",
        "end_date": "2024-06-20",
        "lookback_days": 20,
        "page_size": 37,
        "max_requests_per_second": 1000,
    }
    return data, config


def take(tmp_path: Path) -> dict:
    """Run the tap on the scenario, first sync then an incremental one."""
    from tests.conftest import run_tap
    from tests.fake_metronome import TOKEN, FakeMetronomeApp, FakeMetronomeServer

    data, config = scenario()
    with FakeMetronomeServer(FakeMetronomeApp(data)) as server:
        full = {"auth_token": TOKEN, "api_url": server.url, **config}
        (tmp_path / "first").mkdir()
        first = run_tap(full, tmp_path / "first")
        assert first.returncode == 0, first.stderr[-2000:]
        first_digest = digest(first.messages, list(server.app.requests))
        server.app.reset_requests()
        data.revise_costs(since=date(2024, 6, 1))
        (tmp_path / "second").mkdir()
        second = run_tap(full, tmp_path / "second", state=first.final_state)
        assert second.returncode == 0, second.stderr[-2000:]
        # Every archived customer of the scenario was archived in 2023: long
        # before its bookmark (2024-06-20) minus lookback_days (20).
        settled = frozenset(c["id"] for c in data.archived_customers)
        second_digest = digest(second.messages, list(server.app.requests), settled)
    return {"first": first_digest, "incremental": second_digest}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        result = take(Path(tmp))
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
