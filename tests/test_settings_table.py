"""The settings table is the one declaration: the schema, `Settings` and the checks follow it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tap_metronome.setting_table import SETTINGS, config_jsonschema
from tap_metronome.settings import SETTING_NAMES, Settings, parse_settings
from tap_metronome.tap import TapMetronome

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
BASE = {"auth_token": "tok", "start_date": "2024-01-01"}
NUMBERS = [s for s in SETTINGS if s.type in {"integer", "number"}]


def errors_for(name, value):
    return parse_settings({**BASE, name: value}, now=NOW)[1]


def test_the_tap_schema_is_the_table():
    schema = TapMetronome.config_jsonschema
    # The SDK appends its own settings (stream maps, ...) after the table's.
    assert list(schema["properties"])[: len(SETTINGS)] == [s.name for s in SETTINGS]
    ours = {s.name: schema["properties"][s.name] for s in SETTINGS}
    assert ours == config_jsonschema()["properties"]
    assert schema["required"] == [s.name for s in SETTINGS if s.required]
    for setting in SETTINGS:
        spec = ours[setting.name]
        assert setting.type in spec["type"], setting.name
        assert spec.get("default") == setting.default, setting.name
        assert spec.get("enum", []) == list(setting.choices), setting.name
        assert spec.get("secret", False) == setting.secret, setting.name
        assert (spec["title"], spec["description"]) == (
            setting.title,
            setting.description,
        )


def test_settings_has_a_field_per_setting_the_tap_reads_with_its_default():
    fields = {item.name: item for item in dataclasses.fields(Settings)}
    assert set(fields) == {s.name for s in SETTINGS if not s.read_by_sdk}
    assert set(fields) == SETTING_NAMES
    for setting in SETTINGS:
        if setting.read_by_sdk:
            continue
        item = fields[setting.name]
        if setting.required:
            assert item.default is dataclasses.MISSING, setting.name
        else:
            assert item.default == setting.default, setting.name
        assert item.repr is not setting.secret, setting.name


def test_defaults_are_what_an_empty_config_parses_to():
    parsed, errors, _ = parse_settings(BASE, now=NOW)
    assert errors == []
    for setting in SETTINGS:
        if not setting.required and not setting.read_by_sdk:
            assert getattr(parsed, setting.name) == setting.default, setting.name


def test_the_table_is_coherent():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    for setting in SETTINGS:
        assert not (setting.required and setting.default is not None), setting.name
        assert setting.bounds is None or setting in NUMBERS, setting.name
        if setting.choices:
            assert setting.type == "string"
            assert setting.default in setting.choices, setting.name
        assert setting.description.endswith("."), setting.name
    for setting in NUMBERS:
        assert setting.bounds is not None, setting.name
        low, high = setting.bounds
        assert low <= setting.default <= high, setting.name


@pytest.mark.parametrize("setting", NUMBERS, ids=lambda s: s.name)
def test_number_bounds_are_the_tables(setting):
    # As a config file gives them: numbers with a fraction are Decimal.
    low, high = (Decimal(str(bound)) for bound in setting.bounds)
    assert errors_for(setting.name, low) == []
    assert errors_for(setting.name, high) == []
    below = low - 1 if setting.type == "integer" else low / 2
    for outside in (below, high * 2):
        (error,) = errors_for(setting.name, outside)
        assert error.startswith(f"{setting.name}: ")


@pytest.mark.parametrize(
    "setting", [s for s in SETTINGS if s.max_length], ids=lambda s: s.name
)
def test_string_lengths_are_the_tables(setting):
    assert errors_for(setting.name, "a" * setting.max_length) == []
    (error,) = errors_for(setting.name, "a" * (setting.max_length + 1))
    assert error.startswith(f"{setting.name}: ")


@pytest.mark.parametrize(
    "setting", [s for s in SETTINGS if s.choices], ids=lambda s: s.name
)
def test_choices_are_the_tables(setting):
    for choice in setting.choices:
        assert errors_for(setting.name, choice.upper()) == []
    (error,) = errors_for(setting.name, "-".join(setting.choices))
    assert error.startswith(f"{setting.name}: ")
