"""The table of the tap's settings: each declared once, everything else derived.

`TapMetronome.config_jsonschema` (and so `--about`, the Airbyte spec and
docs/settings.md), the defaults and bounds `settings.parse_settings` applies,
and the settings of meltano.yml and the Meltano Hub definition
(`scripts/write_settings.py`) all come from `SETTINGS`; tests fail when a
written copy differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from singer_sdk import typing as th

#: JSON types of settings; an "array" is a list of strings (`customer_ids`).
JsonType = Literal["string", "integer", "number", "boolean", "array"]

DEFAULT_API_URL = "https://api.metronome.com"
#: The API's cap on items per list request.
MAX_PAGE_SIZE = 100
#: Earlier start dates are typos (1970-01-01 is a common "everything").
EARLIEST_START = date(1970, 1, 1)


@dataclass(frozen=True)
class Setting:
    """One setting: how it is declared to users and checked by the tap."""

    name: str
    type: JsonType
    title: str
    description: str
    default: str | int | float | bool | None = None
    required: bool = False
    #: Never echoed; `sensitive` in Meltano, `writeOnly` in the schema.
    secret: bool = False
    #: Inclusive (lowest, highest) of a number, checked by `settings`.
    bounds: tuple[float, float] | None = None
    #: Longest string accepted (it goes into an HTTP header).
    max_length: int | None = None
    #: The allowed values of a string, any case; Meltano shows them as options.
    choices: tuple[str, ...] = ()
    #: A YYYY-MM-DD day or an RFC 3339 date-time (a string to the schema, which
    #: has no format for "either"; a date to Meltano).
    date: bool = False
    #: Read by the Singer SDK itself, not by `settings.parse_settings`.
    read_by_sdk: bool = False

    @property
    def meltano_kind(self) -> str:
        """The `kind` of the setting in meltano.yml and the Hub definition.

        Numbers are strings: Meltano 4.4 cannot pass `kind: decimal` values to a
        plugin (Decimal is not JSON serializable) and `kind: integer` refuses
        fractions; the tap parses "2.5" and refuses "abc", naming the setting.
        """
        if self.date:
            return "date_iso8601"
        if self.choices:
            return "options"
        return "string" if self.type == "number" else self.type

    def schema_property(self) -> th.Property:
        """The setting as the SDK declares a config property."""
        types: dict[str, Any] = {
            "string": th.StringType,
            "integer": th.IntegerType,
            "number": th.NumberType,
            "boolean": th.BooleanType,
            "array": th.ArrayType(th.StringType),
        }
        return th.Property(
            self.name,
            types[self.type],
            required=self.required,
            default=self.default,
            description=self.description,
            secret=self.secret,
            allowed_values=list(self.choices) or None,
            title=self.title,
        )


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "auth_token",
        "string",
        "Auth token",
        "Metronome API bearer token. Also read from TAP_METRONOME_AUTH_TOKEN.",
        required=True,
        secret=True,
        max_length=8192,
    ),
    Setting(
        "api_url",
        "string",
        "API URL",
        "Base URL of the Metronome API, without /v1 (https; http only for loopback).",
        default=DEFAULT_API_URL,
    ),
    Setting(
        "start_date",
        "string",
        "Start date",
        "First day of costs and invoice billing periods to sync: YYYY-MM-DD or an "
        f"RFC 3339 date-time (UTC when it has no offset), from {EARLIEST_START}.",
        required=True,
        date=True,
    ),
    Setting(
        "end_date",
        "string",
        "End date",
        "Optional exclusive end of the costs to sync, in the same formats; default "
        "and latest: the end of the current UTC day.",
        date=True,
    ),
    Setting(
        "page_size",
        "integer",
        "Page size",
        f"Items per list request, 1..{MAX_PAGE_SIZE} ({MAX_PAGE_SIZE} is the API's "
        "cap).",
        default=MAX_PAGE_SIZE,
        bounds=(1, MAX_PAGE_SIZE),
    ),
    Setting(
        "request_timeout",
        "number",
        "Request timeout",
        "Seconds within which a whole response (connection, headers and body) must "
        "arrive before it is retried.",
        default=60,
        bounds=(0.1, 86_400),
    ),
    Setting(
        "max_retries",
        "integer",
        "Max retries",
        "Retries of one request after a 408, 429, 5xx, timeout, connection error or "
        "truncated body.",
        default=5,
        bounds=(0, 1000),
    ),
    Setting(
        "max_retry_seconds",
        "number",
        "Max retry seconds",
        "Upper bound on the total time one request may spend waiting between its "
        "retries; past it the run stops with an error.",
        default=600,
        bounds=(0.01, 604_800),
    ),
    Setting(
        "retry_backoff_seconds",
        "number",
        "Retry backoff seconds",
        "First backoff wait when the API gives no Retry-After; it doubles on each "
        "retry (with jitter), capped at 60 s.",
        default=1,
        bounds=(0.001, 3600),
    ),
    Setting(
        "max_requests_per_second",
        "number",
        "Max requests per second",
        "One pacing budget shared by every request of the run, retries included. "
        "Default 8: the top of the 5-8 req/s that integrations report as safe for "
        "Metronome.",
        default=8,
        bounds=(0.01, 10_000),
    ),
    Setting(
        "max_concurrency",
        "integer",
        "Max concurrency",
        "Requests in flight at once across customers (customer_costs) and plans "
        "(plan_charges), all within max_requests_per_second; 1 is sequential.",
        default=8,
        # More threads than this only queue behind the pacer.
        bounds=(1, 64),
    ),
    Setting(
        "include_archived_customers",
        "boolean",
        "Include archived customers",
        "Also list archived customers (a second pass over /v1/customers).",
        default=True,
    ),
    Setting(
        "customer_ids",
        "array",
        "Customer IDs",
        "Restrict every per-customer stream to these Metronome customer ids (uuids, "
        "at least one), e.g. one shard of an account; default: every listed customer.",
    ),
    Setting(
        "lookback_days",
        "integer",
        "Lookback days",
        "Days before each customer's bookmark that every incremental run re-reads, "
        "because late usage (up to 34 days) changes pending costs.",
        default=35,
        bounds=(1, 36_500),
    ),
    Setting(
        "invoices_lookback_days",
        "integer",
        "Invoices lookback days",
        "Each incremental run re-reads invoices whose billing period starts at least "
        "this many days back (and from the oldest draft), so that recent voids and "
        "corrections are seen.",
        default=35,
        bounds=(0, 36_500),
    ),
    Setting(
        "usage_lookback_days",
        "integer",
        "Usage lookback days",
        "Days before the usage bookmark that every incremental run re-reads (at least "
        "1, so today's usage is read again), because Metronome accepts usage events "
        "up to 34 days late.",
        default=35,
        # 0 would bookmark the end of today and never re-read today's late usage.
        bounds=(1, 36_500),
    ),
    Setting(
        "usage_window_size",
        "string",
        "Usage window size",
        "One usage row per customer, billable metric and day, or hour.",
        default="day",
        # `none` has no place in an incremental table.
        choices=("day", "hour"),
    ),
    Setting(
        "unexpected_values",
        "string",
        "Unexpected values",
        "What a value that does not match its stream's schema does, in a field the "
        "tap does not compute with: keep (the record is written with the field null "
        "and the value in its _unexpected_values column, with a WARNING) or fail "
        "(the run stops naming the stream and field). Keys, replication keys, dates "
        "and amounts the tap computes with always stop the run.",
        default="keep",
        choices=("keep", "fail"),
    ),
    Setting(
        "progress_interval_seconds",
        "number",
        "Progress interval seconds",
        "Seconds between customer_costs progress lines (customers done/total, "
        "requests, records, retries, time left).",
        default=30,
        bounds=(0.000001, 86_400),
    ),
    Setting(
        "user_agent",
        "string",
        "User agent",
        "User-Agent header sent with every request.",
        max_length=256,
    ),
    Setting(
        "emit_activate_version_messages",
        "boolean",
        "Emit ACTIVATE_VERSION messages",
        "Send ACTIVATE_VERSION messages around each full-table stream (all but "
        "customer_costs), so that targets that support them mark rows deleted at the "
        "source (e.g. target-postgres sets _sdc_deleted_at).",
        default=False,
        read_by_sdk=True,
    ),
)

SETTING = {setting.name: setting for setting in SETTINGS}
#: Each setting's default, typed `Any` for `settings.Settings`' fields.
DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}


def config_jsonschema() -> dict[str, Any]:
    """The JSON Schema of the config, for `TapMetronome.config_jsonschema`.

    A new dict each call: the SDK adds its own settings to the class attribute.
    """
    return th.PropertiesList(
        *(setting.schema_property() for setting in SETTINGS)
    ).to_dict()
