"""Shared fixtures: a fake Metronome API on loopback and a way to run the tap."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests import tap_process
from tests.fake_metronome import TOKEN, FakeData, FakeMetronomeApp, FakeMetronomeServer

REPO = Path(__file__).resolve().parent.parent
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


@dataclass
class TapRun:
    """What one tap process did: exit code, Singer messages, raw output."""

    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any] | None:
        states = self.states()
        return states[-1] if states else None


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without TAP_METRONOME_* variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_METRONOME")}
    return {**env, **(extra or {})}


def run_tap(
    config: dict[str, Any],
    tmp_path: Path,
    *,
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120,
    program: str = tap_process.TAP,
) -> TapRun:
    """Run the tap in its own process as a user would and parse its stdout.

    `program`: another entry point, e.g. `tests.pinned_clock` (a pinned clock).
    """
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    command = ["--config", str(config_path)]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state, default=str))
        command += ["--state", str(tmp_path / "state.json")]
    if catalog is not None:
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        command += ["--catalog", str(tmp_path / "catalog.json")]
    command += list(args)
    proc = tap_process.run(
        command, cwd=tmp_path, env=clean_env(env), timeout=timeout, program=program
    )
    singer_output = not {"--about", "--discover"} & set(args)
    messages = (
        [_DECODER.decode(line) for line in proc.stdout.splitlines() if line.strip()]
        if singer_output
        else []
    )
    return TapRun(proc.returncode, proc.stdout, proc.stderr, messages)


def start_tap(
    config: dict[str, Any],
    tmp_path: Path,
    *,
    stdout: tap_process.Stream,
    stderr: tap_process.Stream,
    text: bool = False,
    args: tuple[str, ...] = (),
) -> tap_process.TapProcess:
    """Start the tap on `config` (written to tmp_path/config.json) without waiting."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tap_process.TapProcess(
        ["--config", "config.json", *args],
        cwd=tmp_path,
        env=clean_env(),
        stdout=stdout,
        stderr=stderr,
        text=text,
    )


def run_until_killed(
    config: dict[str, Any],
    tmp_path: Path,
    stop: Callable[[list[dict[str, Any]]], bool],
    args: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Run the tap, SIGKILL it as soon as `stop(messages so far)` is true.

    Returns the Singer messages read before the kill, as a crash would leave them.
    """
    proc = start_tap(
        config, tmp_path, stdout=tap_process.PIPE, stderr=tap_process.DEVNULL, args=args
    )
    assert proc.stdout is not None
    messages: list[dict[str, Any]] = []
    for line in proc.stdout:
        messages.append(_DECODER.decode(line))
        if stop(messages):
            proc.kill()
            break
    proc.wait(timeout=30)
    proc.stdout.close()
    return messages


def tap_about(output_format: str) -> str:
    """What `tap-metronome --about --format=<output_format>` prints."""
    return subprocess.run(
        [sys.executable, "-m", "tap_metronome", "--about", f"--format={output_format}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def fake_api() -> Iterator[Any]:
    """Start fake Metronome servers with chosen data; all are stopped afterwards."""
    servers: list[FakeMetronomeServer] = []

    def start(data: FakeData | None = None, **app_options: Any) -> FakeMetronomeServer:
        app = FakeMetronomeApp(data or FakeData.generate(), **app_options)
        server = FakeMetronomeServer(app)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def catalog_selecting(
    config: dict[str, Any], run_dir: Path, selected: set[str]
) -> dict[str, Any]:
    """The tap's own catalog (`--discover`) with only `selected` streams selected."""
    discovered = run_tap(config, run_dir, args=("--discover",))
    catalog: dict[str, Any] = json.loads(discovered.stdout)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in selected
    return catalog


def tap_config(server: FakeMetronomeServer, **overrides: Any) -> dict[str, Any]:
    """A valid config pointing at a fake server (a short costs range by default)."""
    return {
        "auth_token": TOKEN,
        "api_url": server.url,
        "start_date": "2024-06-01",
        "end_date": "2024-06-08",
        # Tests measure behaviour, not the production pacing of 8 requests/second.
        "max_requests_per_second": 1000,
        **overrides,
    }


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> TapRun:
    """The reference for fault and kill tests: a sync of every stream with no faults.

    Only read (test_reliability and test_signals compare with it): taken once
    per test process, not once per module.
    """
    from tests.test_reliability import config_for, data

    with FakeMetronomeServer(FakeMetronomeApp(data())) as server:
        run = run_tap(config_for(server), tmp_path_factory.mktemp("clean"))
    assert run.returncode == 0, run.stderr
    return run


MELTANO = str(Path(sys.executable).parent / "meltano")
#: Fixtures that start a real component (Meltano's plugins, PostgreSQL, PyAirbyte):
#: a test that uses one must be marked `e2e`, so that `make check` never starts it.
E2E_FIXTURES = frozenset({"meltano_installed", "postgres", "pyairbyte"})


#: The test files that take longest (minutes of a worker's time on 2 cores, from
#: `pytest --durations`), handed out first: pytest-xdist gives each worker the next
#: file when it is free, so a long file left for last would run alone at the end.
#: The other files follow in their usual order (`--no-loadscope-reorder`: xdist
#: would otherwise start with the files that have the most tests, the quick ones).
SLOWEST_FIRST = (
    "test_reliability.py",
    "test_costs.py",
    "test_signals.py",
    "test_hostile.py",
    "test_postgres_e2e.py",
    "test_meltano_e2e.py",
    "test_pyairbyte_e2e.py",
    "test_concurrency.py",
    "test_sync.py",
    "test_pagination.py",
    "test_standard.py",
    "test_hostile_times.py",
    "test_output_errors.py",
    "test_golden.py",
    "test_packaging.py",
    "test_billing.py",
    "test_spec_properties.py",
)


def _file_rank(item) -> int:
    name = item.path.name
    return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=_file_rank)  # stable: a file's tests keep their order
    unmarked = [
        item.nodeid
        for item in items
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("e2e") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests start Meltano, PostgreSQL or PyAirbyte: mark them "
            f"`pytest.mark.e2e`: {', '.join(unmarked)}"
        )


@pytest.fixture(scope="session")
def meltano_installed() -> None:
    """The plugins of meltano.yml, installed into .meltano/ (once per test process).

    A file lock keeps two test processes (pytest-xdist workers) from installing
    into the same virtual environments at once.
    """
    lock_path = REPO / ".meltano" / "install.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([MELTANO, "install"], cwd=REPO, check=True, capture_output=True)


@pytest.fixture
def meltano_project(meltano_installed, tmp_path) -> Path:
    """A copy of the Meltano project that shares the installed plugins.

    Each test gets its own .meltano/run (where Meltano rewrites the discovered
    catalog on every run whose config differs) and its own system database, so
    two Meltano runs never read each other's half-written files.
    """
    project = tmp_path / "project"
    (project / ".meltano").mkdir(parents=True)
    shutil.copy(REPO / "meltano.yml", project / "meltano.yml")
    for kind in ("extractors", "loaders"):
        (project / ".meltano" / kind).symlink_to(REPO / ".meltano" / kind)
    return project


def project_env(project: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """`clean_env` for Meltano commands in `project`, with its own system database."""
    database = project / ".meltano" / "meltano.db"
    return clean_env({"MELTANO_DATABASE_URI": f"sqlite:///{database}", **(extra or {})})
