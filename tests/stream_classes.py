"""What the tests know about the streams, read from their classes (`STREAM_TYPES`).

Sets of streams and endpoints, and the requests and STATE messages a sync makes,
are derived here from each class's path, method, keys, parent and bookmarks, so
that a new stream class is counted by every test without editing one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tap_metronome.streams import STATE_WRITES_PER_SYNC, STREAM_TYPES, MetronomeStream
from tap_metronome.streams.partitions import PARENT_KEYS

StreamType = type[MetronomeStream]

#: Every stream class by stream name.
BY_NAME: dict[str, StreamType] = {t.name: t for t in STREAM_TYPES}  # type: ignore[misc]


def parent_of(stream: StreamType) -> str | None:
    """The listing a stream reads once per item of: its `parent`, else the one
    whose id its path holds (costs and invoices fan out by themselves)."""
    declared: str | None = getattr(stream, "parent", None)
    if declared:
        return declared
    return next(
        (parent for parent, key in PARENT_KEYS.items() if f"{{{key}}}" in stream.path),
        None,
    )


def names(streams: Iterable[StreamType]) -> frozenset[str]:
    return frozenset(t.name for t in streams)  # type: ignore[misc]


def paths(streams: Iterable[StreamType]) -> frozenset[str]:
    """Their endpoints' path templates (invoices and invoice_line_items share one)."""
    return frozenset(t.path for t in streams)


def key_list(name: str) -> str:
    """The stream's primary key as SQL's column list: "plan_id, id"."""
    return ", ".join(BY_NAME[name].primary_keys or ())


#: One request (per page) per customer, per plan.
PER_CUSTOMER = tuple(t for t in STREAM_TYPES if parent_of(t) == "customers")
PER_PLAN = tuple(t for t in STREAM_TYPES if parent_of(t) == "plans")
#: Neither per parent nor a parent listing (customers, plans) itself.
ACCOUNT_WIDE = tuple(
    t for t in STREAM_TYPES if parent_of(t) is None and t.name not in PARENT_KEYS
)
#: Account-wide and full table: the pricing catalog (one listing each).
ACCOUNT_LISTINGS = tuple(t for t in ACCOUNT_WIDE if not t.replication_key)
#: Account-wide and incremental (usage, audit_logs): their requests do not grow
#: with customers, but with days and entries.
ACCOUNT_INCREMENTAL = tuple(t for t in ACCOUNT_WIDE if t.replication_key)
ACCOUNT_WIDE_PATHS = paths(ACCOUNT_INCREMENTAL)

FULL_TABLE = names(t for t in STREAM_TYPES if not t.replication_key)
INCREMENTAL = names(t for t in STREAM_TYPES if t.replication_key)

#: Streams that keep one bookmark per customer and write it in steps.
STEPWISE_BOOKMARKS = tuple(t for t in STREAM_TYPES if t.bookmark_key)
#: STATE messages of one sync, at most: those streams write their bookmarks
#: `STATE_WRITES_PER_SYNC` times each; every stream writes one STATE at its end,
#: and usage one more, its window's bookmark.
MAX_STATE_MESSAGES = (
    len(STEPWISE_BOOKMARKS) * STATE_WRITES_PER_SYNC + len(STREAM_TYPES) + 1
)


def template_pattern(template: str) -> re.Pattern[str]:
    """A stream's path template as a pattern of the paths it is requested at."""
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)))


_TEMPLATES = {template: template_pattern(template) for template in paths(STREAM_TYPES)}


def template_of(path: str) -> str:
    """The stream path template a requested path is an instance of."""
    (template,) = [t for t, pattern in _TEMPLATES.items() if pattern.fullmatch(path)]
    return template
