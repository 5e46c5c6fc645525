"""The settings table of docs/settings.md is what the tap itself reports."""

from __future__ import annotations

from tap_metronome.setting_table import SETTINGS
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
