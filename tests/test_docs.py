"""The docs' tables are what the tap itself reports: settings, streams."""

from __future__ import annotations

from tap_metronome.setting_table import SETTINGS
from tap_metronome.streams import STREAM_TYPES
from tests.conftest import REPO, tap_about


def _settings_table(markdown: str) -> str:
    start = markdown.index("| Setting")
    end = markdown.index("\n\n", start)
    return markdown[start:end].strip()


def test_settings_doc_table_equals_about_markdown():
    about = tap_about("markdown")
    doc = (REPO / "docs" / "settings.md").read_text()
    assert _settings_table(doc) == _settings_table(about)


def test_settings_doc_table_starts_with_the_settings_table():
    """Each setting's row: name, required, default and description from the table."""
    rows = _settings_table((REPO / "docs" / "settings.md").read_text()).splitlines()
    assert rows[2 : 2 + len(SETTINGS)] == [
        f"| {s.name} | {s.required} | {s.default} | {s.description} |" for s in SETTINGS
    ]


def _streams_table() -> dict[str, list[str]]:
    """The README's streams table: stream -> its cells (endpoint, key, replication, row)."""
    text = (REPO / "README.md").read_text()
    start = text.index("| Stream | Endpoint |", text.index("## Streams"))
    rows = text[start : text.index("\n\n", start)].splitlines()[2:]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return {row[0].strip("`"): row[1:] for row in cells}


def test_readme_streams_table_lists_every_stream_with_its_endpoint_and_key():
    """A row per stream class, with the class's method, path, primary key and
    whether it is full table; a new stream fails here until it has its row."""
    table = _streams_table()
    assert set(table) == {t.name for t in STREAM_TYPES}
    for stream in STREAM_TYPES:
        endpoint, key, replication, _ = table[stream.name]
        assert f"`{stream.method} {stream.path}" in endpoint, stream.name
        assert key == ", ".join(f"`{k}`" for k in stream.primary_keys or ()), key
        assert (replication == "full table") == (not stream.replication_key), (
            stream.name
        )
