"""Settings are checked before any request; each problem is one line naming it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tap_metronome.settings import parse_instant, parse_settings
from tests.conftest import run_tap, tap_config

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def check_settings(config, *, now=NOW):
    return parse_settings(config, now=now)[1]


GOOD = {
    "auth_token": "tok",
    "api_url": "https://api.metronome.com",
    "start_date": "2024-01-01",
}


def test_good_config_has_no_errors():
    assert check_settings(GOOD, now=NOW) == []
    assert check_settings({**GOOD, "api_url": "http://127.0.0.1:9"}, now=NOW) == []
    assert check_settings({**GOOD, "api_url": "http://localhost:9"}, now=NOW) == []
    assert check_settings({**GOOD, "api_url": "http://[::1]:9"}, now=NOW) == []


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"auth_token": ""}, "auth_token"),
        ({"start_date": "2024-13-01"}, "start_date"),
        ({"start_date": "yesterday-ish"}, "start_date"),
        ({"start_date": "2027-01-01"}, "start_date"),
        ({"end_date": "2023-12-31"}, "start_date"),
        ({"end_date": "soon"}, "end_date"),
        ({"page_size": 0}, "page_size"),
        ({"start_date": "01/10/2026"}, "start_date"),
        ({"start_date": "10/01/2026"}, "start_date"),
        ({"start_date": "1969-12-31"}, "start_date"),
        ({"end_date": "2026-13-01"}, "end_date"),
        ({"customer_ids": []}, "customer_ids"),
        ({"api_url": "https://api.metronome.com/v1"}, "api_url"),
        ({"api_url": "http://127.1:8080"}, "api_url"),
        ({"api_url": "http://127.0.0.1:1\\@example.com"}, "api_url"),
        ({"api_url": "https://user:pw@api.metronome.com"}, "api_url"),
        ({"request_timeout": "NaN"}, "request_timeout"),
        ({"request_timeout": float("inf")}, "request_timeout"),
        ({"max_concurrency": 2.5}, "max_concurrency"),
        ({"include_archived_customers": "maybe"}, "include_archived_customers"),
        ({"auth_token": ["a", "b"]}, "auth_token"),
        ({"auth_token": 12345}, "auth_token"),
        ({"auth_token": "Bearer abc"}, "auth_token"),
        ({"auth_token": "tök"}, "auth_token"),
        ({"user_agent": "x\r\nInjected: 1"}, "user_agent"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"api_url": "http://api.metronome.com"}, "api_url"),
        ({"api_url": "ftp://127.0.0.1"}, "api_url"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"request_timeout": -1}, "request_timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_requests_per_second": 0}, "max_requests_per_second"),
        ({"max_requests_per_second": -2.5}, "max_requests_per_second"),
        ({"max_retry_seconds": 0}, "max_retry_seconds"),
        ({"lookback_days": 0}, "lookback_days"),
        # 0 would bookmark the end of today and never re-read today's late usage.
        ({"usage_lookback_days": 0}, "usage_lookback_days"),
        ({"usage_window_size": "week"}, "usage_window_size"),
        ({"customer_ids": 9371}, "customer_ids"),
        ({"customer_ids": ""}, "customer_ids"),
        ({"customer_ids": "[1, 2"}, "customer_ids"),
        ({"customer_ids": ["not-a-uuid"]}, "customer_ids"),
        ({"customer_ids": [123]}, "customer_ids"),
    ],
)
def test_each_bad_setting_is_named(override, setting):
    errors = check_settings({**GOOD, **override}, now=NOW)
    assert len(errors) == 1
    assert errors[0].startswith(f"{setting}: ")
    assert "\n" not in errors[0]


def test_dates_and_date_times_parse_to_utc():
    assert parse_instant("2024-02-29") == datetime(2024, 2, 29, tzinfo=UTC)
    assert parse_instant("2024-02-29T10:30:00+02:00") == datetime(
        2024, 2, 29, 8, 30, tzinfo=UTC
    )
    assert parse_instant("2024-02-29T10:30:00Z") == datetime(
        2024, 2, 29, 10, 30, tzinfo=UTC
    )


def test_bad_config_exits_before_any_request(fake_api, tmp_path):
    server = fake_api()
    run = run_tap(tap_config(server, page_size=500), tmp_path)
    assert run.returncode == 1
    assert "page_size: 500 is not an integer (1..100)" in run.stderr
    assert run.stdout == ""
    assert server.app.count() == 0


@pytest.mark.slow
def test_token_from_the_environment(fake_api, tmp_path):
    server = fake_api()
    config = tap_config(server)
    token = config.pop("auth_token")
    run = run_tap(
        config,
        tmp_path,
        args=("--config", "ENV"),
        env={"TAP_METRONOME_AUTH_TOKEN": token},
    )
    assert run.returncode == 0, run.stderr
    assert run.records("plans")


@pytest.mark.slow
def test_token_from_the_environment_without_config_env(fake_api, tmp_path):
    server = fake_api()
    config = tap_config(server)
    token = config.pop("auth_token")
    run = run_tap(config, tmp_path, env={"TAP_METRONOME_AUTH_TOKEN": token})
    assert run.returncode == 0, run.stderr
    assert run.records("plans")
