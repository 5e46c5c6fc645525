"""Faults, crashes and secrets: the sync rides out what it can and loses nothing."""

from __future__ import annotations

import json
import random

import pytest

from tap_metronome.bookmarks import CustomerBookmarks
from tap_metronome.streams import STREAM_TYPES
from tap_metronome.windows import end_of_today
from tests.conftest import run_tap, run_until_killed, tap_config
from tests.fake_metronome import (
    FAULTS,
    FakeData,
    FakeMetronomeApp,
    FakeMetronomeServer,
    Faults,
)

# Faults, kills at random points, pacing and secrets: several syncs of a
# 35-customer account per test. `make test` runs it, `make check` does not.
pytestmark = pytest.mark.slow

SECRET = "sk-VERY-RECOGNISABLE-SECRET-4242"
PRIMARY_KEYS = {t.name: tuple(t.primary_keys or ()) for t in STREAM_TYPES}
SINGER_TYPES = {"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH"}
#: Fast retries for tests: short backoff and a timeout the "slow" fault exceeds.
FAST_RETRIES = {
    # Long enough that a busy machine answers well within it; "slow" faults
    # (SLOW_SECONDS) exceed it by far.
    "request_timeout": 1.5,
    "retry_backoff_seconds": 0.01,
    "max_retries": 10,
}
SLOW_SECONDS = 4.0


def data() -> FakeData:
    return FakeData.generate(
        customers=30, archived=5, plans=6, charges_per_plan=3, unsupported_every=17
    )


def config_for(server, **overrides):
    # 130 days in 25-day windows (6 costs requests per customer), 25-item list pages.
    settings = {
        "start_date": "2024-01-01",
        "end_date": "2024-05-10",
        "page_size": 25,
        **FAST_RETRIES,
    }
    return tap_config(server, **{**settings, **overrides})


def records_by_key(messages) -> dict[tuple, dict]:
    keyed: dict[tuple, dict] = {}
    for message in messages:
        if message["type"] == "RECORD":
            stream = message["stream"]
            key = (stream, *(message["record"][k] for k in PRIMARY_KEYS[stream]))
            keyed[key] = message["record"]
    return keyed


def assert_clean_stdout(run) -> None:
    for line in run.stdout.splitlines():
        message = json.loads(line)  # one valid JSON document per line
        assert message["type"] in SINGER_TYPES


def test_twenty_percent_faults_change_nothing(clean, fake_api, tmp_path):
    faults = Faults.evenly(0.20, seed=11, slow_seconds=SLOW_SECONDS)
    server = fake_api(data(), faults=faults)
    run = run_tap(config_for(server), tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert all(faults.injected[name] > 0 for name in FAULTS), faults.injected
    injected = sum(faults.injected.values())
    assert injected >= 0.15 * server.app.count()
    assert records_by_key(run.messages) == records_by_key(clean.messages)
    assert run.final_state == clean.final_state
    assert_clean_stdout(run)
    retries = [line for line in run.stderr.splitlines() if "Retrying stream" in line]
    timeouts = [line for line in retries if "no complete response within" in line]
    # One WARNING line per retry: exactly one per injected fault, except that a
    # machine busy enough to pass request_timeout adds timeouts of its own.
    assert len(retries) - len(timeouts) == injected - faults.injected["slow"]
    assert len(timeouts) >= faults.injected["slow"]
    assert any("X-Metronome-Rate-Limit-Type: client" in line for line in retries)


def test_faults_beyond_retries_fail_clearly_and_keep_state_valid(
    clean, fake_api, tmp_path
):
    # Costs work for 5 customers (6 windows each), then every costs request fails;
    # sequential, so those 5 customers are certainly complete and bookmarked.
    faults = Faults({"503": 1.0}, only_path="/costs", start_after=30)
    server = fake_api(data(), faults=faults)
    run = run_tap(config_for(server, max_retries=2, max_concurrency=1), tmp_path)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert "failed after 3 attempts; last error: HTTP 503" in last
    assert "/costs (stream customer_costs)" in last
    assert_clean_stdout(run)
    state = run.final_state
    bookmarks, _ = CustomerBookmarks.from_state(
        state["bookmarks"]["customer_costs"],
        latest=end_of_today(),
        stream="customer_costs",
        key="synced_until",
    )
    # All 5 complete customers: the bookmarks are written on the way out too.
    assert len(bookmarks) == 5
    # The state it left behind resumes to the same result as a clean run.
    server.app.faults = Faults()
    (tmp_path / "resume").mkdir()
    resumed = run_tap(config_for(server), tmp_path / "resume", state=state)
    assert resumed.returncode == 0, resumed.stderr
    union = records_by_key(run.messages) | records_by_key(resumed.messages)
    assert union == records_by_key(clean.messages)
    assert resumed.final_state == clean.final_state


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sigkill_at_a_random_point_loses_nothing(clean, fake_api, tmp_path, seed):
    server = fake_api(data())
    cut = random.Random(seed).randrange(5, len(clean.messages) - 5)
    partial = run_until_killed(
        config_for(server), tmp_path, stop=lambda messages: len(messages) >= cut
    )
    assert_resumes_to_clean(partial, server, tmp_path, clean)


def assert_resumes_to_clean(partial, server, tmp_path, clean) -> None:
    """A rerun from the last STATE of `partial` completes it to the clean run."""
    states = [m["value"] for m in partial if m["type"] == "STATE"]
    (tmp_path / "rerun").mkdir()
    rerun = run_tap(
        config_for(server), tmp_path / "rerun", state=states[-1] if states else None
    )
    assert rerun.returncode == 0, rerun.stderr
    union = records_by_key(partial) | records_by_key(rerun.messages)
    assert union == records_by_key(clean.messages)
    assert rerun.final_state == clean.final_state


def test_pacing_keeps_the_run_under_the_server_limit(fake_api, tmp_path):
    """One budget for all worker threads: no 429 from a server limited to the same rate."""
    # About 60 requests: three seconds of the server's budget.
    data = FakeData.generate(customers=25, archived=0, plans=2)
    server = fake_api(data, rate_limit=20)
    one_day = {
        "start_date": "2024-06-01",
        "end_date": "2024-06-02",
        "max_concurrency": 8,
    }
    (tmp_path / "paced").mkdir()
    paced = run_tap(
        tap_config(server, max_requests_per_second=20, **one_day), tmp_path / "paced"
    )
    assert paced.returncode == 0, paced.stderr
    assert server.app.rate_limited == 0
    # The same run with a budget above the server's limit bursts past it: the
    # check above can fail.
    (tmp_path / "unpaced").mkdir()
    run_tap(
        tap_config(server, max_requests_per_second=1000, **one_day),
        tmp_path / "unpaced",
    )
    assert server.app.rate_limited > 0


# -- secrets -------------------------------------------------------------------------------


def _all_output(run) -> str:
    return run.stdout + run.stderr


def test_the_token_never_appears_in_any_output(fake_api, tmp_path):
    server = fake_api(data())
    debug = {"TAP_METRONOME_LOGLEVEL": "DEBUG"}
    outputs = []
    paths = {
        "about": ({}, ("--about", "--format=json")),
        "about-md": ({}, ("--about", "--format=markdown")),
        "discover": ({}, ("--discover",)),
        "sync": ({}, ()),
        "bad-config": ({"page_size": 0, "api_url": "http://example.com"}, ()),
    }
    for name, (overrides, args) in paths.items():
        (tmp_path / name).mkdir()
        run = run_tap(
            config_for(server, auth_token=SECRET, **overrides),
            tmp_path / name,
            args=args,
            env=debug,
        )
        outputs.append((name, run))
    # Rejected token (401), and retries exhausted under faults, at DEBUG.
    bad_token_app = FakeMetronomeApp(data())
    with FakeMetronomeServer(bad_token_app) as other:
        (tmp_path / "401").mkdir()
        outputs.append(
            (
                "401",
                run_tap(
                    config_for(other, auth_token=SECRET), tmp_path / "401", env=debug
                ),
            )
        )
    server.app.token = SECRET
    server.app.faults = Faults({"slow": 0.5, "reset": 0.5}, slow_seconds=SLOW_SECONDS)
    (tmp_path / "faults").mkdir()
    outputs.append(
        (
            "faults",
            run_tap(
                config_for(server, auth_token=SECRET, max_retries=1),
                tmp_path / "faults",
                env=debug,
            ),
        )
    )
    # From the environment as well as from the config file.
    server.app.faults = Faults()
    (tmp_path / "env").mkdir()
    env_config = config_for(server)
    env_config.pop("auth_token")
    outputs.append(
        (
            "env",
            run_tap(
                env_config,
                tmp_path / "env",
                args=("--config", "ENV"),
                env={**debug, "TAP_METRONOME_AUTH_TOKEN": SECRET},
            ),
        )
    )
    codes = {name: run.returncode for name, run in outputs}
    assert codes == {
        "about": 0,
        "about-md": 0,
        "discover": 0,
        "sync": 2,  # the fake still expects its own token
        "bad-config": 1,
        "401": 2,
        "faults": 2,
        "env": 0,
    }
    for name, run in outputs:
        assert SECRET not in _all_output(run), name
        assert SECRET[3:-3] not in _all_output(run), name
    for name, run in outputs:
        if name not in {"about", "about-md", "discover"}:
            assert_clean_stdout(run)
