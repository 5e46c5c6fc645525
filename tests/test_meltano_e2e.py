"""`meltano run tap-metronome target-duckdb` end to end, checked with SQL."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import MELTANO, REPO, project_env
from tests.fake_metronome import TOKEN, FakeData, unexpected_values
from tests.stream_classes import key_list

START, END = date(2024, 3, 1), date(2024, 4, 15)
LOOKBACK = 35

# Real components (Meltano, DuckDB): `make test` runs it, `make check` does not.
pytestmark = pytest.mark.e2e

# ruff: noqa: S608 - table names in these queries are constants of the test


def meltano_env(server, project: Path, **extra: str) -> dict[str, str]:
    """The environment of a `meltano run` in `project` of the tap against `server`."""
    return project_env(
        project,
        {
            "TAP_METRONOME_API_URL": server.url,
            "TAP_METRONOME_AUTH_TOKEN": TOKEN,
            "TAP_METRONOME_START_DATE": START.isoformat(),
            "TAP_METRONOME_END_DATE": END.isoformat(),
            "TAP_METRONOME_MAX_REQUESTS_PER_SECOND": "1000",
            **extra,
        },
    )


def meltano_run(server, project: Path, database: Path) -> subprocess.CompletedProcess:
    env = meltano_env(server, project, TARGET_DUCKDB_FILEPATH=str(database))
    return subprocess.run(
        [MELTANO, "--environment", "demo", "run", "tap-metronome", "target-duckdb"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def query(database: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as db:
        return db.execute(sql).fetchall()


def expected_cost_rows(data: FakeData) -> dict[tuple[str, str, str], Decimal | None]:
    return data.cost_rows(START, END)


def test_meltano_run_into_duckdb_then_incremental(meltano_project, fake_api, tmp_path):
    data = FakeData.generate(customers=40, archived=5, plans=5, unsupported_every=19)
    server = fake_api(data)
    database = tmp_path / "warehouse.duckdb"

    first = meltano_run(server, meltano_project, database)
    assert first.returncode == 0, first.stderr[-4000:]

    counts = {
        table: query(database, f"SELECT count(*) FROM metronome.{table}")[0][0]
        for table in ("customers", "plans", "plan_charges", "customer_costs")
    }
    expected = expected_cost_rows(data)
    assert counts == {
        "customers": 45,
        "plans": 5,
        "plan_charges": sum(len(c) for c in data.charges.values()),
        "customer_costs": len(expected),
    }
    for table in counts:
        key = key_list(table)
        (duplicates,) = query(
            database,
            f"SELECT count(*) FROM (SELECT {key} FROM metronome.{table} GROUP BY ALL HAVING count(*) > 1)",
        )[0]
        assert duplicates == 0, table
    exact_total = sum((c for c in expected.values() if c is not None), Decimal(0))
    (total,) = query(
        database,
        "SELECT SUM(CAST(cost_exact AS DECIMAL(38, 10))) FROM metronome.customer_costs",
    )[0]
    assert total == exact_total
    (per_customer,) = query(
        database, "SELECT count(DISTINCT customer_id) FROM metronome.customer_costs"
    )[0]
    assert per_customer == 45 - len(data.unsupported)

    # Late usage changes the last 10 days; the next run reads only the lookback.
    data.revise_costs(since=END - timedelta(days=10))
    server.app.reset_requests()
    second = meltano_run(server, meltano_project, database)
    assert second.returncode == 0, second.stderr[-4000:]
    costs_starts = {
        path.split("/")[3]: args["starting_on"]
        for path, args in server.app.requests
        if path.endswith("/costs")
    }
    lookback_start = f"{END - timedelta(days=LOOKBACK)}T00:00:00Z"
    for customer_id, starting_on in costs_starts.items():
        # Skipped (unsupported) customers have no bookmark and start over.
        expected_start = (
            f"{START}T00:00:00Z" if customer_id in data.unsupported else lookback_start
        )
        assert starting_on == expected_start, customer_id
    # Archived customers (archived in 2023, before their bookmark - lookback) cost
    # no request; unsupported ones are tried again.
    archived = {c["id"] for c in data.archived_customers} - data.unsupported
    assert server.app.count(lambda p: p.endswith("/costs")) == 45 - len(archived)
    assert not archived & set(costs_starts)
    expected = expected_cost_rows(data)
    (rows,) = query(database, "SELECT count(*) FROM metronome.customer_costs")[0]
    assert rows == len(expected), "no duplicate rows after the second run"
    (total,) = query(
        database,
        "SELECT SUM(CAST(cost_exact AS DECIMAL(38, 10))) FROM metronome.customer_costs",
    )[0]
    assert total == sum((c for c in expected.values() if c is not None), Decimal(0))


# -- settings through Meltano, and the README's commands ------------------------------------

FRACTIONS = {
    "request_timeout": "7.5",
    "max_retry_seconds": "30.5",
    "retry_backoff_seconds": "0.25",
    "max_requests_per_second": "500.5",
    "progress_interval_seconds": "0.5",
}


def test_fractional_settings_through_meltano_config_set_and_the_environment(
    meltano_project, fake_api
):
    server = fake_api(FakeData.generate(customers=3, archived=0, plans=1))
    project = meltano_project
    env = project_env(project)
    for name, value in FRACTIONS.items():
        done = subprocess.run(
            [MELTANO, "config", "set", "tap-metronome", name, value],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    sync_env = {
        **env,
        "TAP_METRONOME_API_URL": server.url,
        "TAP_METRONOME_AUTH_TOKEN": TOKEN,
        "TAP_METRONOME_START_DATE": "2024-06-01",
        "TAP_METRONOME_END_DATE": "2024-06-03",
    }
    # A sync with the values set above.
    run = subprocess.run(
        [MELTANO, "invoke", "tap-metronome"],
        cwd=project,
        env=sync_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert '"stream":"customer_costs"' in run.stdout
    # What the tap is given, with and without a fraction from the environment
    # (Meltano itself refused both when the settings were declared integers).
    override = {"TAP_METRONOME_MAX_REQUESTS_PER_SECOND": "400.25"}
    for extra, expected in (
        ({}, FRACTIONS),
        (override, FRACTIONS | {"max_requests_per_second": "400.25"}),
    ):
        dumped = subprocess.run(
            [MELTANO, "invoke", "--dump=config", "tap-metronome"],
            cwd=project,
            env={**sync_env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        config = json.loads(dumped.stdout)
        for name, value in expected.items():
            assert float(config[name]) == float(value), name


def readme_commands() -> list[str]:
    """Every `meltano ...` and `make ...` line of the README's shell code blocks."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.DOTALL):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.split(" #")[0].strip().removeprefix("$ ")
            words = shlex.split(line) if line else []
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                words.pop(0)  # VAR=value prefixes
            if words and words[0] in {"meltano", "make"}:
                commands.append(shlex.join(words))
    return commands


def test_the_readmes_meltano_and_make_commands_exist(meltano_project):
    commands = readme_commands()
    assert any(c.startswith("meltano config set") for c in commands)
    env = project_env(meltano_project)
    for command in commands:
        words = shlex.split(command)
        if words[0] == "make":
            check = ["make", "-n", *words[1:]]
        else:  # the subcommand structure must parse: `--help` stops before acting
            check = [MELTANO, *words[1:], "--help"]
        done = subprocess.run(
            check,
            cwd=REPO if words[0] == "make" else meltano_project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr[-1500:])


def test_unexpected_values_load_into_duckdb(meltano_project, fake_api, tmp_path):
    """Values the schema refuses in descriptive fields: the rows load, the value
    null, the original in `_unexpected_values`."""
    data = FakeData.generate(customers=6, archived=2, plans=1)
    server = fake_api(data, tamper=unexpected_values)
    database = tmp_path / "warehouse.duckdb"
    run = meltano_run(server, meltano_project, database)
    assert run.returncode == 0, run.stderr[-4000:]
    rows = query(
        database,
        "SELECT name, created_at, _unexpected_values FROM metronome.customers "
        "WHERE _unexpected_values IS NOT NULL",
    )
    assert len(rows) == 2
    for name, created_at, kept in rows:
        assert (name, created_at) == (None, None)
        assert json.loads(kept) == {
            "/name": 12345,
            "/created_at": "2016-12-31T23:59:60Z",
        }
    assert query(database, "SELECT count(*) FROM metronome.customers")[0][0] == 8
    invoices = query(
        database,
        "SELECT count(*) FROM metronome.invoices WHERE billable_status IS NULL "
        "AND _unexpected_values IS NOT NULL",
    )[0][0]
    assert invoices == sum(1 for c in data.all_customer_ids() if data.invoices(c))
