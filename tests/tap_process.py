"""Start the tap as its own process without paying for Python's start-up each time.

The suite starts the tap about 300 times, and importing the SDK takes most of a
second of CPU each time. Here every run is a process forked from a server that
has already imported `tap_metronome.cli` (multiprocessing's forkserver). Each run
still has its own pid, environment, working directory, stdout, stderr, exit code
and signal handlers, and runs exactly what `python -m tap_metronome` runs after
its imports. What it skips is the interpreter start-up and the imports, which
`tests/test_packaging.py` covers by running the console script of a freshly
installed wheel. `TAP_TESTS_EXEC=1` runs every test with a real
`python -m tap_metronome` instead.

`TapProcess` has the part of `subprocess.Popen`'s interface the tests use.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL

_EXEC = os.environ.get("TAP_TESTS_EXEC") == "1"
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["tap_metronome.cli", "tap_metronome.airbyte.cli"])
#: The programs a test can run: the Singer tap, and the Airbyte source.
TAP = "tap_metronome"
SOURCE = "tap_metronome.airbyte"

Stream = int | str | Path | None  # PIPE, DEVNULL, a file path, or inherit (None)
#: A file to read as stdin (`< file`), or bytes a thread writes into a pipe (`cat |`).
Stdin = Path | bytes | None


def _child(
    args: list[str],
    cwd: str,
    env: dict[str, str],
    streams: list[tuple[int, Any]],
    program: str,
) -> None:
    """The forked process: stdio, directory and environment, then the tap's main()."""
    for target_fd, where in streams:
        if isinstance(where, Connection):
            os.dup2(where.fileno(), target_fd)
            where.close()
        else:
            flags = (
                os.O_RDONLY if target_fd == 0 else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            )
            fd = os.open(where, flags, 0o644)
            os.dup2(fd, target_fd)
            os.close(fd)
        if target_fd == 0:
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    main = importlib.import_module(f"{program}.cli").main
    try:
        main(args)  # exits with the tap's code (SystemExit, as in a real run)
    finally:
        # An interpreter runs its exit functions (the tap's last flush of records
        # is one); a multiprocessing child ends with os._exit and would skip them.
        atexit._run_exitfuncs()


class TapProcess:
    """`tap-metronome <args>` in its own process; a small `subprocess.Popen`."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: str | Path,
        env: Mapping[str, str] | None = None,
        stdout: Stream = None,
        stderr: Stream = None,
        text: bool = False,
        program: str = TAP,
        stdin: Stdin = None,
    ) -> None:
        env = dict(os.environ if env is None else env)
        self.returncode: int | None = None
        self.stdout: IO[Any] | None = None
        self.stderr: IO[Any] | None = None
        stdin_fd = _feed(stdin) if isinstance(stdin, bytes) else None
        if _EXEC:
            out, err = _popen_stream(stdout), _popen_stream(stderr)
            source: Any = stdin_fd
            if isinstance(stdin, Path):
                source = open(stdin, "rb")  # noqa: SIM115 - closed once started
            self._popen: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", program, *args],
                cwd=cwd,
                env=env,
                stdin=source,
                stdout=out,
                stderr=err,
                text=text,
            )
            for stream in (out, err):  # the child has its own copy of a file
                if hasattr(stream, "close"):
                    stream.close()
            if isinstance(source, int):
                os.close(source)
            elif source is not None:
                source.close()
            self.pid = self._popen.pid
            self.stdout, self.stderr = self._popen.stdout, self._popen.stderr
            return
        self._popen = None
        streams: list[tuple[int, Any]] = []
        child_ends: list[Connection] = []
        if stdin_fd is not None:
            read_end = Connection(stdin_fd, writable=False)
            child_ends.append(read_end)
            streams.append((0, read_end))
        elif stdin is not None:
            streams.append((0, str(stdin)))
        for target_fd, where in ((1, stdout), (2, stderr)):
            if where is None:
                continue
            if where == PIPE:
                read_fd, write_fd = os.pipe()
                write_end = Connection(write_fd, readable=False)
                child_ends.append(write_end)
                streams.append((target_fd, write_end))
                reader = open(read_fd, "r" if text else "rb")  # noqa: SIM115
                if target_fd == 1:
                    self.stdout = reader
                else:
                    self.stderr = reader
            else:
                path = os.devnull if where == DEVNULL else str(where)
                streams.append((target_fd, path))
        self._process = _context.Process(
            target=_child,
            args=(list(args), str(cwd), env, streams, program),
            daemon=False,
        )
        try:
            self._process.start()
        finally:
            for end in child_ends:  # the child has its own copies now
                end.close()
        assert self._process.pid is not None
        self.pid: int = self._process.pid

    def poll(self) -> int | None:
        if self._popen is not None:
            self.returncode = self._popen.poll()
        else:
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is not None:
            self.returncode = self._popen.wait(timeout)
            return self.returncode
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(["tap-metronome"], timeout or 0)
        self.returncode = self._process.exitcode
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(9)

    def communicate(self, timeout: float | None = None) -> tuple[Any, Any]:
        """Read stdout and stderr to their ends, then wait for the exit."""
        if self._popen is not None:
            out, err = self._popen.communicate(timeout=timeout)
            self.returncode = self._popen.returncode
            return out, err
        results: dict[int, Any] = {}

        def drain(key: int, stream: IO[Any]) -> None:
            with stream:
                results[key] = stream.read()

        readers = [
            threading.Thread(target=drain, args=(key, stream), daemon=True)
            for key, stream in ((1, self.stdout), (2, self.stderr))
            if stream is not None
        ]
        for reader in readers:
            reader.start()
        self.wait(timeout)
        for reader in readers:
            reader.join(timeout)
        return results.get(1), results.get(2)


def _popen_stream(where: Stream) -> Any:
    if where is None or where in (PIPE, DEVNULL):
        return where
    return open(where, "wb")


def run(
    args: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    stdout: Stream = PIPE,
    program: str = TAP,
    stdin: Stdin = None,
) -> subprocess.CompletedProcess[str]:
    """Run the tap to its end, like `subprocess.run(..., capture_output=True, text=True)`."""
    process = TapProcess(
        args,
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=PIPE,
        text=True,
        program=program,
        stdin=stdin,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        ["tap-metronome", *args], process.returncode, out or "", err or ""
    )


def _feed(data: bytes) -> int:
    """The read end of a pipe that a thread fills with `data`, then closes."""
    read_fd, write_fd = os.pipe()

    def write() -> None:
        # The child may stop reading early (a failed run): its pipe breaks.
        with contextlib.suppress(BrokenPipeError), open(write_fd, "wb") as pipe:
            pipe.write(data)

    threading.Thread(target=write, daemon=True).start()
    return read_fd
