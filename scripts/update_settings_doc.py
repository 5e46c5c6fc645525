"""Rewrite the settings table of docs/settings.md from `tap-metronome --about --format=markdown`.

`tests/test_docs.py` fails when the two differ; `write_settings.py` runs this after a setting
changes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SETTINGS_DOC = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def _table_bounds(markdown: str) -> tuple[int, int]:
    start = markdown.index("| Setting")
    return start, markdown.index("\n\n", start)


def main() -> None:
    """Replace the table in place."""
    about = subprocess.run(
        [sys.executable, "-m", "tap_metronome", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    a_start, a_end = _table_bounds(about)
    doc = SETTINGS_DOC.read_text()
    d_start, d_end = _table_bounds(doc)
    SETTINGS_DOC.write_text(doc[:d_start] + about[a_start:a_end] + doc[d_end:])


if __name__ == "__main__":
    main()
