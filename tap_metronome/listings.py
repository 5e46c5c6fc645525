"""Parent listings (customers, plans), read once per run whatever the stream order.

Per-customer and per-plan streams need their parent's ids; the parent stream
itself emits the same items. The SDK syncs streams in name order
(`customer_costs` before `customers`), and a user may select any subset, so the
first stream that needs a listing reads it, and every later one reuses it: each
parent is listed at most once per run, and no stream relies on another having
synced first.

Only the ids (and customers' `archived_at`) stay in memory; the items
themselves wait in a temporary file for the parent stream to emit them, so
memory does not grow with the size of each customer record.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

import msgspec

_ENCODER = msgspec.json.Encoder(decimal_format="number")
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_CHUNK = 1 << 16


@dataclass
class _Listing:
    """One parent's listing: ids in memory, items on disk (one JSON line each)."""

    file: IO[bytes]
    ids: list[str] = field(default_factory=list)
    archived_at: dict[str, str] = field(default_factory=dict)

    def items(self) -> Iterator[dict[str, Any]]:
        """The items in listing order (positional reads: iterators do not interfere)."""
        descriptor = self.file.fileno()
        position = 0
        # The pieces of a line longer than a chunk: joined once, at its end (a
        # bytes `+=` per chunk made a 50 MB item cost 46 s of CPU).
        pieces: list[bytes] = []
        while chunk := os.pread(descriptor, _CHUNK, position):
            position += len(chunk)
            start = 0
            while (end := chunk.find(b"\n", start)) != -1:
                pieces.append(chunk[start:end])
                item: dict[str, Any] = _DECODER.decode(b"".join(pieces))
                pieces.clear()
                start = end + 1
                yield item
            if start < len(chunk):
                pieces.append(chunk[start:])


class Listings:
    """The run's parent listings, keyed by parent stream name."""

    def __init__(
        self,
        list_parent: Callable[[str], Iterable[dict[str, Any]]],
        logger: logging.Logger,
    ) -> None:
        self._list_parent = list_parent
        self._logger = logger
        self._lock = threading.Lock()
        self._listings: dict[str, _Listing] = {}

    def _listing(self, parent: str, requested_by: str) -> _Listing:
        """The parent's listing, read now if not read yet."""
        with self._lock:
            listing = self._listings.get(parent)
            if listing is None:
                listing = self._read(parent)
                self._listings[parent] = listing
                if requested_by != parent:
                    self._logger.info(
                        "%s: listed %d %s", requested_by, len(listing.ids), parent
                    )
            return listing

    def _read(self, parent: str) -> _Listing:
        listing = _Listing(tempfile.TemporaryFile(prefix="tap-metronome-"))  # noqa: SIM115 - closed by close()
        for item in self._list_parent(parent):
            listing.file.write(_ENCODER.encode(item) + b"\n")
            listing.ids.append(item["id"])
            archived_at = item.get("archived_at")
            if isinstance(archived_at, str):
                listing.archived_at[item["id"]] = archived_at
        listing.file.flush()
        return listing

    def items(self, parent: str, *, requested_by: str) -> Iterator[dict[str, Any]]:
        """The parent's items as the API listed them (read now if not read yet)."""
        return self._listing(parent, requested_by).items()

    def ids(self, parent: str, *, requested_by: str) -> list[str]:
        """The parent's ids, in listing order, each once."""
        return list(dict.fromkeys(self._listing(parent, requested_by).ids))

    def archived_at(self, parent: str, *, requested_by: str) -> dict[str, str]:
        """When each archived item was archived, as the API wrote it, by id."""
        return self._listing(parent, requested_by).archived_at

    def archived_if_listed(
        self, parent: str
    ) -> tuple[list[str], dict[str, str]] | None:
        """The ids and `archived_at`s of a listing this run has read, else None.

        Sends no request: a stream whose parent ids came from elsewhere
        (`customer_ids`) has no listing to say who is archived.
        """
        with self._lock:
            listing = self._listings.get(parent)
        if listing is None:
            return None
        return list(dict.fromkeys(listing.ids)), listing.archived_at
