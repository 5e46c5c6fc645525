"""`source-metronome spec | check --config | discover --config | read --config --catalog [--state]`.

Every outcome is Airbyte messages on stdout, one JSON line each; logs go to
stderr as in Singer mode. A failed command writes one TRACE ERROR whose message
is the tap's one line (token redacted) and whose `failure_type` says whose move
it is (config_error: the settings, token, catalog or state; transient_error:
retries ran out or the run was stopped; system_error: the API or the tap), then
exits with the Singer command's code (1 input, 2 API, 3 internal, 128+N signal).
A stdout that cannot take the output (`output.OutputError`) gets no TRACE: the
log line says it, and the exit code is 2.
`check` reports any problem as CONNECTION_STATUS FAILED and exits 0, which is
how Airbyte expects a failed check.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from singer_sdk.logging import ConsoleFormatter

from tap_metronome import failures, stopping
from tap_metronome.airbyte import catalog, messages
from tap_metronome.airbyte.messages import FailureType
from tap_metronome.airbyte.writer import AirbyteWriter
from tap_metronome.errors import SyncInterrupted, one_line
from tap_metronome.inputs import read_json_object
from tap_metronome.logs import SAFE_LINES, protect_logs
from tap_metronome.output import OutputError, write_stdout
from tap_metronome.tap import TapMetronome

LOGGER = logging.getLogger("source-metronome")


def main(argv: list[str] | None = None) -> NoReturn:
    """Run one Airbyte command and exit with a code that says how it ended."""
    parser = argparse.ArgumentParser(
        prog="source-metronome", description="Metronome as an Airbyte source."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("spec", help="the settings, as an Airbyte SPEC")
    for name in ("check", "discover"):
        commands.add_parser(name).add_argument("--config", required=True)
    read = commands.add_parser("read")
    read.add_argument("--config", required=True)
    read.add_argument("--catalog", required=True)
    read.add_argument("--state")
    args = parser.parse_args(argv)
    _log_to_stderr()
    run: Callable[[argparse.Namespace], int] = COMMANDS[args.command]
    try:
        if args.command != "spec":
            stopping.reading_inputs()
        try:
            code = run(args)
        finally:
            stopping.inputs_read()
    except BaseException as exc:  # noqa: BLE001 - the last message of a run is ours
        code = _fail(exc, _WRITERS[-1] if _WRITERS else None)
    sys.exit(code)


def spec(_: argparse.Namespace) -> int:
    """The SPEC: the tap's settings schema."""
    _write(messages.spec(catalog.connection_specification(), catalog.DOCS_URL))
    return 0


def check(args: argparse.Namespace) -> int:
    """Valid settings and one small request, else FAILED with the reason."""
    try:
        tap = _tap(args.config)
        tap.services.client.get("/v1/customers", {"limit": 1}, stream="check")
    except SyncInterrupted:
        raise
    except Exception as exc:  # noqa: BLE001 - any problem is the check's answer
        message, _, _, _ = _describe(exc)
        LOGGER.error("%s", message)
        _write(messages.connection_status(message))
        return 0
    _write(messages.connection_status())
    return 0


def discover(args: argparse.Namespace) -> int:
    """The CATALOG: every stream, its schema, primary key and cursor."""
    _write(messages.catalog(catalog.offered_streams(_tap(args.config))))
    return 0


def read(args: argparse.Namespace) -> int:
    """Sync the configured streams, converting the tap's Singer output."""
    config = read_json_object(args.config, "--config")
    offered = TapMetronome(config=config, validate_config=False)
    incremental = {
        entry["name"]: entry.get("source_defined_cursor", False)
        for entry in catalog.offered_streams(offered)
    }
    request = catalog.read_configured_catalog(args.catalog, incremental)
    for note in request.notes:
        LOGGER.warning("%s", note)
    state = {
        name: blob
        for name, blob in catalog.read_state(args.state).items()
        if request.streams.get(name)  # incremental reads start from their state
    }
    stopping.inputs_read()
    writer = AirbyteWriter(request.streams, state)
    _WRITERS.append(writer)
    tap = TapMetronome(
        config=config,
        state={"bookmarks": state},
        catalog=catalog.singer_catalog(offered.catalog_dict, request.streams),
        message_writer=writer,
    )
    tap.sync_all()
    signum = stopping.received()
    if signum is not None:
        raise SyncInterrupted(signum)
    writer.finish(failed=False)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "spec": spec,
    "check": check,
    "discover": discover,
    "read": read,
}
#: The writer of the read under way, which a failure must close.
_WRITERS: list[AirbyteWriter] = []


def _tap(config_path: str) -> TapMetronome:
    config = read_json_object(config_path, "--config")
    stopping.inputs_read()
    return TapMetronome(config=config)


def _write(message: dict[str, Any]) -> None:
    write_stdout(messages.encode(message), AirbyteWriter.what)


def _describe(exc: BaseException) -> tuple[str, FailureType, int, str | None]:
    """The one line, failure type, exit code and internal detail of a failure."""
    failure = failures.describe(exc)
    internal = None
    if failure.detail is not None:
        internal = f"{type(exc).__name__}: {failure.detail}"
        LOGGER.debug("Traceback of the unexpected error", exc_info=exc)
    redact = SAFE_LINES.redact
    return (
        one_line(redact(failure.message), 1000),
        failure.kind,
        failure.exit_code,
        None if internal is None else one_line(redact(internal), 1000),
    )


def _fail(exc: BaseException, writer: AirbyteWriter | None) -> int:
    """Log the line, close the streams, write the TRACE ERROR; the exit code.

    When stdout itself failed, the line on stderr is all that can be said.
    """
    message, kind, code, internal = _describe(exc)
    LOGGER.error("%s", message)
    if isinstance(exc, OutputError):
        return code
    trace = messages.encode(messages.error_trace(message, kind, internal))
    try:
        if writer is None:
            write_stdout(trace, AirbyteWriter.what)
        else:
            writer.finish(failed=True)
            writer.emit(trace)
    except OutputError as broken:  # stdout went too: the exit code still tells
        LOGGER.error("%s", broken)
    return code


def _log_to_stderr() -> None:
    """Log lines on stderr as in Singer mode, one line each, without the token."""
    level_name = (
        os.environ.get("TAP_METRONOME_LOGLEVEL") or os.environ.get("LOGLEVEL") or "INFO"
    ).upper()
    level = logging.getLevelName(level_name)
    root = logging.getLogger()
    root.setLevel(level if isinstance(level, int) else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    root.addHandler(handler)
    protect_logs(set())
