"""Record flattening (`flattening_enabled`) that survives keys named like schema keywords.

singer-sdk 0.54.9 (still so in 0.55.0b7) flattens each record with
`helpers._flattening.flatten_record(record, flattened_schema=<the whole schema>)`,
where `_flatten_record` (line 513) asks `_should_jsondump_value(key, value,
flattened_schema)` whether to JSON-serialise a value. That looks the record's key
up among the schema's own keywords instead of among its properties: for a key
`description`, `"type" in schema["description"]` is a substring test on the
schema's text, then `schema["description"]["type"]` raises `TypeError: string
indices must be integers` (issue 22: a `balances` item's `description`). A key
`title`, `required`, ... at any level is as exposed, one schema wording away.

`FlatteningMapper` is the SDK's mapper whose stream maps hand that function only
the properties (`{"properties": ...}`): the same SDK code, with the same options,
flattens the record; objects past the depth limit and arrays still become JSON
strings, and a scalar is never serialised, which is what the SDK's check means
(no property of a flattened schema is typed object-or-array).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from singer_sdk.helpers._flattening import flatten_record
from singer_sdk.mapper import PluginMapper, StreamMap

#: The default of the SDK's `flattening_max_key_length` here: PostgreSQL's
#: identifier limit. The SDK's default (255) lets a flattened name such as
#: `customer_billing_provider_configuration__delivery_method_configuration` (71)
#: through; PostgreSQL cuts it to 63 characters and target-postgres, not finding
#: the name it asked for, adds the column again: "DuplicateColumn", the load
#: stops. At 63 the SDK shortens such a name itself (`cbpc__delivery_...`).
FLATTENED_KEY_LENGTH = 63


def flattening_config(config: dict) -> dict:
    """`config` with `flattening_max_key_length` defaulted to `FLATTENED_KEY_LENGTH`."""
    if config.get("flattening_max_key_length") is None:
        return {**config, "flattening_max_key_length": FLATTENED_KEY_LENGTH}
    return config


class PropertiesFlattening(StreamMap):
    """A stream map that flattens records against its schema's properties only."""

    def flatten_record(self, record: dict) -> dict:
        """Flatten as the SDK does, looking record keys up among the properties."""
        options = self.flattening_options
        if options is None or not self.flattening_enabled:
            return record
        return flatten_record(
            record,
            flattened_schema={"properties": self.transformed_schema["properties"]},
            max_level=options.max_level,
            separator=options.separator,
            max_key_length=options.max_key_length,
        )


@functools.cache
def _properties_flattening(map_type: type[StreamMap]) -> type[StreamMap]:
    """`map_type` (the SDK's default or custom map) with `PropertiesFlattening`."""
    return type(
        map_type.__name__, (PropertiesFlattening, map_type), {"__module__": __name__}
    )


class FlatteningMapper(PluginMapper):
    """The SDK's mapper; every stream map it registers flattens by properties."""

    def register_raw_stream_schema(
        self,
        stream_name: str,
        schema: dict,
        key_properties: Sequence[str] | None,
    ) -> None:
        """Register as the SDK does, then give flattening maps `PropertiesFlattening`.

        The SDK builds its maps itself (`SameRecordTransform`, `CustomStreamMap` for
        `stream_maps`), so each one that flattens becomes, in place, the same map
        with `PropertiesFlattening.flatten_record`: its state and class checks stay.
        """
        super().register_raw_stream_schema(stream_name, schema, key_properties)
        for stream_map in self.stream_maps[stream_name]:
            if stream_map.flattening_enabled and not isinstance(
                stream_map, PropertiesFlattening
            ):
                stream_map.__class__ = _properties_flattening(type(stream_map))
