"""The streams: which endpoint each reads and how API items become records."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Iterator
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from singer_sdk import SchemaDirectory, Stream, StreamSchema

from tap_metronome.client import MetronomeAPIError
from tap_metronome.pagination import iter_pages

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_metronome.tap import TapMetronome


def schema_dir() -> Traversable:
    """Where the stream schemas are, whatever the working directory.

    A built wheel carries them as `tap_metronome/schemas`; an editable install
    (Meltano's `pip_url: -e .`) reads the repository's top-level `schemas/`.
    """
    packaged = importlib.resources.files("tap_metronome") / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas"


class MetronomeStream(Stream):
    """A stream read from Metronome list endpoints through the tap's one client."""

    schema = StreamSchema(SchemaDirectory(schema_dir()))
    _tap: TapMetronome

    @property
    def page_size(self) -> int:
        """Items per list request (the API caps `limit` at 100)."""
        return int(self.config.get("page_size", 100))

    def list_all(
        self, path: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, in API order."""
        for page in iter_pages(
            self._tap.client,
            path,
            stream=self.name,
            page_size=self.page_size,
            params=params,
        ):
            yield from page.records


class CustomersStream(MetronomeStream):
    """Active customers, then archived ones (a second pass with `only_archived`)."""

    name = "customers"
    path = "/v1/customers"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield each customer once, even if it was archived between the passes."""
        seen: set[str] = set()
        passes: list[dict[str, Any]] = [{}]
        if self.config.get("include_archived_customers", True):
            passes.append({"only_archived": "true"})
        duplicates = 0
        for params in passes:
            for customer in self.list_all(self.path, params):
                if customer["id"] in seen:
                    duplicates += 1
                    continue
                seen.add(customer["id"])
                yield customer
        if duplicates:
            self.logger.info(
                "%d customers were listed both as active and as archived "
                "(archived during the sync); each was emitted once",
                duplicates,
            )
        self._tap.remember_ids(self.name, list(seen))


class PlansStream(MetronomeStream):
    """All plans; the parent listing of plan charges."""

    name = "plans"
    path = "/v1/plans"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield every plan and remember the ids for `plan_charges`."""
        ids: list[str] = []
        for plan in self.list_all(self.path):
            ids.append(plan["id"])
            yield plan
        self._tap.remember_ids(self.name, ids)


class PlanChargesStream(MetronomeStream):
    """The charges of every plan; the API item has no plan id, so the tap adds it."""

    name = "plan_charges"
    primary_keys: ClassVar[list[str]] = ["plan_id", "id"]
    replication_key = None

    def charges_of(self, plan_id: str) -> list[dict[str, Any]]:
        """All charges of one plan, each carrying `plan_id`."""
        path = f"/v1/planDetails/{quote(plan_id, safe='')}/charges"
        return [{"plan_id": plan_id, **charge} for charge in self.list_all(path)]

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield the charges plan by plan; a plan deleted since listing is skipped."""
        skipped = 0
        plan_ids = self._tap.known_ids("plans", self.name)
        for plan_id in plan_ids:
            try:
                charges = self.charges_of(plan_id)
            except MetronomeAPIError as exc:
                if exc.status != 404:
                    raise
                skipped += 1
                self.logger.warning(
                    "Skipping plan %s: its charges answered 404 (%s); "
                    "it was probably deleted after the plans listing",
                    plan_id,
                    exc.api_message,
                )
                continue
            yield from charges
        self.logger.info(
            "plan_charges: %d plans read, %d skipped", len(plan_ids) - skipped, skipped
        )
