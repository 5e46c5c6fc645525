"""The `tap-metronome` command: the SDK's command line, ending every failure in one line.

The SDK prints a traceback for any exception it does not expect, and some of
them quote the token. Here each way a run can fail ends with one log line that
names the setting, the state, or the stream and endpoint, and an exit code
(`errors` lists them). A traceback is logged only at DEBUG, without the token.
"""

from __future__ import annotations

from tap_metronome import stopping

# Importing the SDK takes most of a second; a signal in that time is recorded
# (and ends the run with 128+N) instead of raising KeyboardInterrupt.
stopping.catch_early()

import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import NoReturn  # noqa: E402

import click  # noqa: E402
from singer_sdk.exceptions import ConfigValidationError  # noqa: E402

from tap_metronome import failures  # noqa: E402
from tap_metronome.errors import EXIT_INPUT, SyncInterrupted, one_line  # noqa: E402
from tap_metronome.logs import protect_logs  # noqa: E402
from tap_metronome.tap import TapMetronome  # noqa: E402

LOGGER = logging.getLogger(TapMetronome.name)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the tap's command line and exit with a code that says how it ended."""
    for variable in ("TAP_METRONOME_LOGLEVEL", "LOGLEVEL"):
        level = os.environ.get(variable)
        if level and not isinstance(logging.getLevelName(level.upper()), int):
            sys.stderr.write(
                f"{variable}: {one_line(level, 40)} is not a log level (DEBUG, INFO, "
                "WARNING, ERROR or CRITICAL)\n"
            )
            sys.exit(EXIT_INPUT)
    command = TapMetronome.cli
    protect_logs(set())
    try:
        # Until the inputs are read, a signal ends the run at once (see `stopping`).
        stopping.reading_inputs()
        try:
            result = command.main(
                args=argv, prog_name=TapMetronome.name, standalone_mode=False
            )
        finally:
            stopping.inputs_read()
        code = result if isinstance(result, int) else 0
    except click.ClickException as exc:  # a usage error, e.g. an unknown option
        exc.show()
        code = exc.exit_code
    except click.Abort:
        code = 130
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ConfigValidationError as exc:
        for error in exc.errors:
            LOGGER.error("%s", error)
        LOGGER.error("Config validation failed")
        code = EXIT_INPUT
    except BaseException as exc:  # noqa: BLE001 - the last line of a run is ours
        code = _report(exc)
    signum = stopping.received()
    if signum is not None and code == 0:
        # Stopped by a signal after the last safe point: the output is complete,
        # but the scheduler asked the run to stop, so it does not look like success.
        interrupted = SyncInterrupted(signum)
        LOGGER.warning("%s", interrupted)
        code = interrupted.exit_code
    # The outcome is decided: later signals must not kill the interpreter while
    # it writes the last records out.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def _report(exc: BaseException) -> int:
    failure = failures.describe(exc)
    if failure.detail is None:
        LOGGER.log(failure.level, "%s", failure.message)
    else:
        LOGGER.error("%s: %s", failure.message, failure.detail)
        LOGGER.debug("Traceback of the unexpected error", exc_info=exc)
    return failure.exit_code
