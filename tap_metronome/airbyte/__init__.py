"""`source-metronome`: the same tap, speaking the Airbyte protocol.

No maintained package turns a Singer tap into an Airbyte source (airbyte-cdk
removed its `SingerSource` in 2024), and airbyte-cdk cannot be a dependency: it
pins `pyrate-limiter<3.2`, below ours, and pulls pydantic, whose v2 writes a
Decimal as a string. The protocol is small, so it is spoken here with plain
dicts and the msgspec encoder the tap already uses (money stays an exact JSON
number). `read` runs `TapMetronome` in-process, unchanged, and converts its
Singer messages through the SDK's message-writer extension point.

| module | responsibility |
|---|---|
| `messages` | Airbyte messages as dicts, and their exact encoding |
| `catalog` | spec, discovered catalog, and reading the configured catalog and state |
| `writer` | Singer messages in, Airbyte messages out (records, per-stream state, stream status) |
| `cli` | the `spec`, `check`, `discover` and `read` commands, and errors as TRACE messages |
"""
