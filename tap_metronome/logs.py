"""Every log line the tap writes is one line, of bounded length, without secrets.

Log messages carry text the tap does not control: API error messages, ids from
API answers, exception text from libraries. Escaping each at its source is easy
to forget, so a filter on the log handlers does it for every record: secret
values (the token) are replaced, line breaks and other control characters are
escaped (`errors.one_line`), and a message is cut at `MAX_LINE` characters.
"""

from __future__ import annotations

import logging

from tap_metronome.errors import one_line

MAX_LINE = 20_000
PLACEHOLDER = "<auth_token>"


class SafeLines(logging.Filter):
    """Rewrites each record's message into one safe line (idempotent)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact, escape and shorten the message; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = f"{record.msg!s} {record.args!r}"
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            message = message.replace(secret, PLACEHOLDER)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, PLACEHOLDER)
        record.msg = one_line(message, MAX_LINE)
        record.args = ()
        return True


SAFE_LINES = SafeLines()


def protect_logs(secrets: set[str]) -> None:
    """Put the filter on every handler there is now, and keep `secrets` out of them."""
    SAFE_LINES.secrets |= {secret for secret in secrets if len(secret) >= 4}
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if SAFE_LINES not in handler.filters:
                handler.addFilter(SAFE_LINES)
