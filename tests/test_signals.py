"""SIGTERM and SIGINT: the run exits 128+N, its output is whole, and it resumes.

The tap's stdout is a pipe read slowly (a target busy writing to a warehouse),
so a signal is likely to land while a block of records is being written: the
case that used to duplicate records and write one RECORD inside another.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from datetime import date, timedelta

import pytest

from tests import tap_process
from tests.conftest import catalog_selecting, start_tap, tap_config
from tests.fake_metronome import FakeData
from tests.test_costs import costs_requests
from tests.test_hostile import singer_messages
from tests.test_reliability import assert_resumes_to_clean, config_for, data

# Each case runs the tap for seconds by design (a slowly read pipe, slow windows),
# most then rerun it to compare with a clean sync: `make test` runs it,
# `make check` does not.
pytestmark = pytest.mark.slow


def run_with_slow_reader(config, tmp_path, *, signum: int, delay: float):
    """Run the tap, read its stdout slowly, send `signum` after `delay` seconds."""
    proc = start_tap(
        config, tmp_path, stdout=tap_process.PIPE, stderr=tmp_path / "stderr.txt"
    )
    assert proc.stdout is not None
    out = bytearray()

    def read_slowly() -> None:
        with proc.stdout:
            fd = proc.stdout.fileno()
            while chunk := os.read(fd, 3000):
                out.extend(chunk)
                time.sleep(0.004)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    time.sleep(delay)
    proc.send_signal(signum)
    proc.wait(timeout=120)
    reader.join(timeout=60)
    return proc.returncode, out.decode(), (tmp_path / "stderr.txt").read_text()


@pytest.mark.parametrize("seed", range(10))
def test_a_signal_at_any_moment_leaves_whole_output_that_resumes(
    clean, fake_api, tmp_path, seed
):
    rng = random.Random(seed)
    signum = signal.SIGTERM if seed % 2 == 0 else signal.SIGINT
    server = fake_api(data(), latency=0.002)
    # The run lasts about 5 s behind the slow reader; the signal lands in its first half.
    code, stdout, stderr = run_with_slow_reader(
        config_for(server), tmp_path, signum=signum, delay=rng.uniform(0.15, 2.25)
    )
    assert code == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"Sync interrupted by {signal.Signals(signum).name}" in stderr
    assert stdout.endswith("\n") or stdout == ""
    partial = singer_messages(stdout)  # whole lines, no duplicate, all valid
    server.app.quiesce()
    assert_resumes_to_clean(partial, server, tmp_path, clean)


# -- a long history: written window by window, stopped between windows (issue 23) --

#: One customer, 2,000 days in windows of 100: 20 costs requests of 0.05 s each.
LONG_HISTORY = {"start_date": "2019-01-01", "end_date": "2024-06-23", "page_size": 100}


def start_long_costs_sync(fake_api, tmp_path, **overrides):
    """The tap on customer_costs alone over `LONG_HISTORY`; stdout a text pipe."""
    server = fake_api(FakeData.generate(customers=1, archived=0, plans=0), latency=0.05)
    config = tap_config(server, **LONG_HISTORY, **overrides)
    catalog = catalog_selecting(config, tmp_path, {"customer_costs"})
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    proc = start_tap(
        config,
        tmp_path,
        stdout=tap_process.PIPE,
        stderr=tmp_path / "stderr.txt",
        text=True,
        args=("--catalog", "catalog.json"),
    )
    return server, proc


def read_until_first_cost_row(proc) -> list[str]:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith('{"type":"RECORD","stream":"customer_costs"'):
            break
    return lines


def test_a_customers_first_window_is_written_before_its_later_windows_are_fetched(
    fake_api, tmp_path
):
    """Memory follows the window, not the history: with one worker, the rows of
    the first window are out while at most the next window is being fetched
    (the whole history used to be held first: 747 MB for 26 years)."""
    server, proc = start_long_costs_sync(fake_api, tmp_path, max_concurrency=1)
    read_until_first_cost_row(proc)
    asked = len(costs_requests(server.app))
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 0
    assert asked <= 2, f"{asked} of 20 windows fetched before the first row was out"
    assert len(costs_requests(server.app)) == 20
    assert rest.rstrip().endswith("}")


@pytest.mark.parametrize("workers", [1, 8])
def test_sigterm_stops_a_long_history_between_windows(fake_api, tmp_path, workers):
    """A stop does not wait for a customer's whole history: the run ends after
    the window being written, with a bookmark covering exactly what is out."""
    server, proc = start_long_costs_sync(fake_api, tmp_path, max_concurrency=workers)
    lines = read_until_first_cost_row(proc)
    proc.send_signal(signal.SIGTERM)
    lines += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    asked = len(costs_requests(server.app))
    assert asked < 20, "the customer's whole history was fetched after SIGTERM"
    messages = singer_messages("".join(lines))
    days = sorted(
        m["record"]["start_timestamp"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "customer_costs"
    )
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    synced = states[-1]["bookmarks"]["customer_costs"]["synced_until"]
    (until,) = synced  # one customer: one bookmark date
    assert "2019-01-01" < until < "2024-06-23"
    # Every window up to the bookmark is out; rows past it (a window cut short)
    # are read again next run.
    assert days[0] == "2019-01-01T00:00:00Z"
    assert days[-1] >= f"{date.fromisoformat(until) - timedelta(days=1)}T00:00:00Z"
