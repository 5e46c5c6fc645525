"""HTTP metrics in the SDK's format, for a client the SDK does not drive.

The SDK's `RESTStream` writes one `http_request_duration` timer point per
response and an `http_request_count` counter per stream and endpoint; Meltano
users parse both from the METRIC log lines. The tap's requests go through its
own client (one pacing budget, worker threads), so it reports the same points
here, through the SDK's `metrics` module and its metrics logger (and so at the
level the SDK configures for it). Endpoints are path templates, never ids.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus

from singer_sdk import metrics


class HttpMetrics:
    """Thread-safe: worker threads report responses; a stream flushes its counts."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], metrics.Counter] = {}

    def observe(self, stream: str, endpoint: str, status: int, seconds: float) -> None:
        """One response: a duration point now, one more in the endpoint's count."""
        point = metrics.Point(
            "timer",
            metric=metrics.Metric.HTTP_REQUEST_DURATION,
            value=seconds,
            tags={
                metrics.Tag.STREAM: stream,
                metrics.Tag.ENDPOINT: endpoint,
                metrics.Tag.HTTP_STATUS_CODE: status,
                metrics.Tag.STATUS: (
                    metrics.Status.SUCCEEDED
                    if status < HTTPStatus.BAD_REQUEST
                    else metrics.Status.FAILED
                ),
            },
        )
        metrics.log(self._logger, point)
        with self._lock:
            key = (stream, endpoint)
            counter = self._counters.get(key)
            if counter is None:
                counter = metrics.http_request_counter(stream, endpoint)
                counter.logger = self._logger
                self._counters[key] = counter.__enter__()
            counter.increment()

    def flush(self) -> None:
        """Write the request counts so far (at each stream's end, as the SDK does).

        Streams sync one after another, so these are the finished stream's counts
        and those of any parent listing it read.
        """
        with self._lock:
            counters = list(self._counters.values())
            self._counters.clear()
        for counter in counters:
            counter.exit()
