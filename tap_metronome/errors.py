"""Errors a person must act on, their exit codes, and text safe to put in a log line.

Every way a run can end badly maps to one exception type here, and the command
line (`tap_metronome.cli`) turns it into one log line and an exit code:

| exit | meaning |
|---|---|
| 1 | bad input: a setting, the state file, the config file |
| 2 | the API or the network failed the run, or stdout cannot take the output |
| 3 | an unexpected internal error (a bug: please report it) |
| 128+N | stopped by signal N (143 for SIGTERM, 130 for SIGINT) |
"""

from __future__ import annotations

import signal
import unicodedata

EXIT_INPUT = 1
EXIT_API = 2
EXIT_INTERNAL = 3


class MetronomeError(Exception):
    """A failure a human must act on; `str()` is the one-line message for the log."""

    exit_code = EXIT_API


class InputError(MetronomeError):
    """A setting, the state or the config file cannot be used as given."""

    exit_code = EXIT_INPUT


class ResponseError(MetronomeError):
    """The API answered something its spec rules out; nothing of it was emitted."""


class SyncInterrupted(MetronomeError):  # noqa: N818 - reads as the event it is
    """A termination signal stopped the sync at a point where its output is whole."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name if signum in _SIGNALS else str(signum)
        super().__init__(
            f"Sync interrupted by {name}: every record written is whole and the last "
            "STATE message resumes the sync"
        )


class InterruptedBeforeSync(SyncInterrupted):
    """A termination signal came while the inputs were still being read."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        name = signal.Signals(signum).name if signum in _SIGNALS else str(signum)
        self.args = (
            f"Stopped by {name} while reading --config, --state or --catalog, "
            "before the sync started: nothing was written",
        )


_SIGNALS = {s.value for s in signal.Signals}
#: Control, format, surrogate, private-use and unassigned characters, and the line
#: and paragraph separators that `str.splitlines` breaks on.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def one_line(value: object, limit: int = 300) -> str:
    """`value` as one printable line of at most about `limit` characters.

    Text from the API or from a user (an error message, an id) may carry newlines
    that would forge log lines, or be megabytes long: control and format characters
    are escaped and the rest is cut, saying how much was cut.
    """
    text = value if isinstance(value, str) else repr(value)
    # Nearly every line (each METRIC line, for one) has nothing to escape:
    # `isprintable` is False for every category escaped below, and checks the
    # whole text in C instead of one character at a time in Python.
    if text.isprintable():
        if len(text) <= limit:
            return text
        return f"{text[:limit]}... ({len(text) - limit} more characters)"
    return _one_line_by_character(text, limit)


def _one_line_by_character(text: str, limit: int) -> str:
    """`one_line` for text with something to escape, one character at a time."""
    out: list[str] = []
    size = 0
    for position, char in enumerate(text):
        if unicodedata.category(char) in _UNPRINTABLE:
            char = char.encode("unicode_escape").decode("ascii")
        out.append(char)
        size += len(char)
        if size >= limit and position + 1 < len(text):
            out.append(f"... ({len(text) - position - 1} more characters)")
            break
    return "".join(out)
