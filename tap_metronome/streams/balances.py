"""Commits and credits: balances, ledger entries and daily snapshots from one read.

`POST /v1/contracts/customerBalances/list` with `include_ledgers: true` answers
each commit and credit of a customer with its balance and its ledger (the
ordered events that move the balance: segment starts, invoice deductions,
rollovers, expirations, manual entries...). Three streams are made of it:

- `balances`: each commit or credit as it came, without its ledger;
- `balance_ledger_entries`: one row per ledger entry;
- `balance_snapshots`: one narrow row per commit or credit per UTC day of the
  run, so that past balances (a month end) survive the next run. An archived
  customer settled by the archived rule (`archived`) is not read again, so its
  snapshots stop at its last read: that last row is its final balance.

The SDK syncs them by name (ledger entries, snapshots, balances); whichever
runs first reads each customer once and keeps the answer (`shared.Spill`) for
the others still to run: one request per customer (and page) for the three.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from tap_metronome import times
from tap_metronome.errors import ResponseError, one_line
from tap_metronome.pagination import PageStyle
from tap_metronome.streams.base import ListStream, nested
from tap_metronome.streams.partitions import Partitions
from tap_metronome.streams.shared import Spill

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

BALANCES_PATH = "/v1/contracts/customerBalances/list"

#: Ledger entry fields that tell one entry of a commit's or credit's ledger from
#: another. Not the amount: a deduction for a draft invoice changes with usage,
#: and would otherwise be a new row each run (the rule of line items' keys).
LEDGER_IDENTITY_FIELDS = (
    "type",
    "timestamp",
    "segment_id",
    "invoice_id",
    "contract_id",
    "new_contract_id",
    "reason",
)
_IDENTITY_ENCODER = msgspec.json.Encoder(order="sorted", decimal_format="number")


def ledger_entry_keys(entries: list[dict[str, Any]]) -> list[str]:
    """A key per ledger entry, stable across runs: a hash of its identity fields.

    Entries identical in all of them (two equal manual entries) get `#2`, `#3`...
    in the order the API lists them, as invoice line items do.
    """
    seen: Counter[str] = Counter()
    keys = []
    for entry in entries:
        identity = {name: entry.get(name) for name in LEDGER_IDENTITY_FIELDS}
        digest = hashlib.sha256(_IDENTITY_ENCODER.encode(identity)).hexdigest()[:32]
        seen[digest] += 1
        keys.append(digest if seen[digest] == 1 else f"{digest}#{seen[digest]}")
    return keys


class BalanceFamilyStream(ListStream):
    """What the three streams share: the request, the one read per customer."""

    path = BALANCES_PATH
    method = "POST"
    parent = "customers"
    parent_in = "body"
    body: ClassVar[dict[str, Any]] = {
        "include_archived": True,
        "include_balance": True,
        "include_contract_balances": True,
        "include_ledgers": True,
    }
    page_style = PageStyle.BODY_CURSOR_PAGE
    max_page_size = 25
    #: The streams made of this read.
    members: ClassVar[tuple[str, ...]] = (
        "balance_ledger_entries",
        "balance_snapshots",
        "balances",
    )

    def rows(self, customer_id: str, items: list[dict[str, Any]]) -> Iterator[dict]:
        """The records one customer's commits and credits make (each stream says how)."""
        raise NotImplementedError

    def begin(self) -> None:
        """Before the first customer (a snapshot takes the run's day here)."""

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Each customer's rows, from the family's one read of the customer."""
        self.begin()
        shared = self.services.shared_read(self.path)
        others = [
            (name, self.services.stream(name).selected)
            for name in self.members
            if name != self.name
        ]
        tee = not self.dry_run and shared.still_to_run(others)
        if tee and shared.spill is None:
            shared.spill = Spill()
        spill = shared.spill

        def read(customer_id: str) -> tuple[list[dict[str, Any]], bool]:
            if spill is not None:
                kept = spill.take(customer_id)
                if kept is not None:
                    return kept, False
            return self.fetch(customer_id), True

        partitions: Partitions[tuple[list[dict[str, Any]], bool]] = Partitions(
            self,
            self.services.parent_ids("customers", self.name, dry_run=self.dry_run),
            parent="customers",
            on_skip=spill.put_skip if tee and spill is not None else None,
        )
        rows = 0
        try:
            for customer_id, (items, fetched) in partitions.fetch(read):
                if tee and fetched and spill is not None:
                    spill.put(customer_id, items)
                for row in self.rows(customer_id, items):
                    rows += 1
                    yield row
                partitions.done(rows)
        finally:
            shared.finished.add(self.name)
            if not tee:
                shared.close()
        partitions.summary(
            f"{rows} records",
            f"{self.repeats_skipped} repeated items skipped",
            self.unexpected.summary(),
        )

    def fetch(self, customer_id: str) -> list[dict[str, Any]]:
        """One customer's commits and credits, ledgers included (a worker thread)."""
        body = {**self.body, "customer_id": customer_id}
        return list(self.list_items(self.path, self.params, body))


class BalancesStream(BalanceFamilyStream):
    """Every customer's commits and credits with balances, archived ones too."""

    name = "balances"
    description = (
        "A commit or a credit (type PREPAID, POSTPAID or CREDIT), archived ones "
        "and contract-level ones included, with its balance; its ledger is the "
        "balance_ledger_entries stream."
    )
    primary_keys: ClassVar[list[str]] = ["id"]
    #: Fields of the item this stream leaves out (another stream has them).
    omitted_fields: ClassVar[tuple[str, ...]] = ("ledger",)

    def record_from_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item without its ledger: rows of `balance_ledger_entries` instead."""
        return {k: v for k, v in item.items() if k not in self.omitted_fields}

    def rows(self, customer_id: str, items: list[dict[str, Any]]) -> Iterator[dict]:
        """The commits and credits as the API lists them, with the customer."""
        for item in items:
            yield self.record(item, customer_id)


class BalanceLedgerEntriesStream(BalanceFamilyStream):
    """One row per ledger entry of every commit and credit, keyed by the tap."""

    name = "balance_ledger_entries"
    description = (
        "A ledger entry of a commit or credit (every entry type of the spec), with "
        "the commit's or credit's id, type and contract; entry_key is a hash of "
        "the entry's type, timestamp, segment, invoice, contracts and reason "
        "(#2, #3... for identical entries, in API order), not of its amount."
    )
    primary_keys: ClassVar[list[str]] = ["commit_or_credit_id", "entry_key"]
    strict_fields = frozenset({"customer_id"})  # added by the tap

    def rows(self, customer_id: str, items: list[dict[str, Any]]) -> Iterator[dict]:
        """Each commit's or credit's ledger entries, with its ids and the key."""
        for item in items:
            entries = item.get("ledger")
            if entries is None:
                continue  # no ledger sent: no entries
            if not isinstance(entries, list) or not all(
                isinstance(entry, dict) for entry in entries
            ):
                msg = (
                    f"Stream {self.name}: {self.method} {self.path} returned "
                    f"{one_line(item.get('type'), 20)} {one_line(item.get('id'), 40)} "
                    f"of customer {customer_id} whose ledger is not a list of objects"
                )
                raise ResponseError(msg)
            for key, entry in zip(ledger_entry_keys(entries), entries, strict=True):
                yield {
                    **entry,  # the tap's fields last: the API's cannot replace keys
                    "customer_id": customer_id,
                    "commit_or_credit_id": item.get("id"),
                    "commit_or_credit_type": item.get("type"),
                    "commit_or_credit_contract_id": nested(item, "contract", "id"),
                    "entry_key": key,
                }


class BalanceSnapshotsStream(BalanceFamilyStream):
    """One row per commit or credit per UTC day: the balance as read that day."""

    name = "balance_snapshots"
    description = (
        "A commit's or credit's balance on the UTC day of the run (snapshot_date): "
        "a later run the same day replaces the row, the next day adds one, so a "
        "month end's balance is the snapshot of its last day. The credit type is "
        "the balance's unit."
    )
    primary_keys: ClassVar[list[str]] = ["id", "snapshot_date"]
    replication_key = "snapshot_date"  # type: ignore[assignment]  # ListStream: None
    is_sorted = False
    strict_fields = frozenset({"customer_id"})  # added by the tap
    snapshot_date = ""

    def begin(self) -> None:
        """The run's UTC day, taken once: a run across midnight has one date."""
        self.snapshot_date = times.utc_now().date().isoformat()

    def rows(self, customer_id: str, items: list[dict[str, Any]]) -> Iterator[dict]:
        """Each commit's or credit's balance, ids, name, product and unit."""
        for item in items:
            yield {
                "id": item.get("id"),
                "snapshot_date": self.snapshot_date,
                "customer_id": customer_id,
                "contract_id": nested(item, "contract", "id"),
                "type": item.get("type"),
                "name": item.get("name"),
                "product_id": nested(item, "product", "id"),
                "product_name": nested(item, "product", "name"),
                "credit_type_id": nested(item, "access_schedule", "credit_type", "id"),
                "credit_type_name": nested(
                    item, "access_schedule", "credit_type", "name"
                ),
                "balance": item.get("balance"),
            }


__all__ = [
    "BalanceLedgerEntriesStream",
    "BalanceSnapshotsStream",
    "BalancesStream",
    "ledger_entry_keys",
]
