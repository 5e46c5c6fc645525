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
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.exceptions import ConfigValidationError

from tap_metronome import setting_table, stopping, streams
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
from tap_metronome.settings import SETTING_NAMES, Settings, parse_settings
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

    #: Generated from the settings table, `setting_table.SETTINGS`.
    config_jsonschema = setting_table.config_jsonschema()

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
