"""The settings table of docs/settings.md is what the tap itself reports."""

from __future__ import annotations

from tests.conftest import REPO, tap_about


def _settings_table(markdown: str) -> str:
    start = markdown.index("| Setting")
    end = markdown.index("\n\n", start)
    return markdown[start:end].strip()


def test_settings_doc_table_equals_about_markdown():
    about = tap_about("markdown")
    doc = (REPO / "docs" / "settings.md").read_text()
    assert _settings_table(doc) == _settings_table(about)
