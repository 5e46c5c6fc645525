"""What a run's streams share, handed to each stream as one typed object.

Streams need the run's settings, its one HTTP client, the parent listings, the
stop request, the HTTP metrics and the SDK's writers. They used to reach into
the tap through the SDK's private `Stream._tap` about ten ways; here each is
one attribute of `Services`, which the tap builds before its streams and passes
to each (`MetronomeStream.__init__`). No module under `streams/` imports the
tap: what only the SDK's tap has (its state, its writers, its streams) comes
through the small `Host` protocol.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from singer_sdk.helpers._state import StateWriter

from tap_metronome.archived import ARCHIVED_READ_ON
from tap_metronome.client import MetronomeClient, Pacer, RetryPolicy
from tap_metronome.errors import InputError
from tap_metronome.listings import Listings
from tap_metronome.metrics import HttpMetrics
from tap_metronome.settings import Settings
from tap_metronome.state import forget_unlisted
from tap_metronome.stopping import StopRequest

if TYPE_CHECKING:
    from singer_sdk import Stream
    from singer_sdk.helpers.types import TapState

    from tap_metronome.streams.shared import SharedRead


class Host(Protocol):
    """What of the SDK's tap the streams use: its state, writers and streams."""

    @property
    def state(self) -> Mapping[str, object]: ...  # noqa: D102

    @property
    def streams(self) -> Mapping[str, Stream]: ...  # noqa: D102

    @property
    def state_writer(self) -> StateWriter: ...  # noqa: D102

    @property
    def message_writer(self) -> object: ...  # noqa: D102

    @property
    def metrics_logger(self) -> logging.Logger: ...  # noqa: D102


class Services:
    """The run's settings, client, listings, stop request and metrics."""

    def __init__(
        self,
        host: Host,
        settings: Settings | None,
        *,
        logger: logging.Logger,
        user_agent: str,
    ) -> None:
        self.host = host
        self._settings = settings
        self.logger = logger
        self.user_agent = user_agent
        self.stop = StopRequest()
        #: Parent listings (customers, plans), read once by whichever stream asks.
        self.listings = Listings(self._list_parent, logger)
        self._client: MetronomeClient | None = None
        self._shared_reads: dict[str, SharedRead] = {}

    @property
    def settings(self) -> Settings:
        """The parsed settings (a sync always has them: the config was validated)."""
        if self._settings is None:
            msg = "config: the settings were not validated; run without --discover"
            raise InputError(msg)
        return self._settings

    @property
    def max_concurrency(self) -> int:
        """Worker threads for partitioned streams."""
        return self.settings.max_concurrency

    @property
    def client(self) -> MetronomeClient:
        """The one HTTP client of the run, shared by every stream."""
        if self._client is None:
            settings = self.settings
            self._client = MetronomeClient(
                api_url=settings.api_url,
                auth_token=settings.auth_token,
                timeout=settings.request_timeout,
                user_agent=settings.user_agent or self.user_agent,
                retry=RetryPolicy(
                    max_retries=settings.max_retries,
                    backoff_base=settings.retry_backoff_seconds,
                    max_total_wait=settings.max_retry_seconds,
                ),
                pacer=Pacer(settings.max_requests_per_second),
                logger=self.logger,
                on_response=self.http_metrics.observe,
            )
            self.stop.on_stop(self._client.cancel)
        return self._client

    @functools.cached_property
    def http_metrics(self) -> HttpMetrics:
        """The run's `http_request_duration` / `http_request_count` METRIC points."""
        return HttpMetrics(self.host.metrics_logger)

    def shared_read(self, family: str) -> SharedRead:
        """What the streams of one read share in this run, by the path they read.

        Invoices and invoice line items; balances, their ledger entries and
        snapshots (`streams.shared`).
        """
        from tap_metronome.streams.shared import SharedRead

        return self._shared_reads.setdefault(family, SharedRead())

    def stream(self, name: str) -> Stream:
        """Another stream of this run, by name (a member of the same shared read)."""
        return self.host.streams[name]

    def write_state(self) -> None:
        """Emit the tap's whole state as a STATE message now."""
        self.host.state_writer.write_state(cast("TapState", self.host.state))

    def _list_parent(self, parent: str) -> Iterable[dict[str, Any]]:
        fetch_all = getattr(self.host.streams[parent], "fetch_all", None)
        if fetch_all is None:
            msg = f"{parent} is not a parent stream"
            raise TypeError(msg)
        items: Iterable[dict[str, Any]] = fetch_all()
        return items

    def parent_ids(self, parent: str, child: str, *, dry_run: bool) -> list[str]:
        """The ids of `parent` (customers or plans) for the per-parent stream `child`.

        The `customer_ids` setting, when set, is the customers of every
        per-customer stream (a shard of the account): no listing is read.
        """
        configured = self.settings.customer_ids
        if parent == "customers" and configured:
            return list(configured)
        ids = self.listings.ids(parent, requested_by=child)
        if parent == "customers" and not dry_run:
            # The whole listing (not a dry run's one page): the bookmarks of
            # customers gone are dropped now, not carried into every STATE
            # message until their stream runs.
            bookmark_keys = {
                name: key
                for name, stream in self.host.streams.items()
                if (key := getattr(stream, "bookmark_key", ""))
            }
            forget_unlisted(self.host.state, ids, self.logger, bookmark_keys)
            archived_keys = {
                name: ARCHIVED_READ_ON
                for name, stream in self.host.streams.items()
                if getattr(stream, "keeps_archived_reads", lambda: False)()
            }
            forget_unlisted(self.host.state, ids, self.logger, archived_keys)
        return ids
