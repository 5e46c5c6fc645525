"""Settings: parsed once into `Settings`, checked before any request.

Every setting is read here and nowhere else, so that each can be given the way
users give it: as JSON from a config file, as a string from Meltano or the
environment (`TAP_METRONOME_MAX_REQUESTS_PER_SECOND=0.5`), or as `null`, which
means "not set" and so the default. Each problem is one line that names the
setting; the value of `auth_token` is never echoed, and other values are echoed
escaped and shortened (`errors.one_line`).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from urllib3.util import parse_url

from tap_metronome.errors import one_line
from tap_metronome.setting_table import (
    DEFAULT_API_URL,
    DEFAULTS,
    EARLIEST_START,
    SETTING,
    SETTINGS,
)
from tap_metronome.times import parse_instant

#: The settings this module owns (the SDK's own, such as stream_maps, are not here).
SETTING_NAMES = frozenset(item.name for item in SETTINGS if not item.read_by_sdk)
#: The integer and number settings, parsed alike (`_number`).
NUMBER_SETTINGS = tuple(
    item.name for item in SETTINGS if item.type in {"integer", "number"}
)

#: A path ending like this is an API version the tap would add a second time.
_API_VERSION = re.compile(r"/v\d+$", re.IGNORECASE)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """The tap's settings, parsed, defaulted and checked.

    One field per setting of the table (`setting_table.SETTINGS`) that the tap
    reads, with the table's default; `tests/test_settings_table.py` checks both.
    """

    auth_token: str = field(repr=False)
    start_date: datetime
    end_date: datetime | None = DEFAULTS["end_date"]
    api_url: str = DEFAULTS["api_url"]
    page_size: int = DEFAULTS["page_size"]
    request_timeout: float = DEFAULTS["request_timeout"]
    max_retries: int = DEFAULTS["max_retries"]
    max_retry_seconds: float = DEFAULTS["max_retry_seconds"]
    retry_backoff_seconds: float = DEFAULTS["retry_backoff_seconds"]
    max_requests_per_second: float = DEFAULTS["max_requests_per_second"]
    max_concurrency: int = DEFAULTS["max_concurrency"]
    include_archived_customers: bool = DEFAULTS["include_archived_customers"]
    customer_ids: tuple[str, ...] | None = DEFAULTS["customer_ids"]
    lookback_days: int = DEFAULTS["lookback_days"]
    invoices_lookback_days: int = DEFAULTS["invoices_lookback_days"]
    usage_lookback_days: int = DEFAULTS["usage_lookback_days"]
    usage_window_size: str = DEFAULTS["usage_window_size"]
    unexpected_values: str = DEFAULTS["unexpected_values"]
    progress_interval_seconds: float = DEFAULTS["progress_interval_seconds"]
    user_agent: str | None = DEFAULTS["user_agent"]

    def first_day(self) -> date:
        """The first UTC day the day-based streams read (costs, invoices, usage)."""
        return self.start_date.date()

    def end_day(self, now: datetime) -> date:
        """The exclusive end day the day-based streams read in this run.

        `end_date` (a time inside a day includes that day), but never past the end
        of the current UTC day: later days cannot have costs yet, and a bookmark
        past today would make later runs skip days that get costs.
        """
        end_of_today = now.astimezone(UTC).date() + timedelta(days=1)
        if self.end_date is None or self.end_date.date() >= end_of_today:
            return end_of_today
        return ceil_day(self.end_date)

    def normalized(self) -> dict[str, Any]:
        """The settings as JSON values (dates as RFC 3339), for the SDK's config."""
        values: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            elif isinstance(value, tuple):
                value = list(value)
            if value is not None:
                values[item.name] = value
        return values


def ceil_day(instant: datetime) -> date:
    """The first UTC midnight at or after `instant`."""
    day = instant.date()
    if instant == datetime(day.year, day.month, day.day, tzinfo=UTC):
        return day
    return day + timedelta(days=1)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Errors(list[str]):
    """Problems found so far, one line each."""

    def add(self, setting: str, problem: str) -> None:
        self.append(f"{setting}: {problem}")


def _number(name: str, value: Any, errors: _Errors) -> float | int:
    setting = SETTING[name]
    low, high = setting.bounds or (-math.inf, math.inf)
    integer = setting.type == "integer"
    default = int(DEFAULTS[name]) if integer else float(DEFAULTS[name])
    if value is None:
        return default
    kind = "an integer" if integer else "a number"
    bounds = (
        f"{low:g}..{high:g}" if integer else f"greater than {low:g}, at most {high:g}"
    )
    problem = f"{one_line(value, 60)} is not {kind} ({bounds})"
    parsed: Decimal | None = None
    if isinstance(value, bool):
        parsed = None
    elif isinstance(value, int | Decimal):
        parsed = Decimal(value)
    elif isinstance(value, float):
        parsed = Decimal(value) if math.isfinite(value) else None
    elif isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            parsed = None
    if parsed is None or not parsed.is_finite():
        errors.add(name, problem)
        return default
    if integer and parsed != parsed.to_integral_value():
        errors.add(name, problem)
        return default
    if not Decimal(str(low)) <= parsed <= Decimal(str(high)):
        errors.add(name, problem)
        return default
    return int(parsed) if integer else float(parsed)


def _token(value: Any, errors: _Errors, warnings: list[str]) -> str:
    if value is None or value == "":
        errors.add(
            "auth_token", "missing; set it in the config or TAP_METRONOME_AUTH_TOKEN"
        )
        return ""
    if not isinstance(value, str):
        errors.add(
            "auth_token",
            f"must be a string, not {_json_type(value)} (the value is not shown)",
        )
        return ""
    token = value.strip()
    if not token:
        errors.add("auth_token", "is only whitespace")
        return ""
    if token != value:
        warnings.append(
            "auth_token: removed whitespace around the token (a trailing newline "
            "from a file or variable is common)"
        )
    if token.lower().startswith("bearer ") or token.lower().startswith("bearer\t"):
        errors.add(
            "auth_token",
            "starts with 'Bearer '; give the token alone (the value is not shown)",
        )
        return ""
    longest = SETTING["auth_token"].max_length or 0
    if len(token) > longest or not all("!" <= c <= "~" for c in token):
        errors.add(
            "auth_token",
            "contains whitespace, control or non-ASCII characters, or is longer than "
            f"{longest}; an HTTP header cannot carry it (the value is not "
            "shown)",
        )
        return ""
    return token


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _api_url(value: Any, errors: _Errors) -> str:
    """The API's base URL, refusing anything two URL parsers could read differently.

    The check must decide the host exactly as the HTTP library that sends the
    token will: userinfo, backslashes, whitespace, a path, a query or a fragment
    are refused outright, and urllib3's own parser must agree on the host.
    """
    if value is None:
        return DEFAULT_API_URL
    if not isinstance(value, str):
        errors.add("api_url", f"must be a string, not {_json_type(value)}")
        return DEFAULT_API_URL
    url = value.strip()
    shown = "(not shown: it contains '@')" if "@" in url else one_line(url, 120)
    if "@" in url:
        errors.add(
            "api_url",
            f"{shown} must not contain user information (user:password@); the "
            "token is the only credential",
        )
        return DEFAULT_API_URL
    if any(c in url for c in "\\ \t") or one_line(url, len(url) + 1) != url:
        errors.add(
            "api_url", f"{shown} contains a backslash, whitespace or control character"
        )
        return DEFAULT_API_URL
    try:
        parts = urlsplit(url)
        port = parts.port
        theirs = parse_url(url)
    except ValueError:
        errors.add("api_url", f"{shown} is not a valid URL")
        return DEFAULT_API_URL
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        errors.add(
            "api_url", f"{shown} is not an http(s) URL such as {DEFAULT_API_URL}"
        )
        return DEFAULT_API_URL
    if any(c in url for c in "?#;"):
        errors.add("api_url", f"{shown} must be a base URL without a query or fragment")
        return DEFAULT_API_URL
    if _API_VERSION.search(parts.path.rstrip("/")):
        errors.add(
            "api_url",
            f"{shown} ends with an API version; give the base URL such as "
            f"{DEFAULT_API_URL} (the tap adds /v1/... itself)",
        )
        return DEFAULT_API_URL
    if (theirs.host or "").strip("[]").lower() != parts.hostname.lower() or (
        theirs.port != port
    ):
        errors.add("api_url", f"{shown} is ambiguous: URL parsers disagree on its host")
        return DEFAULT_API_URL
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        errors.add(
            "api_url",
            f"{shown} must use https (the token would travel in clear text); http "
            "is allowed only for localhost, 127.0.0.0/8 and [::1]",
        )
        return DEFAULT_API_URL
    return url.rstrip("/")


def _date(name: str, value: Any, errors: _Errors) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except (TypeError, ValueError):
        errors.add(
            name,
            f"cannot read {one_line(value, 60)}; use YYYY-MM-DD or an RFC 3339 "
            "date-time such as 2024-01-01T00:00:00Z",
        )
        return None


def _boolean(name: str, value: Any, errors: _Errors) -> bool:
    if value is None:
        return bool(DEFAULTS[name])
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    errors.add(name, f"{one_line(value, 60)} is not true or false")
    return bool(DEFAULTS[name])


def _customer_ids(value: Any, errors: _Errors) -> tuple[str, ...] | None:
    """Canonical uuids (lower case, no braces or `urn:uuid:`), each once."""
    if value is None:
        return None
    if isinstance(value, str):  # from the environment: a JSON list or "a,b,c"
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else text.split(",")
        except ValueError:
            errors.add("customer_ids", "is not a JSON list of customer ids")
            return None
        if value == [""]:
            value = []
    if not isinstance(value, list | tuple):
        errors.add(
            "customer_ids", f"must be a list of customer ids, not {_json_type(value)}"
        )
        return None
    if not value:
        errors.add(
            "customer_ids",
            "is an empty list, which would sync every customer; remove the setting "
            "to sync every customer, or list at least one id",
        )
        return None
    canonical: dict[str, None] = {}
    for position, item in enumerate(value):
        try:
            if not isinstance(item, str):
                raise TypeError
            canonical[str(uuid.UUID(item.strip()))] = None
        except (TypeError, ValueError):
            errors.add(
                "customer_ids",
                f"item {position} ({one_line(item, 60)}) is not a Metronome customer "
                "id (a uuid)",
            )
            return None
    return tuple(canonical)


def _choice(name: str, value: Any, errors: _Errors) -> str:
    """One of the setting's choices (any case), its default when unset."""
    choices = SETTING[name].choices
    if value is None or value == "":
        return str(DEFAULTS[name])
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    errors.add(name, f"{one_line(value, 60)} is not {' or '.join(choices)}")
    return str(DEFAULTS[name])


def _user_agent(value: Any, errors: _Errors) -> str | None:
    if value is None or value == "":
        return None
    longest = SETTING["user_agent"].max_length or 0
    if (
        not isinstance(value, str)
        or len(value) > longest
        or not all(" " <= c <= "~" for c in value)
    ):
        errors.add(
            "user_agent",
            f"{one_line(value, 60)} must be printable ASCII text of at most "
            f"{longest} characters (it is sent as a header)",
        )
        return None
    return value.strip() or None


def parse_settings(
    config: Mapping[str, Any], *, now: datetime | None = None
) -> tuple[Settings | None, list[str], list[str]]:
    """Parse the config: (settings or None, one line per error, warnings)."""
    now = now or datetime.now(UTC)
    errors = _Errors()
    warnings: list[str] = []
    token = _token(config.get("auth_token"), errors, warnings)
    api_url = _api_url(config.get("api_url"), errors)
    start = _date("start_date", config.get("start_date"), errors)
    end = _date("end_date", config.get("end_date"), errors)
    if start is None and config.get("start_date") is None:
        errors.add("start_date", "missing; the first day of costs to sync, YYYY-MM-DD")
    if start is not None:
        if start.date() < EARLIEST_START:
            errors.add(
                "start_date",
                f"{start.date()} is before {EARLIEST_START}; no billing data is older",
            )
        elif start > now:
            errors.add(
                "start_date", f"{one_line(config['start_date'])} is in the future"
            )
        elif end is not None and start >= end:
            errors.add(
                "start_date",
                f"{one_line(config['start_date'])} is not before end_date "
                f"{one_line(config['end_date'])}",
            )
    numbers = {
        name: _number(name, config.get(name), errors) for name in NUMBER_SETTINGS
    }
    archived = _boolean(
        "include_archived_customers", config.get("include_archived_customers"), errors
    )
    customer_ids = _customer_ids(config.get("customer_ids"), errors)
    user_agent = _user_agent(config.get("user_agent"), errors)
    window_size = _choice("usage_window_size", config.get("usage_window_size"), errors)
    unexpected = _choice("unexpected_values", config.get("unexpected_values"), errors)
    if errors or start is None:
        return None, list(errors), warnings
    settings = Settings(
        auth_token=token,
        api_url=api_url,
        start_date=start,
        end_date=end,
        include_archived_customers=archived,
        customer_ids=customer_ids,
        user_agent=user_agent,
        usage_window_size=window_size,
        unexpected_values=unexpected,
        **numbers,  # type: ignore[arg-type]
    )
    return settings, [], warnings
