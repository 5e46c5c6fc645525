"""PyAirbyte reads `source-metronome` into its DuckDB cache, offline, twice.

PyAirbyte depends on airbyte-cdk, whose pins conflict with the tap's, so it is
installed into a virtual environment of its own (by uv, in seconds) and runs
`tests/airbyte/pyairbyte_read.py` there, which uses our `source-metronome`
through `local_executable`, the way a PyAirbyte user would. The second read
is incremental: PyAirbyte passes back the per-stream state it stored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tap_config
from tests.fake_metronome import FakeData

#: Pinned so that a PyAirbyte release cannot change what this test means.
PYAIRBYTE = "airbyte==0.71.3"
SCRIPT = Path(__file__).parent / "airbyte" / "pyairbyte_read.py"
SOURCE = Path(sys.executable).parent / "source-metronome"
START, END = date(2024, 6, 1), date(2024, 6, 15)
LOOKBACK = 3

# Real components (PyAirbyte, installed by uv from the package index, and its
# DuckDB cache): `make test` runs it, `make check` does not.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pyairbyte(tmp_path_factory) -> Path:
    """A virtual environment with PyAirbyte, apart from ours."""
    venv = tmp_path_factory.mktemp("pyairbyte") / "venv"
    uv = Path(sys.executable).parent / "uv"
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, venv], check=True
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", python, PYAIRBYTE], check=True
    )
    return python


def read_with_pyairbyte(
    python: Path, config: dict[str, Any], run_dir: Path
) -> tuple[dict[str, Any], str]:
    (run_dir / "config.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "AIRBYTE_OFFLINE_MODE": "1",  # no registry lookups, no network
        "DO_NOT_TRACK": "1",
        "AIRBYTE_LOGGING_ROOT": str(run_dir / "logs"),
        "AIRBYTE_LOCAL_CACHE_DIR": str(run_dir / "cache"),
    }
    run = subprocess.run(
        [python, SCRIPT, run_dir / "config.json", SOURCE, run_dir],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    return summary, run.stdout


def test_pyairbyte_reads_into_duckdb_then_incrementally(pyairbyte, fake_api, tmp_path):
    data = FakeData.generate(customers=30, archived=4, plans=4, unsupported_every=11)
    server = fake_api(data)
    config = tap_config(
        server,
        start_date=START.isoformat(),
        end_date=END.isoformat(),
        lookback_days=LOOKBACK,
    )
    first, printed = read_with_pyairbyte(pyairbyte, config, tmp_path)
    print(printed)
    tables = first["tables"]
    costs = data.cost_rows(START, END)
    assert tables["customers"]["rows"] == 34
    assert tables["plans"]["rows"] == 4
    assert tables["plan_charges"]["rows"] == sum(len(c) for c in data.charges.values())
    assert tables["customer_costs"]["rows"] == len(costs)
    assert tables["audit_logs"]["rows"] == len(data.audit_logs)
    assert all(t["rows"] == t["keys"] for t in tables.values()), tables
    assert all(t["rows"] > 0 for t in tables.values()), tables
    exact = sum((c for c in costs.values() if c is not None), Decimal(0))
    assert Decimal(first["sum_cost"]) == exact
    assert first["processed_records"] == sum(first["read"].values())

    # Late usage changes the last days, new audit entries arrive; the second
    # read starts from the state PyAirbyte kept and leaves no duplicate rows.
    data.revise_costs(since=END - timedelta(days=2))
    new_entries = data.add_audit_entries(3)
    server.app.reset_requests()
    second, printed = read_with_pyairbyte(pyairbyte, config, tmp_path)
    print(printed)
    starts = {
        fields["starting_on"]
        for path, fields in server.app.requests
        if path.endswith("/costs")
    }
    assert f"{END - timedelta(days=LOOKBACK)}T00:00:00Z" in starts
    assert f"{START}T00:00:00Z" not in starts - {
        # customers skipped for an unsupported answer are tried from the start
        fields["starting_on"]
        for path, fields in server.app.requests
        if path.endswith("/costs") and path.split("/")[3] in data.unsupported
    }
    # Only the lookback of each bookmarked customer, and only the new entries
    # (plus those of the bookmark's own second, which upsert).
    assert second["read"]["customer_costs"] < first["read"]["customer_costs"] / 2
    assert len(new_entries) <= second["read"]["audit_logs"] <= len(new_entries) + 2
    tables = second["tables"]
    assert all(t["rows"] == t["keys"] for t in tables.values()), tables
    costs = data.cost_rows(START, END)
    assert tables["customer_costs"]["rows"] == len(costs)
    assert tables["audit_logs"]["rows"] == len(data.audit_logs)
    exact = sum((c for c in costs.values() if c is not None), Decimal(0))
    assert Decimal(second["sum_cost"]) == exact
