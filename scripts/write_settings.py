"""Write every file that declares the settings from the table, `setting_table.SETTINGS`.

Run it after adding or changing a setting: it rewrites the tap's settings in
meltano.yml (between the two comments that bound them), then the Meltano Hub
definition (`write_hub_definition.py`) and the table of docs/settings.md
(`update_settings_doc.py`). `tests/test_plugin_definitions.py` and
`tests/test_docs.py` fail until it has been run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tap_metronome.setting_table import SETTINGS, Setting

REPO = Path(__file__).resolve().parent.parent
MELTANO_YML = REPO / "meltano.yml"
#: The comment before the tap's settings in meltano.yml, and the one after them.
BEGIN = (
    "        # The tap's own settings, written from tap_metronome/setting_table.py by\n"
    "        # scripts/write_settings.py (tests/test_plugin_definitions.py checks them).\n"
)
END = "        # The SDK's own settings"


def meltano_setting(setting: Setting) -> dict[str, Any]:
    """The setting as meltano.yml and the Hub declare it."""
    declared: dict[str, Any] = {
        "name": setting.name,
        "label": setting.title,
        "kind": setting.meltano_kind,
    }
    if setting.secret:
        declared["sensitive"] = True
    if setting.default is not None:
        declared["value"] = setting.default
    if setting.choices:
        declared["options"] = [
            {"label": choice.capitalize(), "value": choice}
            for choice in setting.choices
        ]
    declared["description"] = setting.description
    return declared


def _scalar(value: object) -> str:
    """A YAML scalar: plain when it reads back as itself, else double-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    try:
        plain = "\n" not in text and yaml.safe_load(f"key: {text}") == {"key": text}
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text, ensure_ascii=False)


def meltano_block() -> str:
    """The tap's settings as meltano.yml lists them, in the table's order."""
    lines = []
    for setting in SETTINGS:
        declared = meltano_setting(setting)
        lines.append(f"        - name: {_scalar(declared.pop('name'))}")
        for key, value in declared.items():
            if key == "options":
                lines.append("          options:")
                for option in value:
                    lines.append(f"            - label: {_scalar(option['label'])}")
                    lines.append(f"              value: {_scalar(option['value'])}")
            else:
                lines.append(f"          {key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


def block_bounds(text: str) -> tuple[int, int]:
    """Where the tap's settings start and end in meltano.yml's text."""
    start = text.index(BEGIN) + len(BEGIN)
    return start, text.index(END, start)


def main() -> None:
    """Rewrite meltano.yml's tap settings, then the Hub file and the docs table."""
    text = MELTANO_YML.read_text()
    start, end = block_bounds(text)
    MELTANO_YML.write_text(text[:start] + meltano_block() + text[end:])
    for script in ("write_hub_definition.py", "update_settings_doc.py"):
        subprocess.run([sys.executable, str(REPO / "scripts" / script)], check=True)


if __name__ == "__main__":
    main()
