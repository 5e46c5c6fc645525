"""`schemas/` is what `scripts/generate_schemas.py` makes of Metronome's spec."""

from __future__ import annotations

import json

from scripts import generate_schemas
from tap_metronome.streams import STREAM_NAMES
from tests.conftest import REPO


def test_every_schema_file_is_what_the_script_generates():
    built = generate_schemas.build()
    assert set(built) == STREAM_NAMES
    on_disk = {path.stem for path in (REPO / "schemas").glob("*.json")}
    assert on_disk == STREAM_NAMES
    for name, schema in built.items():
        text = (REPO / "schemas" / f"{name}.json").read_text()
        assert text == generate_schemas.render(schema), (
            f"schemas/{name}.json differs: run scripts/generate_schemas.py"
        )


def test_schemas_admit_what_metronome_may_add():
    """No closed objects, no enums, `required` only for keys."""

    def walk(node, where):
        if isinstance(node, dict):
            assert node.get("additionalProperties") is not False, where
            assert "enum" not in node, where
            if where.count("/") > 1:
                assert "required" not in node, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    for path in (REPO / "schemas").glob("*.json"):
        walk(json.loads(path.read_text()), path.stem)
