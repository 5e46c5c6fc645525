"""Benchmark: requests of a usage backfill and of a daily run, against the fake API.

The fake pages POST /v1/usage per (customer, billable metric) series, as the API
is reported to. Prints the requests `tap-metronome` makes for `usage`
(one query per run over every customer) for a backfill of `--days` days and for
the next day's run (bookmark minus `usage_lookback_days`), next to the
per-customer alternative: the same backfill asked one customer at a time
(`customer_ids: [id]`), each query paged to its end.

Run by hand (not part of the test suite), from the repository root:

    .venv/bin/python benchmarks/usage_requests.py --customers 1000 --metrics 5 --days 365
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_metronome import (  # noqa: E402
    TOKEN,
    FakeData,
    FakeMetronomeApp,
    FakeMetronomeServer,
)

END = date(2025, 1, 1)


def run_tap(
    server: FakeMetronomeServer, tmp: Path, config: dict, state: dict | None
) -> tuple[int, int, dict | None, float]:
    """Sync `usage` alone; return (usage requests, rows, final state, seconds)."""
    tap = str(Path(sys.executable).parent / "tap-metronome")
    (tmp / "config.json").write_text(json.dumps(config))
    found = subprocess.run(
        [tap, "--config", str(tmp / "config.json"), "--discover"],
        capture_output=True,
        check=True,
    ).stdout
    catalog = json.loads(found)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] == "usage"
    (tmp / "catalog.json").write_text(json.dumps(catalog))
    command = [tap, "--config", str(tmp / "config.json")]
    command += ["--catalog", str(tmp / "catalog.json")]
    if state is not None:
        (tmp / "state.json").write_text(json.dumps(state))
        command += ["--state", str(tmp / "state.json")]
    server.app.reset_requests()
    started = time.monotonic()
    out = subprocess.run(command, capture_output=True, check=True).stdout
    seconds = time.monotonic() - started
    rows = 0
    final = None
    for line in out.splitlines():
        if line.startswith(b'{"type":"RECORD"'):
            rows += 1
        elif line.startswith(b'{"type":"STATE"'):
            final = json.loads(line)["value"]
    return server.app.count(lambda p: p == "/v1/usage"), rows, final, seconds


def per_customer_requests(
    server: FakeMetronomeServer, data: FakeData, start: date
) -> int:
    """The alternative: list customers, then one usage query per customer, each
    paged to its end; returns every request it made."""
    server.app.reset_requests()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    customer_ids = []
    cursor = None
    while True:
        params = {"limit": 100} | ({"next_page": cursor} if cursor else {})
        page = session.get(f"{server.url}/v1/customers", params=params, timeout=60)
        customer_ids += [c["id"] for c in page.json()["data"]]
        cursor = page.json()["next_page"]
        if cursor is None:
            break
    for customer_id in customer_ids:
        body = {
            "window_size": "day",
            "starting_on": f"{start}T00:00:00Z",
            "ending_before": f"{END}T00:00:00Z",
            "customer_ids": [customer_id],
        }
        cursor = None
        while True:
            params = {"next_page": cursor} if cursor else {}
            page = session.post(
                f"{server.url}/v1/usage", json=body, params=params, timeout=60
            ).json()
            cursor = page["next_page"]
            if cursor is None:
                break
    return server.app.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=5)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    # One customer in ten has no usage at all, as trial and dormant accounts do.
    data = FakeData.generate(
        customers=args.customers,
        archived=0,
        plans=0,
        catalog=args.metrics,
        idle_every=10,
    )
    data.today = END
    series = len(data.usage_series(None, None))
    start = END - timedelta(days=args.days)
    app = FakeMetronomeApp(data, empty_page_every=0)
    with FakeMetronomeServer(app) as server, tempfile.TemporaryDirectory() as tmp:
        config = {
            "auth_token": TOKEN,
            "api_url": server.url,
            "start_date": start.isoformat(),
            "end_date": END.isoformat(),
            "max_requests_per_second": 10_000,
        }
        backfill, rows, state, seconds = run_tap(server, Path(tmp), config, None)
        print(
            f"{args.customers} customers, {args.metrics} billable metrics, {series} "
            f"(customer, metric) series with usage, {args.days} days"
        )
        print(
            f"tap backfill: {backfill} requests, {rows} rows, {seconds:.1f} s "
            f"({backfill / series:.2f} requests per series)"
        )
        daily_config = config | {"end_date": (END + timedelta(days=1)).isoformat()}
        daily, daily_rows, _, seconds = run_tap(server, Path(tmp), daily_config, state)
        print(
            f"tap daily run (next day, 35-day lookback): {daily} requests, "
            f"{daily_rows} rows, {seconds:.1f} s"
        )
        alternative = per_customer_requests(server, data, start)
        print(
            f"per-customer alternative backfill (customer listing included): "
            f"{alternative} requests "
            f"({alternative / backfill:.2f}x the tap's)"
        )


if __name__ == "__main__":
    main()
