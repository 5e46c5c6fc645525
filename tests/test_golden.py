"""The four original streams sync exactly as before the stream layer was rebuilt.

`tests/golden_four_streams.json` holds digests (records per stream, final state,
every request with its parameters) taken with the previous stream layer on fixed
fake data, for a first sync and an incremental one after late usage.
"""

from __future__ import annotations

import json

import pytest

from tests.golden import GOLDEN, take

# Two syncs of fixed data compared with stored digests: `make test` runs it,
# `make check` does not.
pytestmark = pytest.mark.slow


def test_records_state_and_requests_equal_the_previous_stream_layer(tmp_path):
    assert take(tmp_path) == json.loads(GOLDEN.read_text())
