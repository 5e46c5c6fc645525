"""meltano.yml, the Meltano Hub definition and the tap's own settings agree."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from meltano.core.plugin.singer.catalog import (
    ListSelectedExecutor,
    MetadataExecutor,
    select_metadata_rules,
)
from meltano.core.plugin.singer.tap import SingerTap

from scripts.write_hub_definition import HUB_FILE, hub_definition
from scripts.write_settings import (
    MELTANO_YML,
    block_bounds,
    meltano_block,
    meltano_setting,
)
from tap_metronome.setting_table import SETTINGS
from tap_metronome.streams import STREAM_TYPES
from tap_metronome.tap import TapMetronome
from tests.conftest import REPO, tap_about

# Meltano 4.4 cannot pass `kind: decimal` values to a plugin (Decimal is not JSON
# serializable) and `kind: integer` refuses fractions, so number settings are
# declared as strings in meltano.yml: the tap parses "2.5" (and refuses "abc",
# naming the setting).
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "string",
    "boolean": "boolean",
    "array": "array",
}
DATE_SETTINGS = {"start_date", "end_date"}


@pytest.fixture(scope="module")
def about() -> dict:
    return json.loads(tap_about("json"))


@pytest.fixture(scope="module")
def extractor() -> dict:
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (plugin,) = project["plugins"]["extractors"]
    return plugin


def _tap_settings(about: dict) -> dict:
    builtin = {
        "stream_maps",
        "stream_map_config",
        "faker_config",
        "flattening_enabled",
        "flattening_max_depth",
        "flattening_max_key_length",
        "flattening_separator",
        "batch_config",
    }
    return {
        k: v for k, v in about["settings"]["properties"].items() if k not in builtin
    }


def test_meltano_yml_declares_every_setting_as_the_tap_does(about, extractor):
    tap = _tap_settings(about)
    sdk = set(about["settings"]["properties"]) - set(tap)
    declared = {s["name"]: s for s in extractor["settings"] if s["name"] not in sdk}
    assert list(declared) == list(tap)
    # The SDK's capability settings may be declared too, if the tap really has them.
    assert {s["name"] for s in extractor["settings"]} - set(declared) <= sdk
    for name, setting in declared.items():
        spec = tap[name]
        json_type = next(t for t in spec["type"] if t != "null")
        expected_kind = "date_iso8601" if name in DATE_SETTINGS else KINDS[json_type]
        if "enum" in spec:
            expected_kind = "options"
            assert [o["value"] for o in setting["options"]] == spec["enum"], name
        assert setting["kind"] == expected_kind, name
        assert setting["description"] == spec["description"], name
        assert setting["label"] == spec["title"], name
        assert setting.get("value") == spec.get("default"), name
        assert setting.get("sensitive", False) == spec.get("secret", False), name
    assert set(about["settings"]["required"]) == set(
        extractor["settings_group_validation"][0]
    )


def test_meltano_yml_capabilities(extractor):
    assert {
        "catalog",
        "discover",
        "state",
        "about",
        "stream-maps",
        "schema-flattening",
        "activate-version",
    } <= set(extractor["capabilities"])
    assert extractor["pip_url"] == "-e ."
    assert extractor["executable"] == "tap-metronome"


def test_hub_definition_equals_meltano_yml(extractor):
    hub = yaml.safe_load(
        (REPO / "hub" / "extractors" / "tap-metronome.yml").read_text()
    )
    for field in ("name", "namespace", "variant", "label", "description", "pip_url"):
        assert hub[field], field
    for field in (
        "capabilities",
        "settings",
        "settings_group_validation",
        "namespace",
        "label",
    ):
        assert hub[field] == extractor[field], field
    assert hub["keywords"]


def test_meltano_yml_settings_are_the_tables(extractor):
    """A setting added to or changed in the table fails here until
    `scripts/write_settings.py` has rewritten meltano.yml (and the Hub file)."""
    assert extractor["settings"][: len(SETTINGS)] == [
        meltano_setting(setting) for setting in SETTINGS
    ]
    text = MELTANO_YML.read_text()
    start, end = block_bounds(text)
    assert text[start:end] == meltano_block(), "run scripts/write_settings.py"
    assert extractor["settings_group_validation"] == [
        [setting.name for setting in SETTINGS if setting.required]
    ]


def test_hub_definition_is_written_by_its_script():
    expected = yaml.safe_dump(hub_definition(), sort_keys=False, width=100)
    assert HUB_FILE.read_text() == expected, "run scripts/write_settings.py"


# -- selection: no stream of the tap left out ----------------------------------------

#: What Meltano selects when a plugin has no `select` (its `_select` extra).
MELTANO_DEFAULT_SELECT = next(
    s.value for s in SingerTap.EXTRA_SETTINGS if s.name == "_select"
)


@pytest.fixture(scope="module")
def discovered_catalog() -> dict:
    tap = TapMetronome(
        config={"auth_token": "t" * 20, "start_date": "2024-01-01"},
        validate_config=True,
    )
    return tap.catalog_dict


def meltano_selects(catalog: dict, select: list[str]) -> dict[str, set[str]]:
    """The streams, and their properties, that Meltano selects with `select`:
    Meltano's own rules (`SingerTap.apply_catalog_rules`: deselect everything,
    then the `select` patterns) on the tap's catalog."""
    catalog = copy.deepcopy(catalog)
    rules = select_metadata_rules(["!*.*"]) + select_metadata_rules(select)
    MetadataExecutor(rules).visit(catalog)
    listed = ListSelectedExecutor()
    listed.visit(catalog)
    return listed.selected_properties


def _every_stream_is_selected(catalog: dict, select: list[str]) -> None:
    selected = meltano_selects(catalog, select)
    for stream_type in STREAM_TYPES:
        name = stream_type.name
        assert name in selected, f"select {select} leaves out the stream {name}"
        schema = next(s for s in catalog["streams"] if s["tap_stream_id"] == name)
        missing = set(schema["schema"]["properties"]) - selected[name]
        assert not missing, f"select {select} leaves out {name}'s {sorted(missing)}"


def test_meltano_yml_selects_every_stream(extractor, discovered_catalog):
    """A stream of `STREAM_TYPES` that meltano.yml's `select` misses fails here."""
    select = extractor.get("select", MELTANO_DEFAULT_SELECT)
    _every_stream_is_selected(discovered_catalog, select)


def test_hub_definition_selects_every_stream(discovered_catalog):
    hub = yaml.safe_load(HUB_FILE.read_text())
    _every_stream_is_selected(
        discovered_catalog, hub.get("select", MELTANO_DEFAULT_SELECT)
    )


@pytest.mark.parametrize(
    "select",
    [
        [f"{t.name}.*" for t in STREAM_TYPES[:-1]],
        ["*.*", f"!{STREAM_TYPES[0].name}.*"],
    ],
    ids=["a-list-without-the-last-stream", "an-exclusion"],
)
def test_a_select_that_leaves_out_a_stream_is_caught(discovered_catalog, select):
    with pytest.raises(AssertionError, match="leaves out the stream"):
        _every_stream_is_selected(discovered_catalog, select)
