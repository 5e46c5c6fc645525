"""The tap: its settings, their validation, and the streams it offers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_metronome import streams
from tap_metronome.client import MetronomeClient, MetronomeError, Pacer, RetryPolicy
from tap_metronome.output import BufferedRecordWriter
from tap_metronome.settings import check_settings

DEFAULT_API_URL = "https://api.metronome.com"
TOKEN_ENV_VAR = "TAP_METRONOME_AUTH_TOKEN"  # noqa: S105 - a variable name, not a secret


def _has_token(config: Any) -> bool:
    """Whether the config the tap was given (dict or JSON file paths) sets auth_token."""
    if config is None:
        return False
    if isinstance(config, dict):
        return bool(config.get("auth_token"))
    paths = config if isinstance(config, list | tuple) else [config]
    for path in paths:
        try:
            if json.loads(Path(path).read_text()).get("auth_token"):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


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
            description="Base URL of the Metronome API (https; http only for loopback).",
        ),
        th.Property(
            "start_date",
            th.StringType,
            required=True,
            title="Start date",
            description=(
                "Earliest date (YYYY-MM-DD or RFC 3339 date-time, UTC) of costs to sync."
            ),
        ),
        th.Property(
            "end_date",
            th.StringType,
            title="End date",
            description=(
                "Optional exclusive end of the costs to sync; default: the end of the "
                "current UTC day."
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
            description="Seconds to wait for one response before retrying it.",
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
                "Restrict customer_costs to these Metronome customer ids (uuids); "
                "default: every listed customer."
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
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if (
            not kwargs.get("parse_env_config")
            and os.environ.get(TOKEN_ENV_VAR)
            and not _has_token(kwargs.get("config"))
        ):
            # The token may live only in the environment, without `--config ENV`.
            kwargs["parse_env_config"] = True
        super().__init__(*args, **kwargs)
        self._client: MetronomeClient | None = None
        self._ids: dict[str, list[str]] = {}
        if kwargs.get("validate_config", True):
            errors = check_settings(self.config)
            if errors:
                raise ConfigValidationError(
                    "Config validation failed",
                    errors=errors,
                    schema=self.config_jsonschema,
                )

    @property
    def max_concurrency(self) -> int:
        """Worker threads for partitioned streams."""
        return int(self.config.get("max_concurrency", 8))

    @property
    def client(self) -> MetronomeClient:
        """The one HTTP client of the run, shared by every stream."""
        if self._client is None:
            self._client = MetronomeClient(
                api_url=self.config.get("api_url", DEFAULT_API_URL),
                auth_token=self.config["auth_token"],
                timeout=float(self.config.get("request_timeout", 60)),
                user_agent=self.config.get("user_agent")
                or f"tap-metronome/{self.plugin_version}",
                retry=RetryPolicy(
                    max_retries=int(self.config.get("max_retries", 5)),
                    backoff_base=float(self.config.get("retry_backoff_seconds", 1)),
                    max_total_wait=float(self.config.get("max_retry_seconds", 600)),
                ),
                pacer=Pacer(float(self.config.get("max_requests_per_second", 8))),
                logger=self.logger,
            )
        return self._client

    def remember_ids(self, stream_name: str, ids: list[str]) -> None:
        """Keep a completed parent listing so child streams need not list again."""
        self._ids[stream_name] = ids

    def known_ids(self, parent: str, child: str) -> list[str]:
        """Ids of a parent stream: from this run's sync of it, else a fresh listing."""
        if parent not in self._ids:
            stream = self.streams[parent]
            self._ids[parent] = [item["id"] for item in stream.get_records(None)]
            self.logger.info(
                "%s: listed %d %s ids", child, len(self._ids[parent]), parent
            )
        return self._ids[parent]

    def discover_streams(self) -> list[streams.MetronomeStream]:
        """Streams in sync order: parents before the children that reuse their ids."""
        return [
            streams.CustomersStream(self),
            streams.PlansStream(self),
            streams.PlanChargesStream(self),
            streams.CustomerCostsStream(self),
        ]

    def load_streams(self) -> list[streams.MetronomeStream]:
        """Keep discovery order (the SDK sorts by name) so parents sync first."""
        return self.discover_streams()

    def sync_all(self) -> None:
        """Run the sync; an error a human must fix ends it with one clear line."""
        try:
            super().sync_all()
        except MetronomeError as exc:
            self.logger.error("%s", exc)
            sys.exit(2)
