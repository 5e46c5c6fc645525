"""The one place an id from the API or the config goes into a request path.

An id is refused, not encoded, unless it is 1 to 200 of RFC 3986's unreserved
characters (letters, digits, `-`, `.`, `_`, `~`) and not `.` or `..`. Those go
into a URL as themselves, so no layer can decode or normalise them into another
endpoint. Encoding would not be enough: requests turns `%2E` back into `.` and
urllib3 then resolves `..`; `%2F`, `%5C` or `%252e` are decoded by some proxies
and routers in front of an API, which this tap cannot see. Metronome's ids are
UUIDs, so a refused id is not a real customer or plan: its partition is skipped
with one WARNING line and counted, and the run goes on.
"""

from __future__ import annotations

import re

from tap_metronome.errors import MetronomeError, one_line

#: The longest id put in a path (a UUID is 36 characters).
MAX_ID_LENGTH = 200
RULE = (
    f"cannot go in a URL path (only 1 to {MAX_ID_LENGTH} letters, digits, '-', "
    "'.', '_' or '~', and not '.' or '..')"
)
_UNRESERVED = re.compile(rf"[A-Za-z0-9._~-]{{1,{MAX_ID_LENGTH}}}")


class UnsafeIdError(MetronomeError):
    """An id that could change which endpoint a request reaches; never sent."""

    def __init__(self, stream: str, key: str, value: str) -> None:
        self.stream = stream
        #: Why, without the stream and the id (a partition's skip line names them).
        self.reason = f"{key} {RULE}; not requested"
        super().__init__(
            f"Stream {stream}: {key} {one_line(value, 80)} {RULE}; not requested"
        )


def with_id(template: str, key: str, value: str, *, stream: str) -> str:
    """`template` with `{key}` replaced by `value`, or `UnsafeIdError`."""
    if value in {".", ".."} or not _UNRESERVED.fullmatch(value):
        raise UnsafeIdError(stream, key, value)
    return template.replace("{" + key + "}", value)
