"""SIGTERM and SIGINT: the run exits 128+N, its output is whole, and it resumes.

The tap's stdout is a pipe read slowly (a target busy writing to a warehouse),
so a signal is likely to land while a block of records is being written: the
case that used to duplicate records and write one RECORD inside another.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from tests import tap_process
from tests.conftest import start_tap
from tests.test_hostile import singer_messages
from tests.test_reliability import assert_resumes_to_clean, config_for, data


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
