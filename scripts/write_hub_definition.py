"""Write the Meltano Hub plugin definition from meltano.yml's extractor block.

The Hub file (`hub/extractors/tap-metronome.yml`) is what a pull request to
Meltano Hub would add; `write_settings.py` runs this after a setting changes,
and `tests/test_plugin_definitions.py` keeps it, meltano.yml and the tap's own
settings equal.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
HUB_FILE = REPO / "hub" / "extractors" / "tap-metronome.yml"


def hub_definition() -> dict:
    """The Hub's fields for the extractor, taken from meltano.yml."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (extractor,) = project["plugins"]["extractors"]
    return {
        "name": "tap-metronome",
        "namespace": extractor["namespace"],
        "variant": "tap-metronome",
        "label": extractor["label"],
        "description": extractor["description"],
        "logo_url": "https://hub.meltano.com/assets/logos/extractors/metronome.png",
        "domain_url": "https://metronome.com",
        "repo": "https://github.com/tap-metronome/tap-metronome",
        "pip_url": "tap-metronome",
        "executable": extractor["executable"],
        "capabilities": extractor["capabilities"],
        "settings_group_validation": extractor["settings_group_validation"],
        "settings": extractor["settings"],
        "keywords": ["meltano_sdk", "billing", "usage-based pricing", "finance"],
        "maintenance_status": "active",
    }


def main() -> None:
    """Rewrite the Hub file."""
    HUB_FILE.parent.mkdir(parents=True, exist_ok=True)
    HUB_FILE.write_text(yaml.safe_dump(hub_definition(), sort_keys=False, width=100))


if __name__ == "__main__":
    main()
