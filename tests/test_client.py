"""The HTTP client: what it retries, how long it waits, what it never retries."""

from __future__ import annotations

import email.utils
import logging
import threading
import time

import pytest
import requests
import responses
from requests.structures import CaseInsensitiveDict

from tap_metronome.client import (
    MAX_RETRY_AFTER_SECONDS,
    MetronomeAPIError,
    MetronomeAuthError,
    MetronomeClient,
    RetriesExhaustedError,
    RetryPolicy,
    retry_after_seconds,
)
from tap_metronome.transport import Deadline

API = "https://api.metronome.test"
URL = f"{API}/v1/plans"
PAGE = {"data": [], "next_page": None}


def make_client(sleeps: list[float], **policy) -> MetronomeClient:
    return MetronomeClient(
        api_url=API,
        auth_token="tok",
        timeout=5,
        user_agent="test",
        retry=RetryPolicy(**{"max_retries": 5, "backoff_base": 1.0, **policy}),
        sleep=sleeps.append,
    )


def test_retry_after_forms():
    assert retry_after_seconds(CaseInsensitiveDict({"Retry-After": "7"})) == 7
    assert retry_after_seconds(CaseInsensitiveDict({"retry-after-ms": "250"})) == 0.25
    assert (
        retry_after_seconds(
            CaseInsensitiveDict({"Retry-After": "9", "retry-after-ms": "1500"})
        )
        == 1.5
    )
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after_seconds(CaseInsensitiveDict({"Retry-After": future})) <= 30
    assert retry_after_seconds(CaseInsensitiveDict({"Retry-After": "soon"})) is None
    assert retry_after_seconds(CaseInsensitiveDict()) is None


#: Values no server means: each is ignored (None), so the normal backoff applies.
BAD_RETRY_AFTER = [
    "Mon, 01 Jan 99999999999 00:00:00 GMT",  # past datetime's range: OverflowError
    "Fri, 31 Dec 9999 23:59:59 GMT",  # a date beyond a week from now
    "12345678901234567890",  # 20 digits
    "1" * 400,  # float() makes it inf
    "1e309",
    "1e3",
    "inf",
    "-inf",
    "Infinity",
    "nan",
    "-5",
    "+5",
    "-0.5",
    "0x10",
    "1_000",
    "\u0661\u0662",  # Arabic-Indic digits, which float() accepts
    "\uff17",  # a full-width digit
    "",
    "   ",
    "\t",
    "soon",
    "é",
    "Mon, 01 Jan 2000 99:99:99 GMT",
    "Mon, 32 Foo 2000 00:00:00 +9999",
    "x" * 100_000,
    "1" + " " * 100_000,
]


@pytest.mark.parametrize("value", BAD_RETRY_AFTER)
@pytest.mark.parametrize("header", ["Retry-After", "retry-after-ms"])
def test_a_retry_after_no_server_means_is_ignored(header, value):
    assert retry_after_seconds(CaseInsensitiveDict({header: value})) is None


def test_a_wait_beyond_the_bound_is_ignored():
    over = MAX_RETRY_AFTER_SECONDS + 1
    assert retry_after_seconds(CaseInsensitiveDict({"Retry-After": str(over)})) is None
    headers = CaseInsensitiveDict({"retry-after-ms": str(over * 1000)})
    assert retry_after_seconds(headers) is None


def test_a_bad_retry_after_ms_falls_back_to_retry_after():
    headers = CaseInsensitiveDict({"retry-after-ms": "inf", "Retry-After": "4"})
    assert retry_after_seconds(headers) == 4


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        (str(MAX_RETRY_AFTER_SECONDS), MAX_RETRY_AFTER_SECONDS),
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),  # far past: no wait
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # RFC 850 form
        ("Sun Nov  6 08:49:37 1994", 0.0),  # asctime form
    ],
)
def test_a_sane_retry_after_is_honoured(value, seconds):
    assert retry_after_seconds(CaseInsensitiveDict({"Retry-After": value})) == seconds


@responses.activate
@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "Mon, 01 Jan 99999999999 00:00:00 GMT"},
        {"Retry-After": "12345678901234567890"},
        {"retry-after-ms": "1e309"},
        {"Retry-After": "nan"},
    ],
)
def test_a_bad_retry_after_falls_back_to_the_backoff(headers):
    responses.get(URL, status=429, headers=headers)
    responses.get(URL, json=PAGE)
    sleeps: list[float] = []
    assert make_client(sleeps).get("/v1/plans", {}, stream="plans") == PAGE
    assert len(sleeps) == 1
    assert 0.5 <= sleeps[0] <= 1  # the first backoff, not the header


@responses.activate
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_then_success(status):
    responses.get(URL, status=status, json={"message": "x"})
    responses.get(URL, json=PAGE)
    sleeps: list[float] = []
    assert make_client(sleeps).get("/v1/plans", {}, stream="plans") == PAGE
    assert len(sleeps) == 1


@responses.activate
def test_retry_after_is_honoured_and_rate_limit_type_logged(caplog):
    responses.get(
        URL,
        status=429,
        json={"message": "slow down"},
        headers={"Retry-After": "3", "X-Metronome-Rate-Limit-Type": "customer"},
    )
    responses.get(URL, json=PAGE)
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING):
        make_client(sleeps).get("/v1/plans", {}, stream="plans")
    assert sleeps == [3.0]
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "Retrying stream plans: HTTP 429 rate limited (X-Metronome-Rate-Limit-Type: "
        "customer) on GET /v1/plans, attempt 1 of 6, waiting 3.00s"
    )


@responses.activate
def test_backoff_is_exponential_with_jitter_and_bounded_by_max_retries():
    for _ in range(6):
        responses.get(URL, status=503)
    sleeps: list[float] = []
    with pytest.raises(
        RetriesExhaustedError, match=r"failed after 6 attempts; last error: HTTP 503"
    ):
        make_client(sleeps).get("/v1/plans", {}, stream="plans")
    assert len(sleeps) == 5
    for attempt, wait in enumerate(sleeps, start=1):
        ceiling = 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling


@responses.activate
def test_total_wait_of_one_request_is_bounded():
    for _ in range(3):
        responses.get(URL, status=429, headers={"Retry-After": "40"})
    sleeps: list[float] = []
    with pytest.raises(RetriesExhaustedError, match="would exceed 60s of retries"):
        make_client(sleeps, max_total_wait=60).get("/v1/plans", {}, stream="plans")
    assert sleeps == [40.0]


@responses.activate
def test_connection_errors_timeouts_and_truncated_bodies_are_retried():
    responses.get(URL, body=requests.ConnectionError("reset"))
    responses.get(URL, body=requests.ReadTimeout("slow"))
    responses.get(URL, body=b'{"data": [{"id": ', content_type="application/json")
    responses.get(URL, json=PAGE)
    sleeps: list[float] = []
    assert make_client(sleeps).get("/v1/plans", {}, stream="plans") == PAGE
    assert len(sleeps) == 3


@responses.activate
@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_not_retried(status):
    responses.get(URL, status=status, json={"message": "Unauthorized"})
    sleeps: list[float] = []
    with pytest.raises(MetronomeAuthError) as info:
        make_client(sleeps).get("/v1/plans", {}, stream="plans")
    assert sleeps == []
    assert str(info.value) == (
        f"Metronome rejected the auth_token setting (HTTP {status}) on GET /v1/plans; "
        "check auth_token / TAP_METRONOME_AUTH_TOKEN."
    )


@responses.activate
def test_other_client_errors_carry_endpoint_status_and_message():
    responses.get(URL, status=422, json={"message": "starting_on is malformed"})
    with pytest.raises(MetronomeAPIError) as info:
        make_client([]).get("/v1/plans", {}, stream="plans")
    assert str(info.value) == (
        "Metronome API error 422 on GET /v1/plans (stream plans): starting_on is malformed"
    )


@responses.activate
def test_token_only_in_the_authorization_header():
    responses.get(URL, json=PAGE)
    client = make_client([])
    client.get("/v1/plans", {"limit": 1}, stream="plans")
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer tok"
    assert "tok" not in sent.url
    assert "tok" not in repr(client)


def _expired_within(deadline: Deadline, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while not deadline.expired and time.monotonic() < until:
        time.sleep(0.01)
    return deadline.expired


def test_one_watchdog_expires_each_deadline_when_due_and_never_after_its_request():
    # Watched on other threads, as worker threads do; the later deadline is
    # added first, so the earlier one has to wake the watchdog.
    late, early, ended = Deadline(3600), Deadline(0.2), Deadline(0.1)
    entered = threading.Barrier(3)

    def hold(deadline: Deadline, leave: threading.Event) -> None:
        with deadline:
            entered.wait()
            leave.wait(30)

    leave = threading.Event()
    threads = [threading.Thread(target=hold, args=(d, leave)) for d in (late, early)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    with ended:
        pass  # a request that ended before its deadline
    entered.wait()
    assert _expired_within(early, 30)
    leave.set()
    for thread in threads:
        thread.join()
    assert not _expired_within(ended, 0.3)
    assert not late.expired
    assert [t.name for t in threading.enumerate()].count("request-deadlines") == 1
