"""Rewrite the README's settings table from `tap-metronome --about --format=markdown`.

`tests/test_docs.py` fails when the two differ; run this after changing a setting.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


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
    readme = README.read_text()
    r_start, r_end = _table_bounds(readme)
    README.write_text(readme[:r_start] + about[a_start:a_end] + readme[r_end:])


if __name__ == "__main__":
    main()
