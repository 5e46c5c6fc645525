"""The Singer SDK's generated standard tests, run against the fake API."""

from __future__ import annotations

import socket

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_metronome.tap import TapMetronome
from tests.fake_metronome import TOKEN, FakeData, FakeMetronomeApp, FakeMetronomeServer

# The SDK's standard tests sync a 130-customer account: `make test` runs it,
# `make check` does not.
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PORT = _free_port()
CONFIG = {
    "auth_token": TOKEN,
    "api_url": f"http://127.0.0.1:{PORT}",
    "start_date": "2024-06-01",
    "end_date": "2024-06-15",
    "max_requests_per_second": 1000,
}

_StandardTests = get_tap_test_class(
    TapMetronome,
    config=CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
    parse_env_config=False,
)


class TestTapMetronome(_StandardTests):
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def fake_metronome(cls):
        data = FakeData.generate(customers=120, archived=10, plans=6)
        with FakeMetronomeServer(FakeMetronomeApp(data), port=PORT):
            yield
