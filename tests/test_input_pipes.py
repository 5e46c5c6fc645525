"""`--config`, `--state` and `--catalog` may be pipes, which can be read only once.

`tap-metronome --config /dev/stdin` and `--config <(cat config.json)`, in both
commands. Each input below comes through a real pipe: `/dev/stdin` with stdin a
pipe (`cat config.json | ...`) or the file (`< config.json`), or a named pipe
(what `<(...)` gives) that a thread writes once. A second read of such a pipe
finds it empty (stdin) or waits for a writer that never comes (a FIFO).

Every run reads usage alone, for the whole fake account: the records show the
catalog was read, the requests reaching the fake API show the config was, and
the first usage day asked for (the state's bookmark minus the lookback) shows
the state was.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests import tap_process
from tests.conftest import catalog_selecting, clean_env, tap_config
from tests.fake_metronome import TOKEN, FakeData, FakeMetronomeApp, FakeMetronomeServer
from tests.test_airbyte import (
    ALL_STREAMS,
    SourceRun,
    configured,
    protocol_lines,
    run_source,
    write,
)

TODAY = datetime.now(UTC).date()
#: The usage bookmark of every state below, and the first day a run reads from it
#: (usage_lookback_days is 1); without the state it would be start_date.
BOOKMARK = TODAY - timedelta(days=3)
FIRST_DAY = f"{BOOKMARK - timedelta(days=1)}T00:00:00Z"
#: Stands for the piped input's path in a command line.
PIPED = "<piped>"
#: `/dev/stdin` fed by a pipe, or a FIFO.
KINDS = ("stdin", "fifo")
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
BASH = shutil.which("bash")


@dataclass
class Account:
    """A fake account and the inputs of a run that reads its usage."""

    server: FakeMetronomeServer
    config: dict[str, Any]
    singer_catalog: dict[str, Any]
    airbyte_catalog: dict[str, Any]

    def singer_inputs(self) -> dict[str, Any]:
        state = {"bookmarks": {"usage": {"synced_until": BOOKMARK.isoformat()}}}
        return {
            "--config": self.config,
            "--catalog": self.singer_catalog,
            "--state": state,
        }

    def airbyte_inputs(self) -> dict[str, Any]:
        state = [
            {
                "type": "STREAM",
                "stream": {
                    "stream_descriptor": {"name": "usage"},
                    "stream_state": {"synced_until": BOOKMARK.isoformat()},
                },
            }
        ]
        return {
            "--config": self.config,
            "--catalog": self.airbyte_catalog,
            "--state": state,
        }

    def usage_starts(self) -> set[str]:
        """The first day of each usage query the run sent."""
        return {
            fields["starting_on"]
            for path, fields in self.server.app.requests
            if path == "/v1/usage" and "starting_on" in fields
        }


@pytest.fixture(scope="module")
def account(tmp_path_factory) -> Iterator[Account]:
    data = FakeData.generate(customers=3, archived=0, plans=1)
    run_dir = tmp_path_factory.mktemp("discover")
    with FakeMetronomeServer(FakeMetronomeApp(data)) as server:
        config = tap_config(
            server,
            start_date=(TODAY - timedelta(days=20)).isoformat(),
            end_date=None,
            usage_lookback_days=1,
        )
        singer_catalog = catalog_selecting(config, run_dir, {"usage"})
        discovered = run_source(
            run_dir, "discover", "--config", write(run_dir, "config.json", config)
        )
        (message,) = discovered.messages
        airbyte_catalog = configured(message["catalog"], {"usage"})
        yield Account(server, config, singer_catalog, airbyte_catalog)


@contextlib.contextmanager
def fifo(path: Path, text: str) -> Iterator[str]:
    """A named pipe that a thread writes `text` into once, as `<(cat file)` does."""
    os.mkfifo(path)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), path.open("w") as pipe:
            pipe.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        yield str(path)
    finally:
        if writer.is_alive():  # never opened, or not read to its end
            reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            writer.join(0.5)
            os.close(reader)
            writer.join(5)


def run_piped(
    tmp_path: Path,
    args: list[str],
    text: str,
    kind: str,
    program: str = tap_process.TAP,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run with `text` through a pipe of `kind` where `args` has PIPED."""
    stdin: tap_process.Stdin = None
    with contextlib.ExitStack() as stack:
        if kind == "fifo":
            path = stack.enter_context(fifo(tmp_path / "piped.json", text))
        else:
            path = "/dev/stdin"
            stdin = text.encode()
            if kind == "stdin-file":
                stdin = tmp_path / "stdin.json"
                stdin.write_text(text)
        return tap_process.run(
            [path if arg == PIPED else arg for arg in args],
            cwd=tmp_path,
            env=clean_env(env),
            stdin=stdin,
            program=program,
            timeout=60,
        )


def command_line(
    tmp_path: Path, inputs: dict[str, Any], piped: str | None
) -> list[str]:
    """`--option file` for each input, PIPED for the `piped` one."""
    args = []
    for option, value in inputs.items():
        name = f"{option.removeprefix('--')}.json"
        args += [option, PIPED if option == piped else write(tmp_path, name, value)]
    return args


def check_read(account: Account, streams: set[str], stderr: str) -> None:
    """Usage alone (the catalog), from the fake API (the config), from the bookmark."""
    assert streams == {"usage"}, stderr[-3000:]
    assert account.usage_starts() == {FIRST_DAY}, stderr[-3000:]


# -- tap-metronome -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["stdin", "stdin-file", "fifo"])
def test_discover_reads_the_config_through_a_pipe(account, tmp_path, kind):
    run = run_piped(
        tmp_path, ["--config", PIPED, "--discover"], json.dumps(account.config), kind
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(json.loads(run.stdout)["streams"]) == ALL_STREAMS


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("option", ["--config", "--catalog", "--state"])
def test_a_sync_reads_each_input_through_a_pipe(account, tmp_path, option, kind):
    inputs = account.singer_inputs()
    args = command_line(tmp_path, inputs, option)
    account.server.app.reset_requests()
    run = run_piped(tmp_path, args, json.dumps(inputs[option]), kind)
    assert run.returncode == 0, run.stderr[-3000:]
    messages = [_DECODER.decode(line) for line in run.stdout.splitlines()]
    streams = {m["stream"] for m in messages if m["type"] == "RECORD"}
    check_read(account, streams, run.stderr)


def test_config_files_and_env_merge_in_order_with_a_pipe_among_them(account, tmp_path):
    """A later file overrides an earlier one, and the environment overrides both."""
    inputs = account.singer_inputs()
    base = {**account.config, "auth_token": "wrong", "usage_lookback_days": 30}
    args = command_line(tmp_path, {**inputs, "--config": base}, None)
    args += ["--config", PIPED, "--config", "ENV"]
    account.server.app.reset_requests()
    run = run_piped(
        tmp_path,
        args,
        json.dumps({"auth_token": TOKEN, "usage_lookback_days": 20}),
        "fifo",
        env={"TAP_METRONOME_USAGE_LOOKBACK_DAYS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    messages = [_DECODER.decode(line) for line in run.stdout.splitlines()]
    streams = {m["stream"] for m in messages if m["type"] == "RECORD"}
    check_read(account, streams, run.stderr)


# -- source-metronome ----------------------------------------------------------------------


def source_run(run: subprocess.CompletedProcess[str]) -> SourceRun:
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return SourceRun(run.returncode, run.stdout, run.stderr, protocol_lines(run.stdout))


@pytest.mark.parametrize("kind", KINDS)
def test_check_reads_the_config_through_a_pipe(account, tmp_path, kind):
    account.server.app.reset_requests()
    run = source_run(
        run_piped(
            tmp_path,
            ["check", "--config", PIPED],
            json.dumps(account.config),
            kind,
            tap_process.SOURCE,
        )
    )
    assert run.returncode == 0
    (status,) = run.of_type("CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "SUCCEEDED", run.stderr[-3000:]
    assert account.server.app.count() == 1  # the api_url of the piped config


@pytest.mark.parametrize("kind", KINDS)
def test_source_discover_reads_the_config_through_a_pipe(account, tmp_path, kind):
    run = source_run(
        run_piped(
            tmp_path,
            ["discover", "--config", PIPED],
            json.dumps(account.config),
            kind,
            tap_process.SOURCE,
        )
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (message,) = run.of_type("CATALOG")
    assert len(message["catalog"]["streams"]) == ALL_STREAMS


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("option", ["--config", "--catalog", "--state"])
def test_a_read_reads_each_input_through_a_pipe(account, tmp_path, option, kind):
    inputs = account.airbyte_inputs()
    args = ["read", *command_line(tmp_path, inputs, option)]
    account.server.app.reset_requests()
    run = source_run(
        run_piped(tmp_path, args, json.dumps(inputs[option]), kind, tap_process.SOURCE)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    streams = {m["record"]["stream"] for m in run.of_type("RECORD")}
    check_read(account, streams, run.stderr)


# -- a pipe that holds no JSON -------------------------------------------------------------


@pytest.mark.parametrize("program", [tap_process.TAP, tap_process.SOURCE])
@pytest.mark.parametrize("option", ["--config", "--catalog", "--state"])
def test_a_pipe_of_broken_json_is_one_line(account, tmp_path, program, option):
    """Cut short, with the token in it: one line naming the option, exit 1."""
    inputs = (
        account.singer_inputs()
        if program == tap_process.TAP
        else account.airbyte_inputs()
    )
    args = command_line(tmp_path, inputs, option)
    if program == tap_process.SOURCE:
        args.insert(0, "read")
    value = inputs[option]
    with_token = [*value, TOKEN] if isinstance(value, list) else {**value, "t": TOKEN}
    text = json.dumps(with_token)[:-1]
    account.server.app.reset_requests()
    run = run_piped(tmp_path, args, text, "fifo", program)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert TOKEN not in run.stdout + run.stderr
    (error,) = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert option in error
    assert "not valid JSON" in error
    assert account.server.app.count() == 0


# -- process substitution in a shell -------------------------------------------------------


@pytest.mark.skipif(BASH is None, reason="needs bash")
@pytest.mark.parametrize("program", [tap_process.TAP, tap_process.SOURCE])
def test_process_substitution_for_every_input(account, tmp_path, program):
    """`<(cat file)` for all three, through the real interpreter and a shell."""
    singer = program == tap_process.TAP
    inputs = account.singer_inputs() if singer else account.airbyte_inputs()
    files = [
        write(tmp_path, f"{option.removeprefix('--')}.json", value)
        for option, value in inputs.items()
    ]
    script = (
        '"$0" -m "$1" ${2:+"$2"} --config <(cat "$3") --catalog <(cat "$4") '
        '--state <(cat "$5")'
    )
    command = "" if singer else "read"
    account.server.app.reset_requests()
    run = subprocess.run(
        [str(BASH), "-c", script, sys.executable, program, command, *files],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    messages = [_DECODER.decode(line) for line in run.stdout.splitlines()]
    if singer:
        streams = {m["stream"] for m in messages if m["type"] == "RECORD"}
    else:
        streams = {m["record"]["stream"] for m in messages if m["type"] == "RECORD"}
    check_read(account, streams, run.stderr)


# -- endless and blocking inputs (issue 23, item 12) ----------------------------------------


def _inputs_with(
    account: Account, tmp_path: Path, program: str, option: str, path: str
) -> list[str]:
    """The command line of a sync (`read` for the source) with `path` for `option`."""
    singer = program == tap_process.TAP
    inputs = account.singer_inputs() if singer else account.airbyte_inputs()
    args = command_line(tmp_path, inputs, option)
    args[args.index(PIPED)] = path
    return args if singer else ["read", *args]


@pytest.mark.parametrize("program", [tap_process.TAP, tap_process.SOURCE])
@pytest.mark.parametrize("option", ["--config", "--catalog", "--state"])
def test_an_endless_input_is_refused_in_one_line(account, tmp_path, program, option):
    """`/dev/zero` ran out of memory (exit 3); now it is refused past the cap."""
    from tap_metronome.inputs import MAX_INPUT_BYTES

    args = _inputs_with(account, tmp_path, program, option, "/dev/zero")
    account.server.app.reset_requests()
    started = time.monotonic()
    run = tap_process.run(
        args, cwd=tmp_path, env=clean_env(), program=program, timeout=60
    )
    assert run.returncode == 1, run.stderr[-3000:]
    assert time.monotonic() - started < 30  # read to the cap, not for ever
    assert "Traceback" not in run.stderr
    (error,) = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert f"{option} /dev/zero: larger than {MAX_INPUT_BYTES // 2**20} MiB" in error
    assert account.server.app.count() == 0


def test_an_input_at_the_cap_is_read_and_one_byte_more_is_not(tmp_path, monkeypatch):
    from tap_metronome import inputs
    from tap_metronome.errors import InputError

    monkeypatch.setattr(inputs, "MAX_INPUT_BYTES", 16)
    (tmp_path / "at.json").write_text('{"a": "' + "x" * 7 + '"}')  # 16 bytes
    (tmp_path / "over.json").write_text('{"a": "' + "x" * 8 + '"}')
    assert inputs.read_json(str(tmp_path / "at.json"), "--state") == {"a": "x" * 7}
    with pytest.raises(InputError, match=r"^--state \S+over.json: larger than 0 MiB"):
        inputs.read_json(str(tmp_path / "over.json"), "--state")
    over = r"^--catalog \S+over.json: larger than"
    with (
        (tmp_path / "over.json").open() as handle,
        pytest.raises(InputError, match=over),
    ):
        inputs.json_object_text(handle, "--catalog")
    with pytest.raises(InputError, match=r"^--catalog: larger than"):
        inputs.json_object_text(io.StringIO("{" + " " * 16 + "}"), "--catalog")


@pytest.mark.slow
@pytest.mark.parametrize("program", [tap_process.TAP, tap_process.SOURCE])
@pytest.mark.parametrize("option", ["--config", "--state"])
def test_sigterm_ends_a_wait_for_a_fifo_nobody_writes(
    account, tmp_path, program, option
):
    """Waiting to open a FIFO with no writer ignored SIGTERM for ever."""
    path = tmp_path / "nobody.json"
    os.mkfifo(path)
    args = _inputs_with(account, tmp_path, program, option, str(path))
    proc = tap_process.TapProcess(
        args,
        cwd=tmp_path,
        env=clean_env(),
        stdout=tap_process.PIPE,
        stderr=tap_process.PIPE,
        text=True,
        program=program,
    )
    try:
        time.sleep(1)
        assert proc.poll() is None  # waiting for a writer
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        stdout, stderr = proc.communicate(timeout=10)
        stopped_in = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 143, stderr[-3000:]
    assert stopped_in < 5
    assert "Traceback" not in stderr
    (last,) = [line for line in stderr.splitlines() if "SIGTERM" in line]
    assert "Stopped by SIGTERM while reading --config, --state or --catalog" in last
    if program == tap_process.TAP:
        assert stdout == ""
    else:  # the source's TRACE ERROR, and nothing else
        (trace,) = protocol_lines(stdout)
        assert trace["type"] == "TRACE", trace
