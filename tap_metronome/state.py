"""The state a run starts from: checked, and kept only as far as the tap reads it.

Per-customer bookmarks (`CustomerBookmarks`), the account-wide streams' one
bookmark, and the state of streams this version does not know (carried along
when small); a wrapped state is unwrapped, and anything else is `InputError`,
one line naming the state key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Protocol

import msgspec

from tap_metronome.bookmarks import CustomerBookmarks
from tap_metronome.errors import InputError, one_line
from tap_metronome.times import instant_text, parse_date, parse_instant
from tap_metronome.windows import end_of_today

#: Future bookmarks named one by one in the log before the rest are counted.
NAMED_IN_LOG = 20


class StateReader(Protocol):
    """A stream type as the state check sees it: it cleans its own state."""

    name: str

    @classmethod
    def clean_state(
        cls, stream_state: Mapping[str, Any], where: str, logger: logging.Logger
    ) -> dict[str, Any]:
        """What of a saved stream state the stream reads, checked."""
        ...


#: The SDK's own per-stream state keys, which the tap does not read.
_SDK_STATE_KEYS = ("replication_key", "replication_key_value", "progress_markers")


def read_state(
    state: Any, logger: logging.Logger, stream_types: Iterable[StateReader]
) -> dict[str, Any] | None:
    """The state to start from, or `InputError` naming what is wrong with it.

    Each of the tap's streams keeps only what it reads, checked by its own
    `clean_state` (its bookmark keys are its own business): per-customer
    bookmarks without those later than today (no run can have written them:
    the state was edited or corrupted; those customers are re-read from
    `start_date`, which is safe because rows upsert on their key), an
    account-wide stream's one bookmark, and nothing for the full-table streams.
    The SDK's markers are dropped, so that a bad or future marker is neither
    echoed into new STATE messages nor fatal. The state of streams this version
    does not know is kept when the SDK can read it.
    """
    readers = {stream_type.name: stream_type for stream_type in stream_types}
    if state is None:
        return None
    state = _unwrapped(state, logger)
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        bookmarks = {}
    if not isinstance(bookmarks, Mapping):
        msg = "state: bookmarks must be an object of stream name -> stream state"
        raise InputError(msg)
    kept: dict[str, Any] = {}
    for name, stream_state in bookmarks.items():
        where = f"state: bookmarks.{one_line(name, 60)}"
        if not isinstance(stream_state, Mapping):
            msg = f"{where} must be an object"
            raise InputError(msg)
        reader = readers.get(name)
        if reader is not None:
            kept[name] = reader.clean_state(stream_state, where, logger)
        else:
            _check_sdk_state(stream_state, where)
            size = len(_STATE_ENCODER.encode(stream_state))
            if size > MAX_FOREIGN_STATE_BYTES:
                # Echoed into every STATE message of the run (210 MB of it made
                # 4.8 GB of output): a stream this version does not know.
                logger.warning(
                    "state: dropped the bookmarks of %s, a stream this version does "
                    "not know (%d bytes, more than %d): not carried into new states",
                    one_line(name, 60),
                    size,
                    MAX_FOREIGN_STATE_BYTES,
                )
                continue
            kept[name] = dict(stream_state)
    return {**state, "bookmarks": kept}


#: The most state of one unknown stream carried along (a newer version's stream
#: keeps a bookmark or two; anything larger is not state this tap can use).
MAX_FOREIGN_STATE_BYTES = 1 << 20
_STATE_ENCODER = msgspec.json.Encoder(decimal_format="number")


#: Keys a Singer state may have besides `bookmarks` (the SDK's and Singer's).
STATE_KEYS = frozenset({"bookmarks", "currently_syncing"})


def _unwrapped(state: Any, logger: logging.Logger) -> Mapping[str, Any]:
    """The Singer state in `state`, unwrapped from what orchestrators store.

    `{"singer_state": {...}}` (Meltano's system database) and a whole
    `{"type": "STATE", "value": {...}}` message are read with an INFO line; any
    other object with neither `bookmarks` nor only Singer's keys is refused: read
    as "no state", it would be a silent backfill from `start_date`.
    """
    for _ in range(3):  # a wrapper inside a wrapper, at most
        if not isinstance(state, Mapping):
            msg = f"state: must be a JSON object, not {type(state).__name__}"
            raise InputError(msg)
        if "bookmarks" in state:
            return state
        if set(state) == {"singer_state"}:
            logger.info('state: reading the Singer state inside "singer_state"')
            state = state["singer_state"]
        elif state.get("type") == "STATE" and "value" in state:
            logger.info("state: reading the value of a Singer STATE message")
            state = state["value"]
        else:
            break
    if isinstance(state, Mapping) and set(state) <= STATE_KEYS:
        return state
    keys = (
        ", ".join(one_line(key, 40) for key in list(state)[:5])
        if isinstance(state, Mapping)
        else type(state).__name__
    )
    msg = (
        f"state: not a Singer state of this tap (no bookmarks; keys: {keys}); "
        "give the state a run wrote, or none for a full sync"
    )
    raise InputError(msg)


def customer_bookmarks(
    name: str, stream_state: Mapping[str, Any], key: str, logger: logging.Logger
) -> dict[str, Any]:
    """A per-customer stream's bookmarks under `key`, checked; future ones dropped."""
    grouped, future = CustomerBookmarks.checked_state(
        stream_state, latest=end_of_today(), stream=name, key=key
    )
    _warn_future(name, future, logger)
    return {key: grouped}


def one_bookmark(
    name: str,
    stream_state: Mapping[str, Any],
    where: str,
    logger: logging.Logger,
    *,
    key: str,
    kind: type[date] | type[datetime],
) -> str | None:
    """An account-wide stream's one bookmark, checked: unreadable stops, future is dropped.

    A date (an exclusive end) or an RFC 3339 instant, both read by `times`
    (the one reading of times, also used for the records the bookmarks are
    made of), so a bookmark a run wrote is always read back. An instant is
    returned in the form the tap writes (UTC, `Z`), so that the SDK, which
    reads it again, never meets `t`, `z`, spaces or a leap second. None: no
    bookmark (absent, or in the future, with a WARNING).
    """
    value = stream_state.get(key)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise TypeError
        if kind is date:
            day = parse_date(value)
            # A date bookmark is an exclusive end: the end of today is the latest.
            future = day > end_of_today()
        else:
            moment = parse_instant(value)
            future = moment > datetime.now(UTC)
            value = instant_text(moment)
    except (TypeError, ValueError):
        what = "a date (YYYY-MM-DD)" if kind is date else "an RFC 3339 date-time"
        msg = f"{where}.{key} must be {what}, not {one_line(value, 60)}"
        raise InputError(msg) from None
    if future:
        logger.warning(
            "state: the %s bookmark %s is in the future, which no run can have "
            "written; reading %s from start_date",
            name,
            one_line(value, 60),
            name,
        )
        return None
    return value


def _check_sdk_state(stream_state: Mapping[str, Any], where: str) -> None:
    markers = stream_state.get("progress_markers")
    if markers is not None and not isinstance(markers, Mapping):
        msg = f"{where}.progress_markers must be an object"
        raise InputError(msg)
    partitions = stream_state.get("partitions")
    if partitions is not None and not (
        isinstance(partitions, list)
        and all(
            isinstance(p, Mapping) and isinstance(p.get("context", {}), Mapping)
            for p in partitions
        )
    ):
        msg = f"{where}.partitions must be a list of objects with a context object"
        raise InputError(msg)


def _warn_future(
    stream: str, future: Mapping[str, date], logger: logging.Logger
) -> None:
    for customer_id, day in list(future.items())[:NAMED_IN_LOG]:
        logger.warning(
            "state: %s bookmark of customer %s is in the future (%s), "
            "which no run can have written; re-reading it from start_date",
            stream,
            customer_id,
            day,
        )
    if len(future) > NAMED_IN_LOG:
        logger.warning(
            "state: %d more %s bookmarks are in the future; re-reading "
            "those customers from start_date too",
            len(future) - NAMED_IN_LOG,
            stream,
        )


def forget_unlisted(
    state: Mapping[str, Any],
    listed: list[str],
    logger: logging.Logger,
    bookmark_keys: Mapping[str, str],
) -> None:
    """Drop the per-customer bookmarks of customers the listing no longer has.

    `bookmark_keys`: each per-customer stream's name and state key. Done when
    the whole customers listing is read: a state can hold millions of customers
    long gone, which would otherwise be copied into every STATE message of the
    run until their stream runs.
    """
    bookmarks = state.get("bookmarks")
    if not isinstance(bookmarks, Mapping):
        return
    for name, key in bookmark_keys.items():
        stream_state = bookmarks.get(name)
        if not isinstance(stream_state, dict) or not stream_state.get(key):
            continue
        kept, _ = CustomerBookmarks.from_state(
            stream_state, latest=end_of_today(), stream=name, key=key, listed=listed
        )
        if kept.forgotten:
            stream_state[key] = kept.to_state()
            logger.info(
                "%s: forgot the bookmarks of %d customers no longer listed",
                name,
                kept.forgotten,
            )
