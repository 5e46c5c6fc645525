"""`make demo`: Meltano runs tap-metronome into DuckDB against a bundled fake API.

Starts the fake Metronome API on a free loopback port, runs
`meltano --environment demo run tap-metronome target-duckdb`, prints the top
customers by cost over the last 30 days per credit type from the DuckDB file,
stops the fake API, and says how to point the tap at a real account. A second
`make demo` is incremental: Meltano keeps the tap's state between runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_metronome import (  # noqa: E402
    TOKEN,
    FakeData,
    FakeMetronomeApp,
    FakeMetronomeServer,
)

STATE_ID = "demo:tap-metronome-to-target-duckdb"
DATABASE = REPO / ".demo" / "warehouse.duckdb"
MELTANO = str(Path(sys.executable).parent / "meltano")

# A credit type's name is its unit; a row may lack it, other rows of the type have it.
TOP_CUSTOMERS = """
WITH units AS (
    SELECT credit_type_id, MAX(credit_type_name) AS unit
    FROM metronome.customer_costs GROUP BY credit_type_id
)
SELECT c.name AS customer,
       u.unit,
       SUM(CAST(cc.cost_exact AS DECIMAL(38, 10))) AS total
FROM metronome.customer_costs AS cc
JOIN units AS u USING (credit_type_id)
JOIN metronome.customers AS c ON c.id = cc.customer_id
WHERE cc.start_timestamp >= CAST(? AS TIMESTAMP)
GROUP BY ALL
ORDER BY u.unit, total DESC
"""


def meltano(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a meltano command in the repository's Meltano project."""
    return subprocess.run(
        [MELTANO, "--environment", "demo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def saved_bookmarks(env: dict[str, str]) -> int | None:
    """How many customers the saved Meltano state bookmarks (None: no state)."""
    result = meltano("state", "get", STATE_ID, env=env)
    if result.returncode != 0 or not result.stdout.strip().startswith("{"):
        return None
    state = json.loads(result.stdout)
    synced = (
        state.get("singer_state", {})
        .get("bookmarks", {})
        .get("customer_costs", {})
        .get("synced_until", {})
    )
    return sum(len(ids) for ids in synced.values())


def print_top_customers(since: datetime) -> None:
    """The table a newcomer sees: who cost what, in which unit."""
    with duckdb.connect(str(DATABASE), read_only=True) as db:
        rows = db.execute(
            TOP_CUSTOMERS, [since.strftime("%Y-%m-%d %H:%M:%S")]
        ).fetchall()
    print(
        f"\nTop customers by cost since {since:%Y-%m-%d} (last 30 days), per credit type:"
    )
    for unit in sorted({row[1] for row in rows}):
        print(f"  {unit}")
        for customer, _, total in [row for row in rows if row[1] == unit][:5]:
            shown = f"{total:,.2f}"
            if unit == "USD (cents)":
                shown += f"  (= ${total / 100:,.2f})"
            print(f"    {customer:<24} {shown:>28}")


def main() -> int:
    """Run the demo; return Meltano's exit code."""
    (REPO / ".demo").mkdir(exist_ok=True)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    data = FakeData.generate(customers=200, archived=25, plans=6, charges_per_plan=4)
    with FakeMetronomeServer(FakeMetronomeApp(data)) as server:
        print(f"Fake Metronome API listening on {server.url}")
        env = {
            **os.environ,
            "TAP_METRONOME_API_URL": server.url,
            "TAP_METRONOME_AUTH_TOKEN": TOKEN,
            "TAP_METRONOME_START_DATE": (today - timedelta(days=90)).date().isoformat(),
            # The local fake answers in milliseconds; the real default is 8/s.
            "TAP_METRONOME_MAX_REQUESTS_PER_SECOND": "100",
        }
        bookmarked = saved_bookmarks(env)
        if not bookmarked:
            print("First run: no saved state, backfilling 90 days of costs.")
        else:
            print(
                f"Incremental run: Meltano state {STATE_ID!r} bookmarks {bookmarked} "
                "customers; each is re-read from its bookmark minus lookback_days (35)."
            )
        started = time.monotonic()
        run = meltano("run", "tap-metronome", "target-duckdb", env=env)
        elapsed = time.monotonic() - started
        requests = server.app.count()
    (REPO / ".demo" / "meltano-run.log").write_text(run.stdout + run.stderr)
    if run.returncode != 0:
        print(run.stderr[-3000:])
        print(f"meltano run failed (exit {run.returncode}); log: .demo/meltano-run.log")
        return run.returncode
    print(
        f"meltano run tap-metronome target-duckdb: exit 0 in {elapsed:.1f}s, "
        f"{requests} API requests; data in {DATABASE.relative_to(REPO)}"
    )
    print_top_customers(today - timedelta(days=30))
    print("\nFake Metronome API stopped.")
    print(
        "To use your real account: meltano config set tap-metronome auth_token <token>"
        "  then  meltano run tap-metronome target-duckdb"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
