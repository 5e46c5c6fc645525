"""Benchmark: a first and an incremental sync of every stream, against the pacing floor.

Starts the fake Metronome API with `--customers` customers (plus `--archived`
archived long ago), runs `tap-metronome` with every stream selected at the tap's
default `max_requests_per_second` and `max_concurrency` as a user would, then runs
it again from the first run's final state on the same day (a daily incremental
run). For each run it prints the requests per endpoint, the total, the wall time
and the floor max(requests / max_requests_per_second, requests x latency /
max_concurrency, CPU seconds of the tap) that no implementation can beat.

Run by hand (not part of the test suite), from the repository root:

    .venv/bin/python benchmarks/all_streams.py --customers 1000 --days 90
    .venv/bin/python benchmarks/all_streams.py --customers 200 --max-rps 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections import Counter
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.costs_backfill import run_process  # noqa: E402
from tap_metronome.settings import Settings  # noqa: E402
from tap_metronome.streams import STREAM_TYPES  # noqa: E402
from tests.fake_metronome import (  # noqa: E402
    TOKEN,
    FakeData,
    FakeMetronomeApp,
    FakeMetronomeServer,
)
from tests.stream_classes import template_pattern  # noqa: E402


def endpoint_names() -> list[tuple[str, object]]:
    """(streams reading an endpoint, its path pattern), most specific first."""
    by_path: dict[str, list[str]] = {}
    for stream_type in STREAM_TYPES:
        by_path.setdefault(stream_type.path, []).append(stream_type.name)  # type: ignore[arg-type]
    return [
        ("+".join(sorted(streams)), template_pattern(path))
        for path, streams in sorted(by_path.items(), key=lambda kv: -len(kv[0]))
    ]


def per_endpoint(paths: list[str]) -> Counter[str]:
    patterns = endpoint_names()
    counts: Counter[str] = Counter()
    for path in paths:
        label = next(
            (name for name, pattern in patterns if pattern.fullmatch(path)),  # type: ignore[attr-defined]
            f"other {path}",
        )
        counts[label] += 1
    return counts


def sync(
    app: FakeMetronomeApp,
    config: dict,
    tmp: Path,
    label: str,
    *,
    state: dict | None,
    max_rps: float,
    concurrency: int,
    latency: float,
) -> dict | None:
    """One run of the tap; prints its figures and returns its final state."""
    (tmp / "config.json").write_text(json.dumps(config))
    command = [
        str(Path(sys.executable).parent / "tap-metronome"),
        "--config",
        str(tmp / "config.json"),
    ]
    if state is not None:
        (tmp / "state.json").write_text(json.dumps(state))
        command += ["--state", str(tmp / "state.json")]
    app.reset_requests()
    out = tmp / f"{label}.jsonl"
    code, wall, rss, cpu = run_process(command, out)
    final_state = None
    records = 0
    with out.open("rb") as lines:
        for line in lines:
            if line.startswith(b'{"type":"RECORD"'):
                records += 1
            elif line.startswith(b'{"type":"STATE"'):
                final_state = json.loads(line)["value"]
    with app.lock:
        paths = [path for path, _ in app.requests]
    requests = len(paths)
    floor = max(requests / max_rps, requests * latency / concurrency, cpu)
    print(
        f"\n{label}: exit={code} records={records} peakRSS={rss:.0f}MB CPU={cpu:.1f}s"
    )
    for name, count in sorted(per_endpoint(paths).items(), key=lambda kv: -kv[1]):
        print(f"  {count:>7}  {name}")
    print(
        f"{label}: requests={requests} wall={wall:.1f}s floor={floor:.1f}s "
        f"wall/floor={wall / floor if floor else float('nan'):.2f}"
    )
    return final_state


def main() -> None:
    defaults = {f.name: f.default for f in fields(Settings)}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--archived", type=int, default=50)
    parser.add_argument("--plans", type=int, default=10)
    parser.add_argument("--days", type=int, default=90, help="start_date: days ago")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=defaults["max_concurrency"])
    parser.add_argument(
        "--max-rps", type=float, default=defaults["max_requests_per_second"]
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.customers} customers + {args.archived} "
        f"archived, {args.plans} plans, start_date {args.days} days ago, "
        f"max_requests_per_second={args.max_rps:g}, max_concurrency={args.concurrency}, "
        f"latency={args.latency * 1000:.0f}ms"
    )
    data = FakeData.generate(
        customers=args.customers, archived=args.archived, plans=args.plans
    )
    app = FakeMetronomeApp(data, latency=args.latency, empty_page_every=0)
    start = datetime.now(UTC).date() - timedelta(days=args.days)
    with FakeMetronomeServer(app) as server, tempfile.TemporaryDirectory() as tmp:
        config = {
            "auth_token": TOKEN,
            "api_url": server.url,
            "start_date": start.isoformat(),
            "max_concurrency": args.concurrency,
            "max_requests_per_second": args.max_rps,
        }
        common = {
            "max_rps": args.max_rps,
            "concurrency": args.concurrency,
            "latency": args.latency,
        }
        state = sync(app, config, Path(tmp), "first sync", state=None, **common)
        sync(app, config, Path(tmp), "incremental sync", state=state, **common)


if __name__ == "__main__":
    main()
