"""Benchmark: a customer_costs backfill against the fake API, with a floor to beat.

Starts the fake Metronome API with a chosen per-request latency and server-side
rate limit (429 with Retry-After beyond it), runs `tap-metronome` as a user
would, and prints: requests, wall time, the floor
max(requests / max_requests_per_second, requests / server rate limit,
requests x latency / concurrency, CPU seconds of the tap), wall / floor, peak
RSS of the tap process, cost records per CPU-second of the tap process, and
STATE bytes. Concurrency and `max_requests_per_second` default to the tap's own
defaults: what users run, where pacing and not concurrency sets the pace. `--bare` runs the same pages through `bare_loop.py` (requests +
msgspec, no SDK) as the reference for tap-side overhead, both reading
customer_costs alone, with the CPU of start-up (a run over no customers) taken
off both.

Run by hand (not part of the test suite), from the repository root:

    .venv/bin/python benchmarks/costs_backfill.py --customers 200 --days 365 \\
        --latency 0.1
    .venv/bin/python benchmarks/costs_backfill.py --customers 1000 --days 365 \\
        --latency 0.1 --max-rps 10000 --compare-sequential
    .venv/bin/python benchmarks/costs_backfill.py --customers 1000 --days 365 \\
        --rate-limit 10 --max-rps 10
    .venv/bin/python benchmarks/costs_backfill.py --customers 1000 --days 365 --bare \\
        --max-rps 10000 --repeat 5
    .venv/bin/python benchmarks/costs_backfill.py --rss 200,10000 --days 30 --max-rps 10000 \\
        --exclude usage,audit_logs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tap_metronome.settings import Settings  # noqa: E402
from tests.fake_metronome import (  # noqa: E402
    TOKEN,
    FakeData,
    FakeMetronomeApp,
    FakeMetronomeServer,
)

END = date(2025, 1, 1)


@dataclass
class Result:
    label: str
    requests: int
    rate_limited: int
    wall: float
    floor: float
    peak_rss_mb: float
    cpu: float
    records: int
    state_bytes: int
    exit_code: int
    final_state_bytes: int = 0

    def line(self) -> str:
        return (
            f"{self.label:<34} exit={self.exit_code} requests={self.requests:>6} "
            f"429s={self.rate_limited:>4} ({100 * self.rate_limited / max(self.requests, 1):.2f}%) "
            f"wall={self.wall:7.1f}s floor={self.floor:7.1f}s wall/floor={self.wall / self.floor if self.floor else float('nan'):5.2f} "
            f"req/s={self.requests / self.wall:6.1f} peakRSS={self.peak_rss_mb:6.1f}MB "
            f"records={self.records:>8} rec/CPU-s={self.records / self.cpu if self.cpu else 0:8.0f} "
            f"STATE={self.state_bytes:>9}B finalSTATE={self.final_state_bytes:>8}B"
        )


#: Starts the measured command from a small process and reports its rusage. Linux
#: carries a process's peak RSS across exec, and a child forked straight from this
#: benchmark (which holds the fake account's data) would report this process's
#: RSS as its own.
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss} "
                 f"{usage.ru_utime + usage.ru_stime}")
"""


def run_process(command: list[str], out_path: Path) -> tuple[int, float, float, float]:
    """Run a command with stdout to a file; return exit, wall, peak RSS MB, CPU s."""
    report = out_path.with_suffix(".rusage")
    started = time.monotonic()
    with out_path.open("wb") as out:
        subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(report), *command],
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    wall = time.monotonic() - started
    code, maxrss, cpu = report.read_text().split()
    return int(code), wall, int(maxrss) / 1024, float(cpu)


def costs_only_catalog(
    command: list[str], tmp: Path, *, exclude: frozenset[str] | None = None
) -> Path:
    """A catalog selecting customer_costs alone (the work the bare loop does), or,
    with `exclude`, every stream but those."""
    found = subprocess.run(
        [*command, "--discover"], capture_output=True, check=True
    ).stdout
    catalog = json.loads(found)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = (
                    entry["tap_stream_id"] not in exclude
                    if exclude is not None
                    else entry["tap_stream_id"] == "customer_costs"
                )
    path = tmp / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def bench(
    *,
    customers: int,
    days: int,
    latency: float,
    rate_limit: float | None,
    concurrency: int,
    max_rps: float,
    bare: bool = False,
    costs_only: bool = False,
    exclude: frozenset[str] | None = None,
) -> Result:
    data = FakeData.generate(customers=customers, archived=0, plans=0)
    for customer_id in data.all_customer_ids():  # drawn now, not while serving
        data.invoices(customer_id)
        data.balances(customer_id)
    app = FakeMetronomeApp(
        data, latency=latency, rate_limit=rate_limit, empty_page_every=0
    )
    start = END - timedelta(days=days)
    with FakeMetronomeServer(app) as server, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        if bare:
            command = [
                sys.executable,
                str(REPO / "benchmarks" / "bare_loop.py"),
                "--api-url", server.url, "--token", TOKEN,
                "--start", start.isoformat(), "--end", END.isoformat(),
                "--concurrency", str(concurrency), "--rate", str(max_rps if rate_limit else 0),
            ]  # fmt: skip
        else:
            config = Path(tmp) / "config.json"
            config.write_text(
                json.dumps(
                    {
                        "auth_token": TOKEN,
                        "api_url": server.url,
                        "start_date": start.isoformat(),
                        "end_date": END.isoformat(),
                        "max_concurrency": concurrency,
                        "max_requests_per_second": max_rps,
                    }
                )
            )
            tap = Path(sys.executable).parent / "tap-metronome"
            command = [str(tap), "--config", str(config)]
            if costs_only or exclude:
                catalog = costs_only_catalog(command, Path(tmp), exclude=exclude)
                command += ["--catalog", str(catalog)]
        code, wall, rss, cpu = run_process(command, out)
        records = state_bytes = final_state_bytes = 0
        with out.open("rb") as lines:
            for line in lines:
                if bare or line.startswith(
                    b'{"type":"RECORD","stream":"customer_costs"'
                ):
                    records += 1
                elif line.startswith(b'{"type":"STATE"'):
                    state_bytes += len(line)
                    final_state_bytes = len(line)
        requests = app.count()
    floor = max(
        requests / max_rps,
        requests / rate_limit if rate_limit else 0.0,
        requests * latency / concurrency,
        cpu,  # one interpreter: the GIL runs one thread at a time
    )
    label = (
        f"{'bare loop' if bare else 'tap'} c={concurrency} n={customers} d={days}"
        f"{f' lat={latency * 1000:.0f}ms' if latency else ''}"
        f"{f' limit={rate_limit:g}/s' if rate_limit else ''} max_rps={max_rps:g}"
    )
    return Result(
        label,
        requests,
        app.rate_limited,
        wall,
        floor,
        rss,
        cpu,
        records,
        state_bytes,
        code,
        final_state_bytes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None)
    defaults = {f.name: f.default for f in fields(Settings)}
    parser.add_argument("--concurrency", type=int, default=defaults["max_concurrency"])
    parser.add_argument(
        "--max-rps", type=float, default=defaults["max_requests_per_second"]
    )
    parser.add_argument("--compare-sequential", action="store_true")
    parser.add_argument("--bare", action="store_true", help="also run the bare loop")
    parser.add_argument(
        "--repeat",
        type=lambda text: max(1, int(text)),
        default=1,
        help="with --bare: tap/bare pairs to run (at least 1)",
    )
    parser.add_argument("--rss", help="comma-separated customer counts for RSS growth")
    parser.add_argument(
        "--exclude",
        default="",
        help="comma-separated streams to leave out (default: every stream is synced)",
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )

    if args.rss:
        counts = [int(n) for n in args.rss.split(",")]
        results = [
            bench(customers=n, days=args.days, latency=0.0, rate_limit=None,
                  concurrency=args.concurrency, max_rps=args.max_rps,
                  exclude=frozenset(filter(None, args.exclude.split(","))) or None)
            for n in counts
        ]  # fmt: skip
        for result in results:
            print(result.line())
        growth = results[-1].peak_rss_mb / results[0].peak_rss_mb - 1
        print(
            f"peak RSS growth {counts[0]} -> {counts[-1]} customers: {100 * growth:.1f}% (target < 25%)"
        )
        return

    common = {
        "customers": args.customers,
        "days": args.days,
        "latency": args.latency,
        "rate_limit": args.rate_limit,
        "max_rps": args.max_rps,
    }
    if args.bare:
        compare_with_bare_loop(args, common)
        return
    excluded = frozenset(filter(None, args.exclude.split(","))) or None
    main_run = bench(concurrency=args.concurrency, exclude=excluded, **common)
    print(main_run.line())
    if args.rate_limit:
        sustained = main_run.requests / main_run.wall
        print(
            f"sustained {sustained:.2f} req/s against a {args.rate_limit:g}/s limit "
            f"(target >= {0.9 * args.rate_limit:g}); 429s "
            f"{100 * main_run.rate_limited / main_run.requests:.2f}% (target < 1%)"
        )
    else:
        print(f"wall/floor = {main_run.wall / main_run.floor:.2f} (target <= 1.3)")
    if args.compare_sequential:
        sequential = bench(concurrency=1, **common)
        print(sequential.line())
        print(
            f"speed-up c={args.concurrency} vs c=1: "
            f"{sequential.wall / main_run.wall:.1f}x (target >= 5x)"
        )


def compare_with_bare_loop(args: argparse.Namespace, common: dict) -> None:
    """Like for like: customer_costs alone (what the bare loop does), and the
    CPU of start-up (a run over no customers) taken off both.

    On a 2-core machine shared with the fake API, one run's CPU figure moves by
    about 10% either way; `--repeat N` alternates the two N times and reports
    the median of the N ratios.
    """
    idle = {}
    for bare in (False, True):
        run = bench(
            concurrency=args.concurrency, bare=bare, costs_only=True,
            **{**common, "customers": 0},
        )  # fmt: skip
        print(f"start-up: {run.line()}")
        idle[bare] = run.cpu
    ratios = []
    for _ in range(args.repeat):
        rate = {}
        for bare in (False, True):
            work = bench(
                concurrency=args.concurrency, bare=bare, costs_only=True, **common
            )
            print(work.line())
            rate[bare] = work.records / (work.cpu - idle[bare])
        ratios.append(rate[False] / rate[True])
        print(
            f"cost records per CPU-second, start-up excluded: tap {rate[False]:.0f}, "
            f"bare loop {rate[True]:.0f}, ratio {ratios[-1]:.2f}"
        )
    print(
        f"ratio over {len(ratios)} pair(s): median {statistics.median(ratios):.2f}, "
        f"range {min(ratios):.2f}..{max(ratios):.2f} (target >= 0.5)"
    )


if __name__ == "__main__":
    main()
