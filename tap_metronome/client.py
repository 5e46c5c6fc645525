"""HTTP behaviour of every Metronome request: auth, timeout, retries, errors.

All requests of a run go through one `MetronomeClient`, so retry policy and error
messages live in one place. The token is only ever placed in the Authorization
header; no message built here contains it, even when a server echoes it back.
Redirects are never followed (the API does not redirect, and following one
could carry the token elsewhere), and every response is bounded in time and
size (`transport`).
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import msgspec
import requests
from pyrate_limiter import Limiter, Rate

from tap_metronome.errors import MetronomeError, ResponseError, one_line
from tap_metronome.transport import BodyTooLargeError, Deadline, new_session, read_body

LOGGER = logging.getLogger("tap_metronome")

#: Client statuses worth another attempt (timeouts, rate limits); all 5xx retry too.
RETRY_CLIENT_STATUSES = frozenset(
    {HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS}
)

_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_JSON_BODY = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class _Call:
    """One logical request, retried as a whole."""

    method: str
    path: str
    params: dict[str, Any]
    body: dict[str, Any] | None
    stream: str
    endpoint: str

    @property
    def what(self) -> str:
        """`METHOD /path`, as error messages name it."""
        return f"{self.method} {self.path}"


class MetronomeAPIError(MetronomeError):
    """The API answered a request with an error status."""

    def __init__(
        self, *, status: int, path: str, message: str, stream: str, method: str = "GET"
    ) -> None:
        self.status = status
        self.path = path
        self.method = method
        self.api_message = message
        self.stream = stream
        super().__init__(
            f"Metronome API error {status} on {method} {path} (stream {stream}): "
            f"{message}"
        )


class MetronomeAuthError(MetronomeAPIError):
    """401/403: the token is wrong or lacks access; retrying cannot help."""

    def __str__(self) -> str:
        return (
            f"Metronome rejected the auth_token setting (HTTP {self.status}) on "
            f"{self.method} {self.path}; check auth_token / TAP_METRONOME_AUTH_TOKEN."
        )


class RetriesExhaustedError(MetronomeError):
    """Transient failures outlasted `max_retries` or the per-request wait bound."""


class CancelledError(MetronomeError):
    """The run is stopping; in-flight work should end without more requests."""


class _Retryable(Exception):  # noqa: N818 - internal control flow, not an error type
    """A transient failure of one attempt, with the wait the server asked for."""

    def __init__(self, reason: str, *, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often one request may be retried."""

    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_total_wait: float = 600.0


class Pacer:
    """One request budget for the whole run, retries included.

    Requests are spaced evenly at `1 / max_requests_per_second` (a bucket of
    one token) rather than sent in bursts, because Metronome's limits are
    account-wide and a burst at a window edge is what draws a 429.
    """

    #: How often a thread waiting for its turn checks whether the run stopped.
    POLL_SECONDS = 0.2

    def __init__(self, max_requests_per_second: float) -> None:
        self.rate = max_requests_per_second
        interval_ms = max(1, round(1000 / max_requests_per_second))
        self._limiter = Limiter(Rate(1, interval_ms), buffer_ms=0)

    def wait(self, cancelled: threading.Event | None = None) -> bool:
        """Block until the next request may be sent; False if `cancelled` first."""
        while not self._limiter.try_acquire("metronome", timeout=self.POLL_SECONDS):
            if cancelled is not None and cancelled.is_set():
                return False
        return True


#: The longest wait a `Retry-After` may ask for: a week, the highest
#: `max_retry_seconds`. A longer one (a 20-digit delta, a date in year 9999) is
#: no server's real intent and is ignored like any other bad value: the normal
#: backoff applies. A wait within it but beyond `max_retry_seconds` still ends
#: the run ("would exceed ... of retries"), as the server asked.
MAX_RETRY_AFTER_SECONDS = 7 * 86_400

#: Seconds, maybe with a fraction; ASCII digits only (RFC 9110 delta-seconds is
#: `1*DIGIT`; `float()` would also take "1e309", "inf", "nan", "-5", "1_0", "١٢").
_DELTA = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?", re.ASCII)
#: Longer than any HTTP date or delta: not worth parsing.
_MAX_HEADER_CHARS = 64


def _seconds(text: str, scale: float = 1.0) -> float | None:
    """`text` as a delta in seconds (times `scale`), or None if it is not a sane one."""
    if len(text) > _MAX_HEADER_CHARS or not _DELTA.fullmatch(text := text.strip()):
        return None
    seconds = float(text) * scale
    return seconds if seconds <= MAX_RETRY_AFTER_SECONDS else None


def _until(text: str) -> float | None:
    """Seconds from now until the HTTP date `text` (0 if past), or None."""
    if len(text) > _MAX_HEADER_CHARS:
        return None
    try:
        wait = email.utils.parsedate_to_datetime(text).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError):
        # Not a date, or one out of datetime's range (year 99999999999).
        return None
    if not math.isfinite(wait) or wait > MAX_RETRY_AFTER_SECONDS:
        return None
    return max(0.0, wait)


def retry_after_seconds(
    headers: requests.structures.CaseInsensitiveDict,
) -> float | None:
    """Read the server's requested wait from `retry-after-ms` or `Retry-After`.

    None when neither gives a usable wait: a value that is not seconds or an
    HTTP date, or asks for more than `MAX_RETRY_AFTER_SECONDS`. A date in the
    past means no wait (0).
    """
    if (ms := headers.get("retry-after-ms")) is not None and (
        seconds := _seconds(ms, 1 / 1000)
    ) is not None:
        return seconds
    if (value := headers.get("Retry-After")) is None:
        return None
    if _DELTA.fullmatch(value.strip()):
        return _seconds(value)
    return _until(value)


def _api_message(content: bytes, reason: str | None) -> str:
    """The API's `{"message"}`, or the start of the body, as received (unescaped)."""
    try:
        body = _DECODER.decode(content)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return content[:1000].decode("utf-8", "replace").strip() or (reason or "")
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return reason or ""


#: Called after every response: (stream, endpoint template, HTTP status, seconds).
ResponseHook = Callable[[str, str, int, float], None]


class MetronomeClient:
    """Sends GET and POST requests to Metronome and returns parsed JSON bodies.

    Thread-safe: each thread gets its own `requests.Session` so that concurrent
    partitions share nothing but the retry policy and the pacer.
    """

    def __init__(
        self,
        *,
        api_url: str,
        auth_token: str,
        timeout: float,
        user_agent: str,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        logger: logging.Logger | None = None,
        sleep: Any = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = auth_token
        self._auth_header = f"Bearer {auth_token}"
        self.timeout = timeout
        self.user_agent = user_agent
        self.retry = retry or RetryPolicy()
        self.pacer = pacer
        self.logger = logger or LOGGER
        self._cancelled = threading.Event()
        #: Waits between retries end early when the run is cancelled.
        self._sleep = sleep or self._cancelled.wait
        self._local = threading.local()
        self._lock = threading.Lock()
        #: Deadlines of the requests in flight, so a stop can end them at once.
        self._in_flight: set[Deadline] = set()
        self.requests_sent = 0
        self.retries = 0
        #: Metrics (`metrics.HttpMetrics.observe`): one call per response.
        self.on_response = on_response

    def __repr__(self) -> str:
        return f"MetronomeClient(api_url={self.api_url!r})"

    def cancel(self) -> None:
        """Stop every thread's retries, further requests and requests in flight.

        Not for a signal handler (it sets an Event, which takes a lock): the
        stop watcher thread calls it (see `stopping`).
        """
        self._cancelled.set()
        for deadline in list(self._in_flight):
            deadline.expire()

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = new_session(
                self.api_url,
                {
                    "Authorization": self._auth_header,
                    "Accept": "application/json",
                    "User-Agent": self.user_agent,
                },
            )
            self._local.session = session
        return session

    def _message(self, content: bytes, reason: str | None) -> str:
        """The API's error message, one line, short, and without the token."""
        message = _api_message(content, reason)
        if self._token:
            message = message.replace(self._token, "<auth_token>")
        return one_line(message, 300)

    def get(
        self,
        path: str,
        params: dict[str, Any],
        *,
        stream: str,
        endpoint: str | None = None,
    ) -> Any:
        """GET `path` with retries; return the JSON body with numbers as Decimal."""
        return self.request(
            "GET", path, params=params, stream=stream, endpoint=endpoint
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        stream: str,
        endpoint: str | None = None,
    ) -> Any:
        """Send `method path` with retries; return the JSON body, numbers as Decimal.

        `body` is sent as JSON (POST); `endpoint` is the path template, for metrics.
        """
        call = _Call(method, path, params or {}, body, stream, endpoint or path)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(call)
            except _Retryable as exc:
                if attempt > self.retry.max_retries:
                    msg = (
                        f"{call.what} (stream {stream}) failed after {attempt} "
                        f"attempts; last error: {exc.reason}"
                    )
                    raise RetriesExhaustedError(msg) from None
                # Never earlier than the server asked; never less than the backoff
                # either, so threads that share a limit spread out as retries grow.
                wait = max(exc.wait or 0.0, self._backoff(attempt))
                if waited + wait > self.retry.max_total_wait:
                    msg = (
                        f"{call.what} (stream {stream}) gave up: waiting {wait:.3g}s"
                        f" more would exceed {self.retry.max_total_wait:.0f}s of "
                        f"retries; last error: {exc.reason}"
                    )
                    raise RetriesExhaustedError(msg) from None
                if self._cancelled.is_set():
                    msg = f"{call.what} (stream {stream}) cancelled"
                    raise CancelledError(msg) from None
                with self._lock:
                    self.retries += 1
                self.logger.warning(
                    "Retrying stream %s: %s on %s, attempt %d of %d, waiting %.2fs",
                    stream,
                    exc.reason,
                    call.what,
                    attempt,
                    self.retry.max_retries + 1,
                    wait,
                )
                waited += wait
                self._sleep(wait)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff, jittered between half and all of it, so workers spread out."""
        ceiling = min(
            self.retry.backoff_cap, self.retry.backoff_base * 2 ** (attempt - 1)
        )
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto

    def _attempt(self, call: _Call) -> Any:
        path, stream = call.path, call.stream
        if self.pacer is not None:
            self.pacer.wait(self._cancelled)
        deadline = Deadline(self.timeout)
        # In the set before the check: a cancel between the two still ends it.
        self._in_flight.add(deadline)
        if self._cancelled.is_set():
            self._in_flight.discard(deadline)
            raise CancelledError(f"{call.what} (stream {stream}) cancelled")
        with self._lock:
            self.requests_sent += 1
        started = time.monotonic()
        try:
            with deadline:
                response = self._session.request(
                    call.method,
                    f"{self.api_url}{path}",
                    params=call.params,
                    data=None if call.body is None else _ENCODER.encode(call.body),
                    headers=None if call.body is None else _JSON_BODY,
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=False,
                )
                content = read_body(response)
        except BodyTooLargeError:
            msg = f"{call.what} (stream {stream}): the response is larger than 64 MiB"
            raise ResponseError(msg) from None
        except requests.RequestException as exc:
            if deadline.expired or isinstance(exc, requests.Timeout):
                raise _Retryable(
                    f"no complete response within {self.timeout:g}s"
                ) from None
            if isinstance(
                exc,
                requests.ConnectionError
                | requests.exceptions.ChunkedEncodingError
                | requests.exceptions.ContentDecodingError,
            ):
                raise _Retryable(f"connection error ({type(exc).__name__})") from None
            msg = f"{call.what} (stream {stream}) failed: {type(exc).__name__}"
            raise MetronomeError(msg) from None
        finally:
            self._in_flight.discard(deadline)
        if self._cancelled.is_set():
            raise CancelledError(f"{call.what} (stream {stream}) cancelled")
        if self.on_response is not None:
            self.on_response(
                stream,
                call.endpoint,
                response.status_code,
                time.monotonic() - started,
            )
        if deadline.expired:
            # The socket was shut at the deadline; a body that "ended" then is
            # cut short (e.g. an HTTP/1.0 body read until the connection closes).
            raise _Retryable(f"no complete response within {self.timeout:g}s")
        status = response.status_code
        if (
            status in RETRY_CLIENT_STATUSES
            or status >= HTTPStatus.INTERNAL_SERVER_ERROR
        ):
            reason = f"HTTP {status}"
            if status == HTTPStatus.TOO_MANY_REQUESTS:
                limit_type = response.headers.get(
                    "X-Metronome-Rate-Limit-Type", "unset"
                )
                reason += (
                    " rate limited (X-Metronome-Rate-Limit-Type: "
                    f"{one_line(limit_type, 40)})"
                )
            raise _Retryable(reason, wait=retry_after_seconds(response.headers))
        if status in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
            raise MetronomeAuthError(
                status=status,
                path=path,
                method=call.method,
                message=self._message(content, response.reason),
                stream=stream,
            )
        if status >= HTTPStatus.BAD_REQUEST or status < HTTPStatus.OK:
            raise MetronomeAPIError(
                status=status,
                path=path,
                method=call.method,
                message=self._message(content, response.reason),
                stream=stream,
            )
        if status >= HTTPStatus.MULTIPLE_CHOICES:
            location = response.headers.get("Location", "")
            raise MetronomeAPIError(
                status=status,
                path=path,
                method=call.method,
                message=f"unexpected redirect (not followed) to {one_line(location[:200])}",
                stream=stream,
            )
        try:
            return _DECODER.decode(content)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            raise _Retryable(
                f"HTTP {status} with a body that is not valid JSON ({len(content)} bytes)"
            ) from None
