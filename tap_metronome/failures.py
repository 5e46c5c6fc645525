"""How a run that raised ends: its last line, exit code and whose move it is.

Both commands, `tap-metronome` (Singer) and `source-metronome` (Airbyte), end
a failed run the same way; one function decides it for both, so the two never
disagree on an exit code. Each command then says it in its own protocol: a log
line for Singer, a TRACE message (with `kind` as its `failure_type`) for Airbyte.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from singer_sdk.exceptions import ConfigValidationError, MappingError, SingerSDKError

from tap_metronome import stopping
from tap_metronome.client import MetronomeAuthError, RetriesExhaustedError
from tap_metronome.errors import (
    EXIT_INPUT,
    EXIT_INTERNAL,
    InputError,
    MetronomeError,
    SyncInterrupted,
    one_line,
)

#: Whose move it is: the user's settings or input, a retry later, or the API or
#: the tap (the names are the Airbyte protocol's `failure_type`).
Kind = Literal["config_error", "transient_error", "system_error"]

#: The start of the line of a failure the tap did not expect.
BUG = (
    "Unexpected error (a bug in tap-metronome; please report it with the DEBUG "
    "log, TAP_METRONOME_LOGLEVEL=DEBUG)"
)


@dataclass(frozen=True)
class Failure:
    """The end of a failed run."""

    message: str
    exit_code: int
    kind: Kind
    level: int = logging.ERROR
    #: A bug's exception text (its type is in `message`); None for known failures.
    detail: str | None = None


def describe(exc: BaseException) -> Failure:
    """The one line, exit code and kind of a run that raised `exc`.

    A signal received before the failure is what ended the run, whatever was
    raised (a request it cancelled, for one).
    """
    signum = stopping.received()
    if signum is not None and not isinstance(exc, SyncInterrupted):
        exc = SyncInterrupted(signum)
    if isinstance(exc, SyncInterrupted):
        return Failure(str(exc), exc.exit_code, "transient_error", logging.WARNING)
    if isinstance(exc, ConfigValidationError):
        text = "; ".join(str(error) for error in exc.errors) or str(exc)
        return Failure(text, EXIT_INPUT, "config_error")
    if isinstance(exc, MetronomeError):
        kind: Kind = "system_error"
        if isinstance(exc, InputError | MetronomeAuthError):
            kind = "config_error"
        elif isinstance(exc, RetriesExhaustedError):
            kind = "transient_error"
        return Failure(str(exc), exc.exit_code, kind)
    if isinstance(exc, MappingError):
        return Failure(
            f"stream_maps: {one_line(str(exc), 300)}", EXIT_INPUT, "config_error"
        )
    if isinstance(exc, SingerSDKError):
        text = f"{type(exc).__name__}: {one_line(str(exc), 300)}"
        return Failure(text, EXIT_INPUT, "config_error")
    if isinstance(exc, KeyboardInterrupt):
        return Failure(
            "Interrupted before the sync started",
            130,
            "transient_error",
            logging.WARNING,
        )
    return Failure(
        f"{BUG}: {type(exc).__name__}",
        EXIT_INTERNAL,
        "system_error",
        detail=one_line(str(exc), 300),
    )
