"""A hostile HTTP server on loopback: it answers what no well-behaved API would.

Each connection's request head is recorded, then a scenario function writes
whatever raw bytes it likes to the socket: a body one byte at a time, headers
that never end, a redirect elsewhere, an error message that echoes the
Authorization header. The fake Metronome API (`fake_metronome`) covers hostile
*content* through its `tamper` hook; this covers hostile *HTTP*.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable

Scenario = Callable[[bytes, socket.socket, threading.Event], None]


class HostileServer:
    """Serves `scenario` on a free loopback port until stopped."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.heads: list[bytes] = []
        self.stopped = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(10)
                head = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        chunk = sock.recv(4096)
                        if not chunk:
                            return
                        head += chunk
                outer.heads.append(head)
                with contextlib.suppress(OSError):
                    outer.scenario(head, sock, outer.stopped)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self._server.shutdown()
        self._server.server_close()


def answer(status: str, body: bytes, headers: dict[str, str] | None = None) -> Scenario:
    """A complete answer with the given status line, body and headers."""

    def scenario(head: bytes, sock: socket.socket, stopped: threading.Event) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines += ["Connection: close", "", ""]
        sock.sendall("\r\n".join(lines).encode() + body)

    return scenario


def trickle(*, interval: float, in_headers: bool = False) -> Scenario:
    """A valid-looking answer that arrives one byte every `interval` seconds."""

    def scenario(head: bytes, sock: socket.socket, stopped: threading.Event) -> None:
        body = b'{"data": [], "next_page": null}' + b" " * 100_000
        status = b"HTTP/1.1 200 OK\r\n"
        headers = (
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        if in_headers:
            payload = status + headers + body
        else:
            sock.sendall(status + headers + body[:10])
            payload = body[10:]
        for byte in payload:
            if stopped.wait(interval):
                return
            sock.sendall(bytes([byte]))

    return scenario


def echo_authorization(
    head: bytes, sock: socket.socket, stopped: threading.Event
) -> None:
    """A 400 whose message repeats the request's Authorization header, with forged lines."""
    auth = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"authorization:"):
            auth = line.split(b":", 1)[1].strip()
    message = (
        b'{"message": "bad request from '
        + auth
        + b"\\n2026-01-01 | ERROR | forged line\\r\\n"
        + b"x" * 1_000_000
        + b'"}'
    )
    answer("400 Bad Request", message, {"Content-Type": "application/json"})(
        head, sock, stopped
    )
