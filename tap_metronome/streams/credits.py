"""Credit grants and their ledger (the Plans API's prepaid credits), account-wide.

Both endpoints cover every customer in one listing, so neither fans out per
customer. They are in the official client (`metronome-sdk`,
`resources/v1/credit_grants.py`) and not in the spec copy: their schemas come
from the client's response models (`scripts/generate_schemas.py`).

`credit_ledger_entries` (POST /v1/credits/listEntries) answers one item per
customer, `{"customer_id", "ledgers": [{"credit_type", "entries",
"pending_entries", ...}]}`: each entry becomes a row, with its customer, credit
type and whether it is pending. Entries have no id; `entry_key` is derived
(`entry_keys`). The stream is incremental on `effective_at`, with the SDK's
own bookmark (`replication_key_value`: the latest `effective_at` written, never
past the run's start, promoted only when the whole listing was written, as the
answer is ordered per customer, not by time). The next run asks for entries
effective on or after the bookmark minus `lookback_days` (`starting_on`),
because deductions post when an invoice is finalized, after the period they are
effective in; entries read again upsert on their key.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from tap_metronome.errors import InputError, ResponseError, one_line
from tap_metronome.pagination import PageStyle
from tap_metronome.state import one_bookmark
from tap_metronome.streams.base import ListStream, MetronomeStream
from tap_metronome.streams.usage import ALL, CUSTOMER_FILTER, customer_filter
from tap_metronome.times import canonical, instant_text, parse_instant

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: The state key of the SDK's bookmark (`replication_key_value`).
REPLICATION_KEY_VALUE = "replication_key_value"
#: Entry fields that tell one ledger entry from another within its customer's
#: ledger of one credit type (not `amount` or `running_balance`: a pending
#: deduction's amount grows with usage, and a running balance changes when an
#: earlier entry is added).
IDENTITY_FIELDS = (
    "credit_grant_id",
    "effective_at",
    "reason",
    "invoice_id",
    "created_by",
)
_IDENTITY_ENCODER = msgspec.json.Encoder(order="sorted", decimal_format="number")


class CreditGrantsStream(ListStream):
    """Every credit grant of the account (Plans API), with its balance and deductions."""

    name = "credit_grants"
    path = "/v1/credits/listGrants"
    description = (
        "Every customer's credit grants (no filter); voided grants are not listed "
        "by the API."
    )
    method = "POST"
    body: ClassVar[dict[str, Any]] = {}
    primary_keys: ClassVar[list[str]] = ["id"]

    def request_body(self) -> Mapping[str, Any] | None:
        """No filter, or the `customer_ids` setting's customers."""
        customer_ids = self.services.settings.customer_ids
        if customer_ids:
            return {"customer_ids": list(customer_ids)}
        return self.body


def entry_keys(
    entries: list[Any], *, customer_id: Any, credit_type_id: Any, pending: bool
) -> list[str]:
    """A key per ledger entry, stable across runs: a hash of its identity fields.

    The customer, credit type and pending flag count too. Entries identical in
    all of these get `#2`, `#3`... in the order the API lists them (the ledger
    is in time order, and a window starting at `starting_on` holds all or none
    of the entries of one instant).
    """
    seen: Counter[str] = Counter()
    keys = []
    for entry in entries:
        identity = {name: entry.get(name) for name in IDENTITY_FIELDS}
        identity |= {
            "customer_id": customer_id,
            "credit_type_id": credit_type_id,
            "pending": pending,
        }
        digest = hashlib.sha256(_IDENTITY_ENCODER.encode(identity)).hexdigest()[:32]
        seen[digest] += 1
        keys.append(digest if seen[digest] == 1 else f"{digest}#{seen[digest]}")
    return keys


def _one_form(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its `effective_at` (replication key, identity) in the tap's form.

    Two spellings of one instant are one key and compare as time; a value that
    is not a date-time is left for the schema check to name.
    """
    value = entry.get("effective_at")
    if not isinstance(value, str):
        return entry
    try:
        text = canonical(value)
    except ValueError:
        return entry
    return entry if text == value else {**entry, "effective_at": text}


def ledger_rows(item: Any, *, where: str) -> Iterator[dict[str, Any]]:
    """The rows of one customer's item: every entry, posted then pending, of each ledger."""
    if not isinstance(item, dict) or not isinstance(item.get("ledgers"), list):
        msg = f"{where} returned an item without a ledgers list: {one_line(item, 80)}"
        raise ResponseError(msg)
    customer_id = item.get("customer_id")
    for ledger in item["ledgers"]:
        if not isinstance(ledger, dict):
            msg = f"{where} returned a ledger that is not an object: {one_line(ledger, 80)}"
            raise ResponseError(msg)
        credit_type = ledger.get("credit_type")
        if not isinstance(credit_type, dict):
            credit_type = {}
        for pending, field in ((False, "entries"), (True, "pending_entries")):
            entries = ledger.get(field)
            if entries is None:
                continue  # none of this kind
            if not isinstance(entries, list) or not all(
                isinstance(e, dict) for e in entries
            ):
                msg = (
                    f"{where} returned {field} of customer "
                    f"{one_line(customer_id, 40)} that are not a list of objects: "
                    f"{one_line(entries, 80)}"
                )
                raise ResponseError(msg)
            entries = [_one_form(e) for e in entries]
            keys = entry_keys(
                entries,
                customer_id=customer_id,
                credit_type_id=credit_type.get("id"),
                pending=pending,
            )
            for key, entry in zip(keys, entries, strict=True):
                yield {
                    "customer_id": customer_id,
                    "credit_type_id": credit_type.get("id"),
                    "credit_type_name": credit_type.get("name"),
                    "entry_key": key,
                    "pending": pending,
                    **entry,
                }


class CreditLedgerEntriesStream(MetronomeStream):
    """Every credit ledger entry (Plans API): grants, deductions, expirations."""

    name = "credit_ledger_entries"
    path = "/v1/credits/listEntries"
    method = "POST"
    page_style = PageStyle.CURSOR_PAGE_WITHOUT_LIMIT
    primary_keys: ClassVar[list[str]] = ["customer_id", "credit_type_id", "entry_key"]
    replication_key = "effective_at"
    # Ordered per customer, not by time: the SDK keeps the latest value seen and
    # promotes it, capped at the run's start, only when the listing is complete.
    is_sorted = False

    @classmethod
    def clean_state(
        cls, stream_state: Mapping[str, Any], where: str, logger: logging.Logger
    ) -> dict[str, Any]:
        """The SDK's `replication_key_value` (an instant) and the customer filter."""
        value = one_bookmark(
            cls.name,
            stream_state,
            where,
            logger,
            key=REPLICATION_KEY_VALUE,
            kind=datetime,
        )
        if value is None:
            return {}
        kept = {"replication_key": cls.replication_key, REPLICATION_KEY_VALUE: value}
        customers = stream_state.get(CUSTOMER_FILTER)
        if customers is not None:
            if not isinstance(customers, str):
                msg = f"{where}.{CUSTOMER_FILTER} must be a string, not {one_line(customers, 60)}"
                raise InputError(msg)
            kept[CUSTOMER_FILTER] = customers
        return kept

    def starting_on(self) -> datetime:
        """`start_date`, or the bookmark minus `lookback_days` (not before `start_date`).

        A bookmark read for other `customer_ids` does not count: the customers
        it adds were never read.
        """
        settings = self.services.settings
        value = self.stream_state.get(REPLICATION_KEY_VALUE)
        customers = customer_filter(settings.customer_ids)
        if not isinstance(value, str):
            return settings.start_date
        if self.stream_state.get(CUSTOMER_FILTER, ALL) != customers:
            self.logger.info(
                "credit_ledger_entries: customer_ids changed since the bookmark %s; "
                "reading from start_date",
                value,
            )
            return settings.start_date
        since = parse_instant(value) - timedelta(days=settings.lookback_days)
        return max(since, settings.start_date)

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every entry effective on or after `starting_on`, one customer at a time."""
        settings = self.services.settings
        start = self.starting_on()
        body: dict[str, Any] = {"starting_on": instant_text(start)}
        # The API refuses an ending_before in the future.
        if settings.end_date is not None and settings.end_date < datetime.now(UTC):
            body["ending_before"] = instant_text(settings.end_date)
        if settings.customer_ids:
            body["customer_ids"] = list(settings.customer_ids)
        where = f"Stream {self.name}: {self.method} {self.path}"
        rows = customers = 0
        pages_before = self.pages_read
        for item in self.list_items(self.path, body=body):
            customers += 1
            for row in ledger_rows(item, where=where):
                rows += 1
                yield row
        if not self.dry_run:
            self.stream_state[CUSTOMER_FILTER] = customer_filter(settings.customer_ids)
        self.logger.info(
            "credit_ledger_entries: %d entries of %d customers from %s, %d requests, "
            "%d repeated entries skipped, %s",
            rows,
            customers,
            body["starting_on"],
            self.pages_read - pages_before,
            self.repeats_skipped,
            self.unexpected.summary(),
        )
