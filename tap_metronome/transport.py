"""HTTP sessions whose every response is bounded in time and size.

`requests` timeouts bound each socket operation, not a response: a server that
sends one byte every half second keeps a request alive forever. Here every
request runs under a `Deadline`; when it passes, a watchdog thread shuts the
connection's socket down, which ends any read in progress at once, and the
client reports the request as a timeout. Bodies are read in chunks up to
`MAX_BODY_BYTES`.

One watchdog thread serves every deadline of the process. A timer thread per
request (the obvious way) started and stopped a thread for each of thousands of
requests: a third of a costs backfill's context switches.

The socket is found through urllib3's documented extension point, the
connection class of a pool: `getresponse()` is called on every request, new or
reused connection, after the request is sent and before anything is read.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

#: A page of 100 items is a few hundred KB; anything near this is not an answer.
MAX_BODY_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024

_current = threading.local()


class BodyTooLargeError(Exception):
    """The response body passed `MAX_BODY_BYTES`."""


class _Watchdog:
    """Expires deadlines when they are due, all on one daemon thread.

    Requests share one timeout, so a new deadline is almost never due before
    the ones already watched: adding one wakes the thread only when it is.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._due: dict[Deadline, float] = {}
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline, due: float) -> None:
        """Expire `deadline` at `due` (time.monotonic) unless it is unwatched first."""
        with self._cond:
            self._due[deadline] = due
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="request-deadlines", daemon=True
                )
                thread.start()  # if it cannot start, the next request tries again
                self._thread = thread
            elif due < self._wake_at:
                self._cond.notify()

    def unwatch(self, deadline: Deadline) -> None:
        """The request ended: its deadline no longer matters."""
        with self._cond:
            self._due.pop(deadline, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [d for d, at in self._due.items() if at <= now]
                for deadline in due:
                    del self._due[deadline]
                self._wake_at = min(self._due.values(), default=math.inf)
                if not due:
                    self._cond.wait(
                        None if self._wake_at == math.inf else self._wake_at - now
                    )
                    continue
            for deadline in due:  # outside the lock: expiring shuts a socket
                deadline.expire()


_watchdog = _Watchdog()


def _new_watchdog_in_child() -> None:
    # A forked child has none of the parent's threads: it starts its own.
    global _watchdog
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_new_watchdog_in_child)


class Deadline:
    """Ends the request of the current thread, wherever it is, after `seconds`."""

    def __init__(self, seconds: float) -> None:
        # Re-entrant: `expire` may run in a signal handler on the main thread
        # while that thread is inside `attach`.
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self.expired = False
        self._seconds = seconds

    def __enter__(self) -> Deadline:
        _current.deadline = self
        _watchdog.watch(self, time.monotonic() + self._seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _watchdog.unwatch(self)
        _current.deadline = None

    def attach(self, sock: socket.socket) -> None:
        """Watch the socket the request is being answered on."""
        with self._lock:
            self._sock = sock
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        """End the request now (it is due, or the run is stopping)."""
        with self._lock:
            self.expired = True
            sock = self._sock
        if sock is not None:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket: it only wakes the
    # reader, without touching TLS state that the reading thread is using.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.attach(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch(self.sock)
        return super().getresponse()


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager


def new_session(base_url: str, headers: dict[str, str]) -> requests.Session:
    """A session for `base_url` whose requests can be bounded by a `Deadline`.

    The environment is not trusted wholesale: a `~/.netrc` entry would replace
    the Authorization header, and a proxy for a plain-http (loopback) URL would
    receive the token in clear text. Proxies from the environment (and its
    `NO_PROXY`) are used for https only, where the proxy sees only a tunnel.
    """
    session = requests.Session()
    session.trust_env = False
    if base_url.startswith("https://"):
        proxies = requests.utils.get_environ_proxies(base_url)
        proxy = proxies.get("https") or proxies.get("all")
        if proxy:
            session.proxies = {"https": proxy}
        # What trust_env would have read: a corporate CA bundle.
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
            "CURL_CA_BUNDLE"
        )
        if bundle:
            session.verify = bundle
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(headers)
    return session


def read_body(response: requests.Response) -> bytes:
    """The whole (decoded) body of a streamed response, at most `MAX_BODY_BYTES`."""
    body = bytearray()
    try:
        for chunk in response.iter_content(_CHUNK):
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BodyTooLargeError
    finally:
        response.close()
    return bytes(body)
