"""Parent listings (customers, plans), read once per run whatever the stream order.

Per-customer and per-plan streams need their parent's ids; the parent stream
itself emits the same items. The SDK syncs streams in name order
(`customer_costs` before `customers`), and a user may select any subset, so the
first stream that needs a listing reads it, and every later one reuses it: each
parent is listed at most once per run, and no stream relies on another having
synced first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any


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
        self._items: dict[str, list[dict[str, Any]]] = {}

    def items(self, parent: str, *, requested_by: str) -> list[dict[str, Any]]:
        """The parent's items as the API listed them (read now if not read yet)."""
        with self._lock:
            if parent not in self._items:
                self._items[parent] = list(self._list_parent(parent))
                if requested_by != parent:
                    self._logger.info(
                        "%s: listed %d %s",
                        requested_by,
                        len(self._items[parent]),
                        parent,
                    )
            return self._items[parent]

    def ids(self, parent: str, *, requested_by: str) -> list[str]:
        """The parent's ids, in listing order, each once."""
        return list(
            dict.fromkeys(
                item["id"] for item in self.items(parent, requested_by=requested_by)
            )
        )
