"""Every log line the tap writes is one line, of bounded length, without secrets.

Log messages carry text the tap does not control: API error messages, ids from
API answers, exception text from libraries. Escaping each at its source is easy
to forget, so a filter on the log handlers does it for every record: secret
values (the token) are replaced, line breaks and other control characters are
escaped (`errors.one_line`), and a message is cut at `MAX_LINE` characters.
"""

from __future__ import annotations

import logging
import string

from tap_metronome.errors import one_line

MAX_LINE = 20_000
PLACEHOLDER = "<auth_token>"
#: A server may echo part of the token ("token sk-live-12ab... is invalid"):
#: its first or last this-many-or-more characters (in any case) are replaced too.
FRAGMENT = 8
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _cover(folded: str, key: str, covered: bytearray, *, from_start: bool) -> None:
    """Mark each run of `folded` that repeats the start (or end) of `key`."""
    probe = key[:FRAGMENT] if from_start else key[-FRAGMENT:]
    at = folded.find(probe)
    while at != -1:
        if from_start:
            end = at
            while (
                end < len(folded)
                and end - at < len(key)
                and folded[end] == key[end - at]
            ):
                end += 1
            covered[at:end] = b"\x01" * (end - at)
        else:
            stop = at + FRAGMENT
            start = stop
            while (
                start > 0
                and stop - start < len(key)
                and folded[start - 1] == key[len(key) - (stop - start) - 1]
            ):
                start -= 1
            covered[start:stop] = b"\x01" * (stop - start)
        at = folded.find(probe, at + 1)


class SafeLines(logging.Filter):
    """Rewrites each record's message into one safe line (idempotent)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add_secrets(self, secrets: set[str]) -> None:
        """Keep these values, and their first or last `FRAGMENT`+ characters, out."""
        for secret in secrets:
            if len(secret) >= 4:
                self.secrets.add(secret)

    def redact(self, text: str) -> str:
        """`text` with every secret, and every echo of its start or end, replaced.

        Servers that echo a token echo its start ("token sk-live-12ab... is
        invalid") or its end; matching only those keeps text that merely shares
        a word with the token (a token containing "metronome") readable.
        """
        for secret in self.secrets:
            text = text.replace(secret, PLACEHOLDER)
        folded = text.translate(_ASCII_LOWER)  # same length, unlike str.lower()
        covered = bytearray(len(text))
        for secret in self.secrets:
            if len(secret) < FRAGMENT:
                continue
            key = secret.translate(_ASCII_LOWER)
            _cover(folded, key, covered, from_start=True)
            _cover(folded, key, covered, from_start=False)
        if not any(covered):
            return text
        out: list[str] = []
        for i, char in enumerate(text):
            if not covered[i]:
                out.append(char)
            elif i == 0 or not covered[i - 1]:
                out.append(PLACEHOLDER)
        return "".join(out)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact, escape and shorten the message; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = f"{record.msg!s} {record.args!r}"
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        message = self.redact(message)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        record.msg = one_line(message, MAX_LINE)
        record.args = ()
        return True


SAFE_LINES = SafeLines()


def protect_logs(secrets: set[str]) -> None:
    """Put the filter on every handler there is now, and keep `secrets` out of them."""
    SAFE_LINES.add_secrets(secrets)
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if SAFE_LINES not in handler.filters:
                handler.addFilter(SAFE_LINES)
