"""The tap: its settings, its services (client, listings, metrics) and its streams."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from types import FrameType
from typing import IO, Any, cast

import click
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.exceptions import ConfigValidationError

from tap_metronome import stopping, streams
from tap_metronome.client import MetronomeClient, Pacer, RetryPolicy
from tap_metronome.errors import InputError, one_line
from tap_metronome.flattening import FlatteningMapper, flattening_config
from tap_metronome.inputs import (
    ReadOnce,
    check_catalog,
    config_values,
    json_object_text,
    read_json_object,
)
from tap_metronome.listings import Listings
from tap_metronome.logs import protect_logs
from tap_metronome.metrics import HttpMetrics
from tap_metronome.output import BufferedRecordWriter, write_stdout
from tap_metronome.settings import (
    DEFAULT_API_URL,
    SETTING_NAMES,
    Settings,
    parse_settings,
)
from tap_metronome.state import forget_unlisted, read_state
from tap_metronome.stopping import StopRequest
from tap_metronome.streams.base import ParentStream
from tap_metronome.streams.invoices import InvoiceReads

TOKEN_ENV_VAR = "TAP_METRONOME_AUTH_TOKEN"  # noqa: S105 - a variable name, not a secret


class TapMetronome(Tap):
    """Singer tap for Metronome billing data."""

    name = "tap-metronome"
    package_name = "tap-metronome"
    message_writer_class = BufferedRecordWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "auth_token",
            th.StringType,
            required=True,
            secret=True,
            title="Auth token",
            description=(
                "Metronome API bearer token. Also read from TAP_METRONOME_AUTH_TOKEN."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            title="API URL",
            description=(
                "Base URL of the Metronome API, without /v1 (https; http only for "
                "loopback)."
            ),
        ),
        th.Property(
            "start_date",
            th.StringType,
            required=True,
            title="Start date",
            description=(
                "First day of costs and invoice billing periods to sync: YYYY-MM-DD "
                "or an RFC 3339 date-time "
                "(UTC when it has no offset), from 1970-01-01."
            ),
        ),
        th.Property(
            "end_date",
            th.StringType,
            title="End date",
            description=(
                "Optional exclusive end of the costs to sync, in the same formats; "
                "default and latest: the end of the current UTC day."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            default=100,
            title="Page size",
            description="Items per list request, 1..100 (100 is the API's cap).",
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=60,
            title="Request timeout",
            description=(
                "Seconds within which a whole response (connection, headers and body) "
                "must arrive before it is retried."
            ),
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            default=5,
            title="Max retries",
            description=(
                "Retries of one request after a 408, 429, 5xx, timeout, connection "
                "error or truncated body."
            ),
        ),
        th.Property(
            "max_retry_seconds",
            th.NumberType,
            default=600,
            title="Max retry seconds",
            description=(
                "Upper bound on the total time one request may spend waiting between "
                "its retries; past it the run stops with an error."
            ),
        ),
        th.Property(
            "retry_backoff_seconds",
            th.NumberType,
            default=1,
            title="Retry backoff seconds",
            description=(
                "First backoff wait when the API gives no Retry-After; it doubles on "
                "each retry (with jitter), capped at 60 s."
            ),
        ),
        th.Property(
            "max_requests_per_second",
            th.NumberType,
            default=8,
            title="Max requests per second",
            description=(
                "One pacing budget shared by every request of the run, retries "
                "included. Default 8: the top of the 5-8 req/s that integrations "
                "report as safe for Metronome."
            ),
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType,
            default=8,
            title="Max concurrency",
            description=(
                "Requests in flight at once across customers (customer_costs) and "
                "plans (plan_charges), all within max_requests_per_second; 1 is "
                "sequential."
            ),
        ),
        th.Property(
            "include_archived_customers",
            th.BooleanType,
            default=True,
            title="Include archived customers",
            description="Also list archived customers (a second pass over /v1/customers).",
        ),
        th.Property(
            "customer_ids",
            th.ArrayType(th.StringType),
            title="Customer IDs",
            description=(
                "Restrict every per-customer stream to these Metronome customer ids "
                "(uuids, at least one), e.g. one shard of an account; default: "
                "every listed customer."
            ),
        ),
        th.Property(
            "lookback_days",
            th.IntegerType,
            default=35,
            title="Lookback days",
            description=(
                "Days before each customer's bookmark that every incremental run "
                "re-reads, because late usage (up to 34 days) changes pending costs."
            ),
        ),
        th.Property(
            "invoices_lookback_days",
            th.IntegerType,
            default=35,
            title="Invoices lookback days",
            description=(
                "Each incremental run re-reads invoices whose billing period starts "
                "at least this many days back (and from the oldest draft), so that "
                "recent voids and corrections are seen."
            ),
        ),
        th.Property(
            "usage_lookback_days",
            th.IntegerType,
            default=35,
            title="Usage lookback days",
            description=(
                "Days before the usage bookmark that every incremental run re-reads "
                "(at least 1, so today's usage is read again), because Metronome "
                "accepts usage events up to 34 days late."
            ),
        ),
        th.Property(
            "usage_window_size",
            th.StringType,
            default="day",
            allowed_values=["day", "hour"],
            title="Usage window size",
            description="One usage row per customer, billable metric and day, or hour.",
        ),
        th.Property(
            "unexpected_values",
            th.StringType,
            default="keep",
            allowed_values=["keep", "fail"],
            title="Unexpected values",
            description=(
                "What a value that does not match its stream's schema does, in a field "
                "the tap does not compute with: keep (the record is written with the "
                "field null and the value in its _unexpected_values column, with a "
                "WARNING) or fail (the run stops naming the stream and field). Keys, "
                "replication keys, dates and amounts the tap computes with always stop "
                "the run."
            ),
        ),
        th.Property(
            "progress_interval_seconds",
            th.NumberType,
            default=30,
            title="Progress interval seconds",
            description=(
                "Seconds between customer_costs progress lines (customers done/total, "
                "requests, records, retries, time left)."
            ),
        ),
        th.Property(
            "user_agent",
            th.StringType,
            title="User agent",
            description="User-Agent header sent with every request.",
        ),
        th.Property(
            "emit_activate_version_messages",
            th.BooleanType,
            default=False,
            title="Emit ACTIVATE_VERSION messages",
            description=(
                "Send ACTIVATE_VERSION messages around each full-table stream "
                "(all but customer_costs), so that targets that support them "
                "mark rows deleted at the source (e.g. target-postgres sets "
                "_sdc_deleted_at)."
            ),
        ),
    ).to_dict()

    def __init__(
        self,
        *,
        config: Mapping[str, Any] | str | PurePath | list[Any] | None = None,
        state: Any = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        **kwargs: Any,
    ) -> None:
        self.stop = StopRequest()
        self._client: MetronomeClient | None = None
        #: Parent listings (customers, plans), read once by whichever stream asks.
        self.listings = Listings(self._list_parent, logging.getLogger(self.name))
        values = config_values(config)
        if isinstance(state, str | PurePath):  # a path, as the SDK also accepts
            state = read_json_object(str(state), "state")
        if not values.get("auth_token") and os.environ.get(TOKEN_ENV_VAR):
            # The token may live only in the environment, without `--config ENV`.
            parse_env_config = True
        if parse_env_config:
            values |= self.environment_config()
        settings, errors, warnings = parse_settings(values)
        token = values.get("auth_token")
        if isinstance(token, str):
            protect_logs({token, token.strip()})
        if validate_config:
            if errors:
                raise ConfigValidationError("Config validation failed", errors=errors)
            state = read_state(state, self.logger)
        self.settings: Settings | None = settings
        if settings is not None:
            values = {
                key: value for key, value in values.items() if key not in SETTING_NAMES
            } | settings.normalized()
        super().__init__(
            config={key: value for key, value in values.items() if value is not None},
            state=state,
            parse_env_config=False,
            validate_config=validate_config,
            **kwargs,
        )
        for warning in warnings:
            self.logger.warning("%s", warning)

    def setup_mapper(self) -> None:
        """The SDK's stream maps and flattening, with records flattened safely.

        As `Tap.setup_mapper`, with `flattening.FlatteningMapper` for the SDK's
        `PluginMapper` (singer-sdk 0.54.9 crashes on a record key such as
        `description` when flattening), and flattened names kept within
        PostgreSQL's 63 characters unless `flattening_max_key_length` says.
        """
        self.mapper = FlatteningMapper(
            plugin_config=flattening_config(dict(self.config)), logger=self.logger
        )
        self.mapper.register_raw_streams_from_catalog(self.catalog)

    @classmethod
    def environment_config(cls) -> dict[str, Any]:
        """Settings from `TAP_METRONOME_*` variables (and a `.env` file).

        The tap's own settings are read as strings and parsed by `settings`, so
        that `TAP_METRONOME_MAX_REQUESTS_PER_SECOND=0.5` works and a bad value is
        named; the SDK's settings (stream maps, flattening, ...) are parsed by the
        SDK.
        """
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        sdk_settings = {
            "properties": {
                name: prop
                for name, prop in schema["properties"].items()
                if name not in SETTING_NAMES
            }
        }
        try:
            values = parse_environment_config(sdk_settings, cls._env_var_prefix)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the user's input
            msg = (
                f"environment: a {cls._env_var_prefix}* variable cannot be read: "
                f"{one_line(exc, 200)}"
            )
            raise InputError(msg) from None
        for name in SETTING_NAMES:
            variable = f"{cls._env_var_prefix}{name.upper()}"
            if variable in os.environ:
                values[name] = os.environ[variable]
        return values

    @classmethod
    def cb_config(
        cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]
    ) -> Any:
        """Read each `--config` file once, refusing an unreadable one with one line.

        A file may be a pipe (`/dev/stdin`, `<(...)`), which can be read only
        once: the SDK's callback is given only `ENV`, and the files' values,
        merged in order as the SDK would, are handed to it in what it returns.
        """
        config_input = super().cb_config(
            ctx, param, tuple(path for path in value if path == "ENV")
        )
        for path in value:
            if path != "ENV":
                config_input.config |= read_json_object(path, "--config")
        return config_input

    @classmethod
    def invoke(
        cls,
        *,
        state: IO[str] | None = None,
        catalog: IO[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Run the tap; `--state` and `--catalog` must be JSON objects."""
        if state is not None:
            state = cast("IO[str]", ReadOnce(json_object_text(state, "--state")))
        if catalog is not None:
            text = json_object_text(catalog, "--catalog")
            check_catalog(json.loads(text))
            catalog = cast("IO[str]", ReadOnce(text))
        stopping.inputs_read()
        super().invoke(state=state, catalog=catalog, **kwargs)

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """Discover; once it starts, a signal is noted, not raised (see `stopping`)."""
        if value:
            stopping.inputs_read()
        super().cb_discover(ctx, param, value)

    def run_discovery(self) -> str:
        """Write the catalog as the SDK would, through the one stdout path."""
        with contextlib.redirect_stdout(io.StringIO()) as text:
            catalog_text = super().run_discovery()
        write_stdout(text.getvalue().encode(), "the catalog")
        return catalog_text

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """Write `--about` as the SDK would, through the one stdout path."""
        with contextlib.redirect_stdout(io.StringIO()) as text:
            super().print_about(output_format)
        write_stdout(text.getvalue().encode(), "the --about output")

    @classmethod
    def cb_version(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """Write `--version` as the SDK would, through the one stdout path."""
        if value:
            cls.print_version(
                print_fn=lambda line: write_stdout(f"{line}\n".encode(), "the version")
            )
            ctx.exit()

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Ask the sync to stop at its next safe point (see `stopping`).

        Replaces the SDK's handler, which writes STATE and exits 0 from inside
        the handler, in the middle of whatever the main thread was writing.
        """
        stopping.notify(signum)

    @property
    def max_concurrency(self) -> int:
        """Worker threads for partitioned streams."""
        return self.require_settings().max_concurrency

    def require_settings(self) -> Settings:
        """The parsed settings (a sync always has them: the config was validated)."""
        if self.settings is None:
            msg = "config: the settings were not validated; run without --discover"
            raise InputError(msg)
        return self.settings

    @property
    def client(self) -> MetronomeClient:
        """The one HTTP client of the run, shared by every stream."""
        if self._client is None:
            settings = self.require_settings()
            self._client = MetronomeClient(
                api_url=settings.api_url,
                auth_token=settings.auth_token,
                timeout=settings.request_timeout,
                user_agent=settings.user_agent
                or f"tap-metronome/{self.plugin_version}",
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
        return HttpMetrics(self.metrics_logger)

    def _list_parent(self, parent: str) -> Iterable[dict[str, Any]]:
        stream = self.streams[parent]
        if not isinstance(stream, ParentStream):
            msg = f"{parent} is not a parent listing"
            raise TypeError(msg)
        return stream.listing()

    @functools.cached_property
    def invoice_reads(self) -> InvoiceReads:
        """What invoices and invoice_line_items share in this run (one read)."""
        return InvoiceReads()

    def parent_ids(self, parent: str, child: str) -> list[str]:
        """The ids of `parent` (customers or plans) for the per-parent stream `child`.

        The `customer_ids` setting, when set, is the customers of every
        per-customer stream (a shard of the account): no listing is read.
        """
        configured = self.require_settings().customer_ids
        if parent == "customers" and configured:
            return list(configured)
        ids = self.listings.ids(parent, requested_by=child)
        if parent == "customers" and self.streams[child].ABORT_AT_RECORD_COUNT is None:
            # The whole listing (not a dry run's one page): the bookmarks of
            # customers gone are dropped now, not carried into every STATE
            # message until their stream runs.
            forget_unlisted(self.state, ids, self.logger)
        return ids

    def discover_streams(self) -> list[streams.MetronomeStream]:
        """One instance of every stream (the SDK syncs them in name order)."""
        return [stream_type(self) for stream_type in streams.STREAM_TYPES]
