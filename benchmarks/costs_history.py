"""Benchmark: what a long costs history costs in memory, and how fast a signal stops it.

Two measurements of `customer_costs` alone against the fake API, each over a
history of N years for 20 customers whose every day has 3 credit types of 3
line items (the densest shape the costs endpoint answers):

* `--rss 1,26`: peak RSS of the tap per history length. Memory must be
  bounded by the window and the concurrency, not the history: the ratio of the
  longest to the shortest is printed (target <= 1.5). Runs at the tap's
  default `max_concurrency` and `max_requests_per_second` 10000 (with pacing
  the API, not the tap, sets the pace, and less is held; unpaced is the worst
  case for memory).
* `--stop 1.5,7`: the tap writes to a slow reader (`--reader-rate` lines per
  second); SIGTERM is sent `--signal-after` seconds in; printed is the delay
  from the signal to the tap's exit, and its exit code (target: 143 within a
  few seconds, whatever the history length).

`--code DIR` runs the tap from another checkout (e.g. `git worktree add
/tmp/before HEAD~1`), for before/after figures. Run by hand from the
repository root (not part of the test suite):

    .venv/bin/python benchmarks/costs_history.py --rss 1,26
    .venv/bin/python benchmarks/costs_history.py --stop 1.5,7
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.costs_backfill import LAUNCHER, costs_only_catalog  # noqa: E402
from tap_metronome.settings import Settings  # noqa: E402
from tests.fake_metronome import (  # noqa: E402
    CREDIT_TYPES,
    TOKEN,
    FakeData,
    FakeMetronomeApp,
    FakeMetronomeServer,
)

END = date(2026, 1, 1)
CUSTOMERS = 20
DEFAULTS = {f.name: f.default for f in fields(Settings)}


class DenseCosts(FakeData):
    """Every day of every customer: 3 credit types of 3 line items each."""

    def costs_item(self, customer_id: str, day: date) -> dict[str, Any]:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        lines = [
            {"name": f"Product {n}", "cost": Decimal(day.toordinal() % 997 + n) / 100}
            for n in range(3)
        ]
        return {
            "start_timestamp": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end_timestamp": (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "credit_types": {
                credit_type["id"]: {
                    "name": credit_type["name"],
                    "cost": sum((line["cost"] for line in lines), Decimal(0)),
                    "line_item_breakdown": lines,
                }
                for credit_type in CREDIT_TYPES[:3]
            },
        }


def tap_command(tmp: Path, url: str, years: float, code: Path) -> list[str]:
    """The tap's command line over `years` of history, customer_costs alone."""
    config = tmp / "config.json"
    config.write_text(
        json.dumps(
            {
                "auth_token": TOKEN,
                "api_url": url,
                "start_date": (END - timedelta(days=round(365.25 * years))).isoformat(),
                "end_date": END.isoformat(),
                "max_requests_per_second": 10_000,
            }
        )
    )
    # -P: the checkout on PYTHONPATH, not the current directory, is imported.
    command = [sys.executable, "-P", "-m", "tap_metronome", "--config", str(config)]
    os.environ["PYTHONPATH"] = str(code)
    catalog = costs_only_catalog(command, tmp)
    return [*command, "--catalog", str(catalog)]


def peak_rss(years: float, code: Path) -> tuple[int, float, int]:
    """Exit code, peak RSS (MB) and records of one sync of `years` of history."""
    data = DenseCosts.generate(customers=CUSTOMERS, archived=0, plans=0)
    app = FakeMetronomeApp(data, empty_page_every=0)
    with FakeMetronomeServer(app) as server, tempfile.TemporaryDirectory() as tmp:
        command = tap_command(Path(tmp), server.url, years, code)
        report = Path(tmp) / "rusage"
        out = Path(tmp) / "out.jsonl"
        with out.open("wb") as sink:
            subprocess.run(
                [sys.executable, "-c", LAUNCHER, str(report), *command],
                stdout=sink,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        exit_code, maxrss, _ = report.read_text().split()
        with out.open("rb") as lines:
            records = sum(1 for line in lines if line.startswith(b'{"type":"RECORD"'))
    return int(exit_code), int(maxrss) / 1024, records


def stop_delay(
    years: float, code: Path, *, reader_rate: float, signal_after: float
) -> tuple[int, float, int]:
    """Exit code, seconds from SIGTERM to exit, and lines read, behind a slow reader."""
    data = DenseCosts.generate(customers=CUSTOMERS, archived=0, plans=0)
    app = FakeMetronomeApp(data, empty_page_every=0)
    with FakeMetronomeServer(app) as server, tempfile.TemporaryDirectory() as tmp:
        command = tap_command(Path(tmp), server.url, years, code)
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert proc.stdout is not None
        read = 0

        def slow_reader() -> None:
            nonlocal read
            assert proc.stdout is not None
            for _ in proc.stdout:
                read += 1
                time.sleep(1 / reader_rate)

        reader = threading.Thread(target=slow_reader, daemon=True)
        reader.start()
        time.sleep(signal_after)
        signalled = time.monotonic()
        proc.terminate()
        try:
            code_ = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            code_ = proc.wait()
        delay = time.monotonic() - signalled
        reader.join(timeout=5)
    return code_, delay, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rss", help="comma-separated history lengths in years")
    parser.add_argument("--stop", help="comma-separated history lengths in years")
    parser.add_argument("--reader-rate", type=float, default=200.0)
    parser.add_argument("--signal-after", type=float, default=8.0)
    parser.add_argument("--code", type=Path, default=REPO, help="checkout to run")
    args = parser.parse_args()
    print(
        f"{CUSTOMERS} customers, 3 credit types x 3 line items a day, "
        f"max_concurrency={DEFAULTS['max_concurrency']}, code={args.code}"
    )
    if args.rss:
        results = []
        for years in map(float, args.rss.split(",")):
            exit_code, rss, records = peak_rss(years, args.code)
            results.append(rss)
            print(
                f"{years:g} years: exit={exit_code} records={records} peakRSS={rss:.1f}MB"
            )
        print(
            f"peak RSS longest/shortest: {results[-1] / results[0]:.2f} (target <= 1.5)"
        )
    if args.stop:
        for years in map(float, args.stop.split(",")):
            exit_code, delay, read = stop_delay(
                years,
                args.code,
                reader_rate=args.reader_rate,
                signal_after=args.signal_after,
            )
            print(
                f"{years:g} years, reader {args.reader_rate:g} lines/s, SIGTERM at "
                f"{args.signal_after:g}s: exit={exit_code} stopped {delay:.1f}s after "
                f"the signal, {read} lines read"
            )


if __name__ == "__main__":
    main()
