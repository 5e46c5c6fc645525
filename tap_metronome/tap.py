"""The tap: its settings, the inputs it is started with, and its streams."""

from __future__ import annotations

import copy
import functools
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path, PurePath
from types import FrameType
from typing import IO, Any

import click
import msgspec
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import Catalog

from tap_metronome import stopping, streams
from tap_metronome.client import MetronomeClient, Pacer, RetryPolicy
from tap_metronome.errors import InputError, one_line
from tap_metronome.flattening import FlatteningMapper, flattening_config
from tap_metronome.listings import Listings
from tap_metronome.logs import protect_logs
from tap_metronome.metrics import HttpMetrics
from tap_metronome.output import BufferedRecordWriter
from tap_metronome.settings import (
    DEFAULT_API_URL,
    SETTING_NAMES,
    Settings,
    parse_instant,
    parse_settings,
)
from tap_metronome.stopping import StopRequest
from tap_metronome.streams.base import ParentStream
from tap_metronome.streams.invoices import REREAD_FROM, InvoiceReads
from tap_metronome.streams.usage import CUSTOMER_FILTER
from tap_metronome.windows import (
    SYNCED_UNTIL,
    CustomerBookmarks,
    end_of_today,
    instant_text,
)

#: The most `--config`, `--state` or `--catalog` may hold; a larger one (or
#: `/dev/zero`) is refused after reading one byte more. A state lists each
#: customer's bookmark: about 40 bytes per customer id, so 100,000 customers
#: make ~4 MiB and even ten million stay far below; a catalog is ~100 KiB.
#: Parsing a full 256 MiB input takes about 1 GiB, which a host can still give.
MAX_INPUT_BYTES = 256 * 1024 * 1024
_READ_CHUNK = 1024 * 1024

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
        values = _config_values(config)
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
            state = io.StringIO(_json_object_text(state, "--state"))
        if catalog is not None:
            text = _json_object_text(catalog, "--catalog")
            check_catalog(json.loads(text))
            catalog = io.StringIO(text)
        stopping.inputs_read()
        super().invoke(state=state, catalog=catalog, **kwargs)

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """Discover; once it starts, a signal is noted, not raised (see `stopping`)."""
        if value:
            stopping.inputs_read()
        super().cb_discover(ctx, param, value)

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
        return self.listings.ids(parent, requested_by=child)

    def discover_streams(self) -> list[streams.MetronomeStream]:
        """One instance of every stream (the SDK syncs them in name order)."""
        return [stream_type(self) for stream_type in streams.STREAM_TYPES]


def _config_values(config: Any) -> dict[str, Any]:
    """The config as one dict, from a dict or (as the SDK also accepts) file paths."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    paths = [config] if isinstance(config, str | PurePath) else list(config)
    values: dict[str, Any] = {}
    for path in paths:
        values |= read_json_object(str(path), "config")
    return values


def read_json_object(path: str, option: str) -> dict[str, Any]:
    """A JSON object from a file, or `InputError` naming the option and the file."""
    return _json_object(read_json(path, option), f"{option} {one_line(path, 200)}")


def read_json(path: str, option: str) -> Any:
    """Any JSON value from a file (numbers with a fraction as Decimal), or `InputError`."""
    shown = one_line(path, 200)
    try:
        with Path(path).open("rb") as stream:
            text = _read_capped(stream, f"{option} {shown}").decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        msg = f"{option} {shown}: cannot read the file ({reason})"
        raise InputError(msg) from None
    return _parse_json(text, f"{option} {shown}")


def _json_object_text(handle: IO[str], option: str) -> str:
    name = getattr(handle, "name", None)
    where = f"{option} {one_line(name, 200)}" if isinstance(name, str) else option
    try:
        binary = getattr(handle, "buffer", None)
        if binary is not None:
            text = _read_capped(binary, where).decode("utf-8")
        elif len(text := handle.read(MAX_INPUT_BYTES + 1)) > MAX_INPUT_BYTES:
            raise _too_large(where)
    except (OSError, UnicodeDecodeError):
        msg = f"{option}: cannot read the file (not UTF-8 text?)"
        raise InputError(msg) from None
    _parse_object(text, option)
    return text


def _read_capped(stream: IO[bytes], where: str) -> bytes:
    """All of `stream`, reading at most `MAX_INPUT_BYTES` + 1 bytes, or `InputError`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(_READ_CHUNK, MAX_INPUT_BYTES + 1 - size)):
        size += len(chunk)
        if size > MAX_INPUT_BYTES:
            raise _too_large(where)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(where: str) -> InputError:
    return InputError(f"{where}: larger than {MAX_INPUT_BYTES // 2**20} MiB")


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        msg = f"{where}: not valid JSON (line {line})"
        raise InputError(msg) from None
    except RecursionError:
        msg = f"{where}: JSON nested too deeply"
        raise InputError(msg) from None


def _parse_object(text: str, where: str) -> dict[str, Any]:
    return _json_object(_parse_json(text, where), where)


def _json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{where}: must be a JSON object, not {type(value).__name__}"
        raise InputError(msg)
    return value


def check_catalog(catalog: dict[str, Any]) -> None:
    """Refuse, with one line naming `--catalog`, a catalog the SDK cannot read."""
    problem = None
    entries = catalog.get("streams")
    if not isinstance(entries, list):
        problem = "streams must be a list"
    else:
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(
                entry.get("tap_stream_id"), str
            ):
                problem = f"streams[{position}] needs a tap_stream_id string"
            elif not isinstance(entry.get("schema"), dict) or not isinstance(
                entry["schema"].get("properties", {}), dict
            ):
                problem = f"streams[{position}].schema must be a JSON Schema object"
            elif not isinstance(entry.get("metadata", []), list) or not all(
                isinstance(item, dict)
                and isinstance(item.get("breadcrumb"), list)
                and isinstance(item.get("metadata"), dict)
                for item in entry.get("metadata", [])
            ):
                problem = (
                    f"streams[{position}].metadata must be a list of "
                    "{breadcrumb, metadata} objects"
                )
            if problem:
                break
    if problem is None:
        try:
            Catalog.from_dict(catalog)
        except Exception as exc:  # noqa: BLE001 - any failure is the catalog's
            problem = one_line(f"{type(exc).__name__}: {exc}", 200)
    if problem is not None:
        msg = f"--catalog: not a Singer catalog the tap can use: {problem}"
        raise InputError(msg)


def _no_constant(name: str) -> Any:
    """JSON has no NaN or Infinity; Python's parser accepts them unless told."""
    msg = f"{name} is not a JSON value"
    raise ValueError(msg)


#: Future bookmarks named one by one in the log before the rest are counted.
NAMED_IN_LOG = 20
#: Streams with per-customer bookmarks, and their state key.
CUSTOMER_BOOKMARKS = {
    "customer_costs": SYNCED_UNTIL,
    "invoices": REREAD_FROM,
    "invoice_line_items": REREAD_FROM,
}
#: The SDK's own per-stream state keys, which the tap does not read.
_SDK_STATE_KEYS = ("replication_key", "replication_key_value", "progress_markers")


def read_state(state: Any, logger: logging.Logger) -> dict[str, Any] | None:
    """The state to start from, or `InputError` naming what is wrong with it.

    Only what the tap reads is kept for its own streams: `synced_until` for
    customer_costs and `reread_from` for the two invoice streams, without
    bookmarks later than today (no run can have written
    them: the state was edited or corrupted; those customers are re-read from
    `start_date`, which is safe because rows upsert on their key), and nothing for
    the full-table streams. The SDK's markers are dropped, so that a bad or future
    marker is neither echoed into new STATE messages nor fatal. The state of
    streams this version does not know is kept when the SDK can read it.
    """
    if state is None:
        return None
    state = _unwrapped(state, logger)
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        bookmarks = {}
    if not isinstance(bookmarks, Mapping):
        msg = "state: bookmarks must be an object of stream name -> stream state"
        raise InputError(msg)
    kept: dict[str, Any] = {}
    for name, stream_state in bookmarks.items():
        where = f"state: bookmarks.{one_line(name, 60)}"
        if not isinstance(stream_state, Mapping):
            msg = f"{where} must be an object"
            raise InputError(msg)
        if name in CUSTOMER_BOOKMARKS:
            key = CUSTOMER_BOOKMARKS[name]
            bookmarks_read, future = CustomerBookmarks.from_state(
                stream_state, latest=end_of_today(), stream=name, key=key
            )
            _warn_future(name, future, logger)
            kept[name] = {key: bookmarks_read.to_state()}
        elif name in ACCOUNT_BOOKMARKS:
            kept[name] = _account_bookmark(name, stream_state, where, logger)
        elif name in streams.STREAM_NAMES:
            kept[name] = {}
        else:
            _check_sdk_state(stream_state, where)
            size = len(_STATE_ENCODER.encode(stream_state))
            if size > MAX_FOREIGN_STATE_BYTES:
                # Echoed into every STATE message of the run (210 MB of it made
                # 4.8 GB of output): a stream this version does not know.
                logger.warning(
                    "state: dropped the bookmarks of %s, a stream this version does "
                    "not know (%d bytes, more than %d): not carried into new states",
                    one_line(name, 60),
                    size,
                    MAX_FOREIGN_STATE_BYTES,
                )
                continue
            kept[name] = dict(stream_state)
    return {**state, "bookmarks": kept}


#: The most state of one unknown stream carried along (a newer version's stream
#: keeps a bookmark or two; anything larger is not state this tap can use).
MAX_FOREIGN_STATE_BYTES = 1 << 20
_STATE_ENCODER = msgspec.json.Encoder(decimal_format="number")


#: Keys a Singer state may have besides `bookmarks` (the SDK's and Singer's).
STATE_KEYS = frozenset({"bookmarks", "currently_syncing"})


def _unwrapped(state: Any, logger: logging.Logger) -> Mapping[str, Any]:
    """The Singer state in `state`, unwrapped from what orchestrators store.

    `{"singer_state": {...}}` (Meltano's system database) and a whole
    `{"type": "STATE", "value": {...}}` message are read with an INFO line; any
    other object with neither `bookmarks` nor only Singer's keys is refused: read
    as "no state", it would be a silent backfill from `start_date`.
    """
    for _ in range(3):  # a wrapper inside a wrapper, at most
        if not isinstance(state, Mapping):
            msg = f"state: must be a JSON object, not {type(state).__name__}"
            raise InputError(msg)
        if "bookmarks" in state:
            return state
        if set(state) == {"singer_state"}:
            logger.info('state: reading the Singer state inside "singer_state"')
            state = state["singer_state"]
        elif state.get("type") == "STATE" and "value" in state:
            logger.info("state: reading the value of a Singer STATE message")
            state = state["value"]
        else:
            break
    if isinstance(state, Mapping) and set(state) <= STATE_KEYS:
        return state
    keys = (
        ", ".join(one_line(key, 40) for key in list(state)[:5])
        if isinstance(state, Mapping)
        else type(state).__name__
    )
    msg = (
        f"state: not a Singer state of this tap (no bookmarks; keys: {keys}); "
        "give the state a run wrote, or none for a full sync"
    )
    raise InputError(msg)


#: Account-wide incremental streams: their one bookmark's state key, and whether
#: it is a date (usage: `synced_until`) or an RFC 3339 instant (the SDK's own).
ACCOUNT_BOOKMARKS = {
    "usage": ("synced_until", date),
    "audit_logs": ("replication_key_value", datetime),
}


def _account_bookmark(
    name: str, stream_state: Mapping[str, Any], where: str, logger: logging.Logger
) -> dict[str, Any]:
    """The stream's one bookmark, checked: unreadable stops, future is dropped.

    An instant is kept in the form the tap writes (UTC, `Z`), so that the SDK,
    which reads it again, never meets `t`, `z` or spaces a person typed.
    """
    key, kind = ACCOUNT_BOOKMARKS[name]
    value = stream_state.get(key)
    if value is None:
        return {}
    try:
        if not isinstance(value, str):
            raise TypeError
        if kind is date:
            day = date.fromisoformat(value)
            # A date bookmark is an exclusive end: the end of today is the latest.
            future = day > end_of_today()
        else:
            moment = parse_instant(value)
            future = moment > datetime.now(UTC)
            value = instant_text(moment)
    except (TypeError, ValueError):
        what = "a date (YYYY-MM-DD)" if kind is date else "an RFC 3339 date-time"
        msg = f"{where}.{key} must be {what}, not {one_line(value, 60)}"
        raise InputError(msg) from None
    if future:
        logger.warning(
            "state: the %s bookmark %s is in the future, which no run can have "
            "written; reading %s from start_date",
            name,
            one_line(value, 60),
            name,
        )
        return {}
    if kind is datetime:
        return {"replication_key": "timestamp", key: value}
    kept = {key: value}
    customers = stream_state.get(CUSTOMER_FILTER)
    if customers is not None:
        if not isinstance(customers, str):
            msg = f"{where}.{CUSTOMER_FILTER} must be a string, not {one_line(customers, 60)}"
            raise InputError(msg)
        kept[CUSTOMER_FILTER] = customers
    return kept


def _check_sdk_state(stream_state: Mapping[str, Any], where: str) -> None:
    markers = stream_state.get("progress_markers")
    if markers is not None and not isinstance(markers, Mapping):
        msg = f"{where}.progress_markers must be an object"
        raise InputError(msg)
    partitions = stream_state.get("partitions")
    if partitions is not None and not (
        isinstance(partitions, list)
        and all(
            isinstance(p, Mapping) and isinstance(p.get("context", {}), Mapping)
            for p in partitions
        )
    ):
        msg = f"{where}.partitions must be a list of objects with a context object"
        raise InputError(msg)


def _warn_future(
    stream: str, future: Mapping[str, date], logger: logging.Logger
) -> None:
    for customer_id, day in list(future.items())[:NAMED_IN_LOG]:
        logger.warning(
            "state: %s bookmark of customer %s is in the future (%s), "
            "which no run can have written; re-reading it from start_date",
            stream,
            customer_id,
            day,
        )
    if len(future) > NAMED_IN_LOG:
        logger.warning(
            "state: %d more %s bookmarks are in the future; re-reading "
            "those customers from start_date too",
            len(future) - NAMED_IN_LOG,
            stream,
        )
