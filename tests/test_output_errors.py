"""A stdout that cannot take the output, for every command (issue 23, item 9).

Each command of both programs meets each kind of stdout that fails: closed
(`>&-`), a full disk (`/dev/full`), a pipe whose reader is gone, and a reader
that stops after 10 bytes (`| head -c 10`; only output larger than a pipe's
buffer can notice it). Every case ends the same way: exit 2, one ERROR line
`stdout: cannot write <what> (<why>); the run stopped`, nothing else above INFO,
no traceback, no "Exception ignored", and no token.

These run `python -m` in a real process, not the suite's forkserver: the
interpreter's own last flush of stdout, which can print "Exception ignored",
happens only when a real interpreter exits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tap_metronome.airbyte import catalog
from tap_metronome.tap import TapMetronome
from tests import tap_process
from tests.conftest import REPO, clean_env
from tests.fake_metronome import FakeMetronomeApp, FakeMetronomeServer
from tests.test_airbyte import configured
from tests.test_hostile import SECRET, config_for, small_data

# 38 real interpreters (not the forkserver), each paying Python's start-up:
# `make test` runs it, `make check` does not.
pytestmark = pytest.mark.slow

#: name: (program, arguments, what the stdout line says could not be written).
COMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "sync": (tap_process.TAP, ("--config", "config.json"), "Singer messages"),
    "test": (tap_process.TAP, ("--config", "config.json", "--test"), "Singer messages"),
    "discover": (
        tap_process.TAP,
        ("--config", "config.json", "--discover"),
        "the catalog",
    ),
    "about": (tap_process.TAP, ("--about",), "the --about output"),
    "about-json": (
        tap_process.TAP,
        ("--about", "--format", "json"),
        "the --about output",
    ),
    "about-markdown": (
        tap_process.TAP,
        ("--about", "--format", "markdown"),
        "the --about output",
    ),
    "version": (tap_process.TAP, ("--version",), "the version"),
    "source-spec": (tap_process.SOURCE, ("spec",), "Airbyte messages"),
    "source-check": (
        tap_process.SOURCE,
        ("check", "--config", "config.json"),
        "Airbyte messages",
    ),
    "source-discover": (
        tap_process.SOURCE,
        ("discover", "--config", "config.json"),
        "Airbyte messages",
    ),
    "source-read": (
        tap_process.SOURCE,
        ("read", "--config", "config.json", "--catalog", "catalog.json"),
        "Airbyte messages",
    ),
}
#: Commands whose output is larger than a pipe's buffer (64 KiB), so that a
#: reader leaving after 10 bytes breaks a write; smaller output is whole in
#: the pipe by then, and exit 0 is right.
LARGE = ("sync", "test", "discover", "source-discover", "source-read")
#: sink: why the line says stdout failed.
SINKS = {
    "closed": "stdout is closed",
    "dev-full": "No space left on device",
    "no-reader": "the target stopped reading",
    "head-c-10": "the target stopped reading",
}
CASES = [
    pytest.param(command, sink, id=f"{command}-{sink}")
    for command in COMMANDS
    for sink in SINKS
    if sink != "head-c-10" or command in LARGE
]
LOG_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\| "
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A config for the fake API, and a configured catalog of every stream."""
    path = tmp_path_factory.mktemp("output-errors")
    app = FakeMetronomeApp(small_data(), token=SECRET)
    with FakeMetronomeServer(app) as server:
        config = config_for(server.url)
        (path / "config.json").write_text(json.dumps(config))
        offered = catalog.offered_streams(TapMetronome(config=config))
        (path / "catalog.json").write_text(
            json.dumps(configured({"streams": offered}), default=str)
        )
        yield path


def run_into(sink: str, command: list[str], cwd: Path, err: IO[bytes]) -> int:
    """Run `command` with its stdout in `sink`, stderr into `err`; its exit code."""
    env = clean_env({"PYTHONPATH": str(REPO)})  # this checkout's code
    run: dict[str, Any] = {"cwd": cwd, "env": env, "stderr": err, "timeout": 120}
    if sink == "closed":  # as a shell's `>&-`: the process starts without fd 1
        shell = ["/bin/sh", "-c", 'exec "$@" >&-', "sh", *command]
        return subprocess.run(shell, check=False, **run).returncode
    if sink == "dev-full":
        with open("/dev/full", "wb") as full:
            return subprocess.run(command, stdout=full, check=False, **run).returncode
    if sink == "no-reader":  # the reader exited before the first write
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            return subprocess.run(
                command, stdout=write_end, check=False, **run
            ).returncode
        finally:
            os.close(write_end)
    timeout = run.pop("timeout")
    with subprocess.Popen(command, stdout=subprocess.PIPE, **run) as process:
        assert process.stdout is not None
        process.stdout.read(10)
        process.stdout.close()
        return process.wait(timeout)


@pytest.mark.parametrize(("command", "sink"), CASES)
def test_a_stdout_that_fails_ends_every_command_in_one_line(
    workdir: Path, tmp_path: Path, command: str, sink: str
) -> None:
    program, args, what = COMMANDS[command]
    with open(tmp_path / "stderr", "w+b") as err:
        code = run_into(sink, [sys.executable, "-m", program, *args], workdir, err)
        err.seek(0)
        stderr = err.read().decode()
    assert code == 2, stderr[-3000:]
    lines = stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), stderr[-3000:]
    flagged = [line for line in lines if not re.search(r"\| (DEBUG|INFO) ", line)]
    expected = f"stdout: cannot write {what} ({SINKS[sink]}); the run stopped"
    assert len(flagged) == 1, stderr[-3000:]
    assert "| ERROR" in flagged[0], flagged[0]
    assert flagged[0].endswith(expected), flagged[0]
    assert SECRET not in stderr
    assert SECRET[3:-3] not in stderr
