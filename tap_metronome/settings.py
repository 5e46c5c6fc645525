"""Checks of the settings that JSON Schema cannot express, run before any request.

Each problem is one line naming the setting, so that a scheduled run fails with a
message a person can act on. Values of secret settings are never echoed.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pendulum

MAX_PAGE_SIZE = 100
#: More threads than this only queue behind the pacer.
MAX_CONCURRENCY = 64


def parse_instant(value: str) -> datetime:
    """A date or RFC 3339 date-time as an aware UTC datetime (dates at midnight)."""
    parsed = pendulum.parse(value, strict=False, tz="UTC")
    if isinstance(parsed, pendulum.DateTime):
        return parsed.in_timezone("UTC")
    if isinstance(parsed, pendulum.Date):
        return pendulum.datetime(parsed.year, parsed.month, parsed.day, tz="UTC")
    msg = f"not a date or date-time: {value!r}"
    raise ValueError(msg)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_dates(config: Mapping[str, Any], now: datetime) -> list[str]:
    errors: list[str] = []
    start = end = None
    for key in ("start_date", "end_date"):
        value = config.get(key)
        if value is None:
            continue
        try:
            parsed = parse_instant(str(value))
        except (ValueError, pendulum.parsing.exceptions.ParserError):
            errors.append(
                f"{key}: cannot parse {value!r}; use YYYY-MM-DD or an RFC 3339 "
                "date-time such as 2024-01-01T00:00:00Z"
            )
            continue
        if key == "start_date":
            start = parsed
        else:
            end = parsed
    if start is not None and start > now:
        errors.append(f"start_date: {config['start_date']} is in the future")
    if start is not None and end is not None and start >= end:
        errors.append(
            f"start_date: {config['start_date']} is not before end_date "
            f"{config['end_date']}"
        )
    return errors


def _is_int_in(value: Any, low: int, high: int | None = None) -> bool:
    """Whether `value` is an integer (not a bool) within [low, high]."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )


def _check_customer_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [
            f"customer_ids: must be a list of customer ids, got {type(value).__name__}"
        ]
    for position, item in enumerate(value):
        try:
            uuid.UUID(str(item))
        except ValueError:
            return [
                f"customer_ids: item {position} ({item!r}) is not a Metronome customer id (uuid)"
            ]
        if not isinstance(item, str):
            return [f"customer_ids: item {position} ({item!r}) is not a string"]
    return []


def check_settings(
    config: Mapping[str, Any], *, now: datetime | None = None
) -> list[str]:
    """Return one line per invalid setting; empty when the config is usable."""
    now = now or datetime.now(UTC)
    errors: list[str] = []
    if not str(config.get("auth_token") or "").strip():
        errors.append(
            "auth_token: missing; set it in the config or TAP_METRONOME_AUTH_TOKEN"
        )
    errors += _check_dates(config, now)

    page_size = config.get("page_size", MAX_PAGE_SIZE)
    if not _is_int_in(page_size, 1, MAX_PAGE_SIZE):
        errors.append(f"page_size: {page_size!r} is not an integer in 1..100")

    api_url = str(config.get("api_url") or "")
    parts = urlsplit(api_url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        errors.append(f"api_url: {api_url!r} is not an http(s) URL")
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        errors.append(
            f"api_url: {api_url!r} must use https (the token would travel in "
            "clear text); http is allowed only for loopback hosts"
        )

    for key in (
        "request_timeout",
        "max_requests_per_second",
        "max_retry_seconds",
        "retry_backoff_seconds",
        "progress_interval_seconds",
    ):
        value = config.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float | Decimal)
            or value <= 0
        ):
            errors.append(f"{key}: {value} must be a positive number")
    concurrency = config.get("max_concurrency")
    if concurrency is not None and not _is_int_in(concurrency, 1, MAX_CONCURRENCY):
        errors.append(
            f"max_concurrency: {concurrency!r} must be an integer in 1..{MAX_CONCURRENCY}"
        )
    lookback = config.get("lookback_days")
    if lookback is not None and not _is_int_in(lookback, 1):
        errors.append(
            f"lookback_days: {lookback!r} must be an integer >= 1 (today's pending "
            "costs must be re-read)"
        )
    errors += _check_customer_ids(config.get("customer_ids"))
    retries = config.get("max_retries")
    if retries is not None and not _is_int_in(retries, 0):
        errors.append(f"max_retries: {retries!r} must be a non-negative integer")
    return errors
