"""Concurrency changes speed, never output: same records, same state, one writer."""

from __future__ import annotations

import threading
import time

import pytest

from tap_metronome.streams.partitions import fan_out
from tests.conftest import run_tap, tap_config
from tests.fake_metronome import FakeData, FakeMetronomeApp, FakeMetronomeServer
from tests.test_reliability import records_by_key


def test_fan_out_bounds_in_flight_work_and_returns_everything():
    lock = threading.Lock()
    running = peak = 0

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002)
        with lock:
            running -= 1
        return n * n

    results = dict(fan_out(range(200), work, max_workers=4))
    assert results == {n: n * n for n in range(200)}
    assert 1 < peak <= 4


def test_fan_out_stops_and_aborts_on_error():
    aborted = threading.Event()
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 5:
            raise ValueError("boom")
        time.sleep(0.01)
        return n

    with pytest.raises(ValueError, match="boom"):
        list(fan_out(range(10_000), work, max_workers=4, on_abort=aborted.set))
    assert aborted.is_set()
    assert len(started) < 100, "queued work was cancelled"


def test_ordered_fan_out_yields_in_order_and_holds_a_bounded_number_of_results():
    """Later items finishing first wait for the earlier ones, within 2 x workers."""
    lock = threading.Lock()
    started = 0
    yielded = 0
    ahead = 0

    def work(n: int) -> int:
        nonlocal started, ahead
        with lock:
            started += 1
            ahead = max(ahead, started - yielded)
        time.sleep(0.02 if n % 4 == 0 else 0.001)  # every 4th is slow
        return n

    order = []
    for n, result in fan_out(range(100), work, max_workers=4, ordered=True):
        assert result == n
        order.append(n)
        yielded += 1
    assert order == list(range(100))
    # In flight plus finished-but-waiting never exceeds 2 x workers (+1 refilled
    # before the consumer takes its result).
    assert ahead <= 2 * 4 + 1


def test_fan_out_sequential_runs_inline_in_order():
    threads = set()

    def work(n: int) -> int:
        threads.add(threading.current_thread().name)
        return n

    assert [n for n, _ in fan_out(range(5), work, max_workers=1)] == [0, 1, 2, 3, 4]
    assert threads == {threading.current_thread().name}


def concurrency_data() -> FakeData:
    data = FakeData.generate(
        customers=60, archived=6, plans=9, unsupported_every=13, idle_every=7
    )
    data.deleted.add(data.customers[5]["id"])
    return data


def concurrency_config(server, workers: int) -> dict:
    return tap_config(
        server,
        start_date="2024-01-01",
        end_date="2024-04-20",
        page_size=30,
        max_concurrency=workers,
    )


def run_checked(server, run_dir, workers: int):
    """A run with `workers` threads; no request is repeated within it."""
    server.app.reset_requests()
    run = run_tap(concurrency_config(server, workers), run_dir)
    assert run.returncode == 0, run.stderr
    requests = [
        (path, tuple(sorted(args.items()))) for path, args in server.app.requests
    ]
    assert len(requests) == len(set(requests)), "no request repeated within a run"
    return run


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The one-worker run both concurrencies are compared with (it is the same
    run for both: same data, same settings, one thread), taken once."""
    app = FakeMetronomeApp(concurrency_data(), latency=0.002)
    with FakeMetronomeServer(app) as server:
        return run_checked(server, tmp_path_factory.mktemp("sequential"), 1)


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [4, 16])
def test_concurrent_sync_equals_sequential(sequential, fake_api, tmp_path, concurrency):
    server = fake_api(concurrency_data(), latency=0.002)
    runs = {1: sequential, concurrency: run_checked(server, tmp_path, concurrency)}
    sequential, concurrent = runs[1], runs[concurrency]
    assert records_by_key(concurrent.messages) == records_by_key(sequential.messages)
    assert len(concurrent.records("customer_costs")) == len(
        sequential.records("customer_costs")
    )
    assert concurrent.final_state == sequential.final_state
    # SCHEMA before any RECORD of its stream, and STATE never ahead of records:
    # every customer a STATE names has all its rows already written.
    schemas: set[str] = set()
    written: dict[str, int] = {}
    total = {}
    for row in sequential.records("customer_costs"):
        total[row["customer_id"]] = total.get(row["customer_id"], 0) + 1
    for message in concurrent.messages:
        if message["type"] == "SCHEMA":
            schemas.add(message["stream"])
        elif message["type"] == "RECORD":
            assert message["stream"] in schemas
            if message["stream"] == "customer_costs":
                cid = message["record"]["customer_id"]
                written[cid] = written.get(cid, 0) + 1
        elif message["type"] == "STATE":
            synced = message["value"]["bookmarks"].get("customer_costs", {})
            for ids in synced.get("synced_until", {}).values():
                for cid in ids:
                    assert written.get(cid, 0) == total.get(cid, 0)
