"""Run inside PyAirbyte's own virtual environment by `tests/test_pyairbyte_e2e.py`.

Reads every stream of `source-metronome` (a local executable) into a DuckDB
cache, offline, then prints one JSON line: what PyAirbyte counted, and what the
cache holds (rows, distinct primary keys, the exact sum of costs).

    python pyairbyte_read.py <config.json> <source-metronome path> <cache dir>
"""

import json
import sys

import airbyte as ab
import sqlalchemy

config_path, executable, cache_dir = sys.argv[1:4]
with open(config_path) as handle:
    config = json.load(handle)
source = ab.get_source(
    "source-metronome",
    config=config,
    local_executable=executable,
    streams="*",
)
source.check()
cache = ab.DuckDBCache(db_path=f"{cache_dir}/warehouse.duckdb", schema_name="metronome")
result = source.read(cache=cache)
tables = {}
with cache.get_sql_engine().connect() as connection:
    for stream in source.discovered_catalog.streams:
        name = stream.name
        key = ", ".join(k[0] for k in stream.source_defined_primary_key)
        # The source's own stream and key names, not input.
        query = (
            f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {key} "  # noqa: S608
            f"FROM metronome.{name})) FROM metronome.{name}"
        )
        rows, keys = connection.execute(sqlalchemy.text(query)).one()
        tables[name] = {"rows": rows, "keys": keys}
    (cost,) = connection.execute(
        sqlalchemy.text("SELECT sum(cost) FROM metronome.customer_costs")
    ).one()
print(
    json.dumps(
        {
            "processed_records": result.processed_records,
            # Records received per stream in this read, as PyAirbyte's summary
            # prints them (ReadResult exposes only the total; PyAirbyte is pinned).
            "read": dict(result._progress_tracker.stream_read_counts),
            "tables": tables,
            "sum_cost": str(cost),
        }
    )
)
