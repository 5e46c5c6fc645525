"""The primary keys a stream has emitted, in 8 bytes each.

Exactly-once output needs every key of a run remembered: customers, contracts,
balances and invoices are each tens of thousands at 10,000 customers. A Python
set of digests costs about 70 bytes per key (object plus slot), which was most
of the tap's memory growth with customers. Here keys are 64-bit BLAKE2b digests
in a sorted `array` (8 bytes each), with a small set for the newest keys,
merged into the array when it fills. Two keys share a digest with probability
about n² / 2^65 (3 in 10^10 at 100,000 keys); such a key would be skipped as a
repeat with a WARNING naming it, never silently.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from heapq import merge

import msgspec

#: Keys held in the set before they are merged into the sorted array.
_RECENT = 4096


def digest(key: object) -> int:
    """A key's 64-bit digest (keys are JSON-encodable: strings and tuples of them)."""
    raw = hashlib.blake2b(msgspec.json.encode(key), digest_size=8).digest()
    return int.from_bytes(raw, "big")


class SeenKeys:
    """A set of keys that only grows (or is cleared), at 8 bytes per key."""

    def __init__(self) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def add(self, key: object) -> bool:
        """Remember `key`; False if it was already there."""
        value = digest(key)
        if value in self._recent:
            return False
        position = bisect_left(self._sorted, value)
        if position < len(self._sorted) and self._sorted[position] == value:
            return False
        self._recent.add(value)
        if len(self._recent) >= _RECENT:
            # A lazy merge: no list of every key as Python ints, even briefly.
            self._sorted = array("Q", merge(self._sorted, sorted(self._recent)))
            self._recent.clear()
        return True

    def clear(self) -> None:
        """Forget every key (a new parent, whose keys cannot repeat the last one's)."""
        self._sorted = array("Q")
        self._recent.clear()
