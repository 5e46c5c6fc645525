"""One read per customer for several streams: the spill a family of streams shares.

Why: some responses feed several streams (an invoice listing makes `invoices`
and `invoice_line_items`; a balances listing makes `balances`,
`balance_ledger_entries` and `balance_snapshots`). The SDK syncs one stream at a
time, by name, and a stream can emit only its own records. So the first
selected stream of a family reads each customer's items and, when another
member is selected and still to run, keeps them in a temporary file (`Spill`)
for it: one request per customer (and page) for the whole family, and memory
that does not grow with the account. The last member to run deletes the file.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import IO, Any

import msgspec

from tap_metronome.streams.partitions import SkipReason

_SPILL_ENCODER = msgspec.json.Encoder(decimal_format="number")
_SPILL_DECODER = msgspec.json.Decoder(float_hook=Decimal)


class Spill:
    """Customers' items kept on disk for the family's streams still to run.

    An entry stays until the file is closed: several streams may take it.
    """

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="tap-metronome-")  # noqa: SIM115 - closed by close()
        self._where: dict[str, tuple[int, int, date | None]] = {}
        self._skipped: dict[str, SkipReason] = {}
        self._lock = threading.Lock()  # workers take while the stream thread puts

    def put_skip(self, customer_id: str, error: SkipReason) -> None:
        """Remember a customer the first stream skipped: so are the others."""
        with self._lock:
            self._skipped[customer_id] = error

    def put(
        self, customer_id: str, items: list[dict[str, Any]], since: date | None = None
    ) -> None:
        """Keep one customer's items (read from `since`, if the read has a start)."""
        blob = _SPILL_ENCODER.encode(items)
        with self._lock:
            offset = self._file.seek(0, 2)
            self._file.write(blob)
            self._where[customer_id] = (offset, len(blob), since)

    def take(
        self, customer_id: str, since: date | None = None
    ) -> list[dict[str, Any]] | None:
        """The customer's items if they were read from `since` or earlier.

        Raises the error a skipped customer answered, without a request.
        """
        with self._lock:
            skipped = self._skipped.get(customer_id)
            if skipped is not None:
                raise skipped
            where = self._where.get(customer_id)
            if where is None:
                return None
            offset, length, kept_since = where
            if since is not None and kept_since is not None and kept_since > since:
                return None
            self._file.seek(offset)
            blob = self._file.read(length)
        items: list[dict[str, Any]] = _SPILL_DECODER.decode(blob)
        return items

    def close(self) -> None:
        """Delete the file."""
        self._where.clear()
        self._skipped.clear()
        self._file.close()


class SharedRead:
    """What a family's streams share in one run: who has run, and the spill."""

    def __init__(self) -> None:
        self.spill: Spill | None = None
        self.finished: set[str] = set()

    def still_to_run(self, members: Iterable[tuple[str, bool]]) -> bool:
        """Whether a selected member (name, selected) has not run yet."""
        return any(selected and name not in self.finished for name, selected in members)

    def close(self) -> None:
        """Free the spill once every member is done."""
        if self.spill is not None:
            self.spill.close()
            self.spill = None


__all__ = ["SharedRead", "Spill"]
