"""API items as Metronome's published spec allows them: every property, every level.

The fake API's items are the fake's own values (ids, days, amounts the tests
compare) laid over an item built here from the endpoint's response item schema,
read as OpenAPI 3.0 reads it (siblings of `$ref` ignored but `nullable`). Across
the items of a data set, every property the spec declares, at every level, is:

- present with a value (every kind of `oneOf`, every enum value in turn),
- null where the spec allows null, and absent where it does not require it;

strings carry non-ASCII text and numbers many digits. The official client's
fields that the spec does not declare are added the same way, from the client's
types (`with_client_fields`): a field we never sent is a field we never tested. Item `n` follows
`SHAPES[shape_of(n)]`; enum values and `oneOf` variants are drawn from `n` and
the location (a hash, so that no numbering of the fake's items, such as twelve
per customer, ties a nested property to a few of them).
`tests/test_fake_api.py` checks that a data set covers all of this.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import typing
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from scripts.generate_schemas import CLIENT_ONLY, client_item_schema
from scripts.generate_schemas import union_args as _union_args


def union_args(annotation: Any) -> tuple[Any, ...]:
    """`scripts.generate_schemas.union_args`, remembered per annotation.

    The fake builds every item it serves with the client's types (about 20 type
    look-ups per field, per item); an annotation's union never changes.
    """
    try:
        return _cached_union_args(annotation)
    except TypeError:  # an annotation that cannot be a dict key
        return tuple(_union_args(annotation))


@functools.cache
def _cached_union_args(annotation: Any) -> tuple[Any, ...]:
    return tuple(_union_args(annotation))


@functools.cache
def _model_fields(model: Any) -> tuple[tuple[str, Any, bool, bool], ...]:
    """(key, annotation, optional, nullable) of each field of a client model."""
    return tuple(
        (
            info.alias or name,
            info.annotation,
            not info.is_required(),
            type(None) in union_args(info.annotation),
        )
        for name, info in model.model_fields.items()
    )


@functools.cache
def _literal_fields(model: Any) -> tuple[tuple[str, frozenset[Any]], ...]:
    """(key, allowed values) of a client model's literal-typed, non-null fields."""
    out = []
    for key, annotation, _, nullable in _model_fields(model):
        args = union_args(annotation)
        literals = [a for a in args if typing.get_origin(a) is typing.Literal]
        if literals and not nullable:
            out.append(
                (key, frozenset(v for lit in literals for v in typing.get_args(lit)))
            )
    return tuple(out)


SPEC = Path(__file__).resolve().parent.parent / "spec" / "metronome-openapi.json"
#: Optional properties: present, null (or absent where the spec says not
#: nullable) or absent, for leaves and for containers (objects and arrays) apart,
#: so that a nested property is present in items where its parent is.
SHAPES = (
    {"leaf": "present", "container": "present"},
    {"leaf": "null", "container": "present"},
    {"leaf": "present", "container": "present"},
    {"leaf": "absent", "container": "present"},
    {"leaf": "present", "container": "null"},
    {"leaf": "present", "container": "absent"},
)
#: How deep a recursive schema is followed; deeper optional properties are absent.
MAX_DEPTH = 10
TEXT = "Z\u00fcrich \u2013 \u6771\u4eac \u2713 \U0001f4b6"
#: Enum values the spec allows and the official client refuses, by location.
CLIENT_REFUSES: dict[str, frozenset[str]] = {
    # Contract transition type: the spec allows SUPERSEDE, the client only RENEWAL.
    "transitions/*/type": frozenset({"SUPERSEDE"}),
}
_DATE_TIME = {"type": "string", "format": "date-time"}
#: Properties the official client requires (with strict validation it refuses an
#: item without them) that the spec does not declare, by the location of their
#: object: sent in every such object, typed as the client types them.
CLIENT_REQUIRES: dict[str, dict[str, Any]] = {
    "customer_billing_provider_configuration": {
        "configuration": {"type": "object", "additionalProperties": True},
        "customer_id": {"type": "string", "format": "uuid"},
        "delivery_method_configuration": {
            "type": "object",
            "additionalProperties": True,
        },
        "delivery_method_id": {"type": "string", "format": "uuid"},
    },
    "recurring_commits/*": {"anchor_date": _DATE_TIME},
    "recurring_credits/*": {"anchor_date": _DATE_TIME},
    "subscriptions/*": {"created_at": _DATE_TIME},
}


class SpecItems:
    """Items of the spec's list endpoints, built once per (endpoint, item number)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """The target of a `$ref`; of its siblings only `nullable` counts."""
        nullable = False
        while "$ref" in node:
            nullable = nullable or node.get("nullable") is True
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        if "allOf" in node:
            merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                part = self.resolve(part)
                merged["properties"] = {
                    **merged.get("properties", {}),
                    **part.get("properties", {}),
                }
                merged["required"] = [
                    *merged.get("required", []),
                    *part.get("required", []),
                ]
                for key, value in part.items():
                    merged.setdefault(key, value)
            node = merged
        return {**node, "nullable": True} if nullable else node

    def item_schema(self, method: str, path: str) -> dict[str, Any]:
        """The schema of one `data` item of the endpoint's 200 answer.

        Endpoints the spec copy lacks (credit grants and their ledger): the
        official client's model of the item, as an OpenAPI schema.
        """
        if (method.lower(), path) in CLIENT_ONLY:
            return self._client_only(method.lower(), path)
        operation = self.document["paths"][path][method.lower()]
        page = self.resolve(
            operation["responses"]["200"]["content"]["application/json"]["schema"]
        )
        return self.resolve(page["properties"]["data"]["items"])

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one instance per process
    def _client_only(self, method: str, path: str) -> dict[str, Any]:
        return client_item_schema(method, path)

    def item(
        self, method: str, path: str, n: int, like: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Item number `n` of the endpoint (a fresh copy).

        Where the item is one of several kinds (`oneOf`: a commit or a credit),
        the kind whose enums admit `like`'s values (its `type`).
        """
        schema = self.item_schema(method, path)
        variant = None
        if like is not None and "oneOf" in schema:
            variant = next(
                i
                for i, option in enumerate(schema["oneOf"])
                if self.admits(self.resolve(option), like)
            )
        return copy.deepcopy(self._item(method, path, n, variant))

    def admits(self, node: dict[str, Any], like: dict[str, Any]) -> bool:
        """Whether `like`'s values of `node`'s enum properties are in their enums."""
        for name, child in (node.get("properties") or {}).items():
            child = self.resolve(child)
            if "enum" in child and name in like and like[name] not in child["enum"]:
                return False
        return True

    def shaped(
        self,
        node: dict[str, Any],
        value: Any,
        n: int,
        where: tuple[str, ...],
        keep: frozenset[str],
    ) -> Any:
        """`value` (the fake's) with the optional properties item `n` leaves out
        absent or null, as `value()` does, but those in `keep` (locations)."""
        node = self.resolve(node)
        variants = node.get("oneOf") or node.get("anyOf")
        if variants:
            options = [self.resolve(v) for v in variants]
            chosen = next(
                (
                    o
                    for o in options
                    if isinstance(value, dict) and self.admits(o, value)
                ),
                options[0],
            )
            return self.shaped(chosen, value, n, where, keep)
        if isinstance(value, list) and "items" in node:
            return [
                self.shaped(node["items"], v, n + i, (*where, "*"), keep)
                for i, v in enumerate(value)
            ]
        properties = node.get("properties") or {}
        if not isinstance(value, dict) or not properties:
            return value
        required = set(node.get("required", []))
        out: dict[str, Any] = {}
        for name, child_value in value.items():
            child = properties.get(name)
            location = (*where, name)
            if child is None:
                out[name] = child_value
                continue
            child = self.resolve(child)
            if name not in required and "/".join(location) not in keep:
                shape = SHAPES[shape_of(n, len(where))][
                    "container" if is_container(child) else "leaf"
                ]
                if shape == "absent" or (shape == "null" and not child.get("nullable")):
                    continue
                if shape == "null":
                    out[name] = None
                    continue
            out[name] = self.shaped(child, child_value, n, location, keep)
        return out

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one instance per process
    def _item(
        self, method: str, path: str, n: int, variant: int | None
    ) -> dict[str, Any]:
        schema = self.item_schema(method, path)
        if variant is not None:
            schema = schema["oneOf"][variant]
        return self.value(schema, n, (), depth=0)

    def value(
        self, node: dict[str, Any], n: int, where: tuple[str, ...], *, depth: int
    ) -> Any:
        """A value that `node` admits, for item `n` at `where`."""
        node = self.resolve(node)
        if "oneOf" in node or "anyOf" in node:
            variants = node.get("oneOf") or node["anyOf"]
            chosen = variants[_draw(n, (*where, "oneOf")) % len(variants)]
            return self.value(chosen, n, where, depth=depth)
        if "enum" in node:
            return enum_value(node, n, where)
        kind = node.get("type") or ("object" if "properties" in node else None)
        if kind == "object":
            return self.object(node, n, where, depth=depth)
        if kind == "array":
            return [
                self.value(node.get("items", {}), n + i, (*where, "*"), depth=depth + 1)
                for i in range(2)
            ]
        return leaf(node, n, where)

    def object(
        self, node: dict[str, Any], n: int, where: tuple[str, ...], *, depth: int
    ) -> dict[str, Any]:
        properties = node.get("properties") or {}
        required = set(node.get("required", []))
        out: dict[str, Any] = {}
        for name, child in properties.items():
            child = self.resolve(child)
            container = is_container(child)
            shape = SHAPES[shape_of(n, len(where))][
                "container" if container else "leaf"
            ]
            if name not in required and (depth >= MAX_DEPTH or shape == "absent"):
                continue
            if shape == "null" and child.get("nullable"):
                out[name] = None
            elif shape == "null" and name not in required:
                continue  # not nullable: absent instead
            else:
                out[name] = self.value(child, n, (*where, name), depth=depth + 1)
        location = "/".join(where)
        for suffix, fields in CLIENT_REQUIRES.items():
            if location == suffix or location.endswith("/" + suffix):
                for name, child in fields.items():
                    if name not in out:
                        out[name] = self.value(
                            child, n, (*where, name), depth=depth + 1
                        )
        extra = node.get("additionalProperties")
        if not properties and extra not in (None, False):
            # A map (custom fields, credit types by id) or free-form JSON.
            schema = extra if isinstance(extra, dict) and extra else None
            for i, key in enumerate((f"clé {n}", f"{uuid_for(where, n)}")):
                if schema is None:
                    out[key] = {"nested": [n, TEXT], "flag": n % 2 == 0}
                elif i and n % 2 and self.resolve(schema).get("nullable"):
                    out[key] = None  # a map's value may be null: in some items
                else:
                    out[key] = self.value(schema, n + i, (*where, "*"), depth=depth + 1)
        elif not properties and kind_of(node) == "object":
            out[f"free-form {TEXT}"] = [n, {"deep": TEXT}]
        return out


def kind_of(node: dict[str, Any]) -> str | None:
    return node.get("type") or ("object" if "properties" in node else None)


def is_container(node: dict[str, Any]) -> bool:
    return kind_of(node) in {"object", "array"} or "oneOf" in node


def shape_of(n: int, depth: int) -> int:
    """The shape of item `n`'s properties `depth` levels down.

    At the top, the first six items take each shape once; then, and at every
    other level, a hash: so that a nested object is present in some items where
    its own nested objects are absent.
    """
    if depth == 0 and n < len(SHAPES):
        return n
    return _draw(n, ("shape", str(depth))) % len(SHAPES)


def _draw(n: int, where: tuple[str, ...]) -> int:
    """A number drawn from `n` and a location (CRC32's low bits follow the text's
    too closely: a real hash)."""
    text = f"{n}:{'/'.join(where)}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "big")


def _hash(where: tuple[str, ...]) -> int:
    return zlib.crc32("/".join(where).encode())


def uuid_for(where: tuple[str, ...], n: int) -> str:
    return str(uuid.UUID(int=(_hash(where) << 64 | n) & (2**128 - 1), version=4))


def client_enum_values(node: dict[str, Any], where: tuple[str, ...]) -> list[Any]:
    """The spec's enum values at `where` that the official client accepts.

    Where the spec allows both cases, the client only upper case; and none of
    the values `CLIENT_REFUSES` lists for the location.
    """
    location = "/".join(where)
    refused = next(
        (
            bad
            for suffix, bad in CLIENT_REFUSES.items()
            if location == suffix or location.endswith("/" + suffix)
        ),
        frozenset(),
    )
    values = [v for v in node.get("enum", []) if v is not None and v not in refused]
    return [
        v
        for v in values
        if not (isinstance(v, str) and v != v.upper() and v.upper() in values)
    ]


def enum_value(node: dict[str, Any], n: int, where: tuple[str, ...]) -> Any:
    values = client_enum_values(node, where)
    return values[_draw(n, where) % len(values)]


def leaf(node: dict[str, Any], n: int, where: tuple[str, ...]) -> Any:
    """A scalar of the node's type and format."""
    kind = node.get("type")
    name = where[-1] if where else "item"
    if kind == "string":
        form = node.get("format")
        moment = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=n * 7 + 1)
        if form == "date-time":
            return moment.isoformat().replace("+00:00", "Z")
        if form == "date":
            return date.fromordinal(moment.toordinal()).isoformat()
        if form == "uuid":
            return uuid_for(where, n)
        return f"{name} {n} {TEXT}"
    if kind == "integer":
        return 9_007_199_254_740_993 + n  # past a double's exact integers
    if kind == "number":
        return Decimal(f"{n}1234567890123.4567890123")
    if kind == "boolean":
        return n % 2 == 0
    return {"any": [n, TEXT]}  # no type: any JSON


def overlay(
    spec_item: Any,
    fake_item: Any,
    keep: frozenset[str] = frozenset(),
    where: tuple[str, ...] = (),
) -> Any:
    """`fake_item` laid over `spec_item`: the fake's values win, at every level,
    but an empty list of the fake's (outside `keep`) gives way to the spec's."""
    if isinstance(spec_item, dict) and isinstance(fake_item, dict):
        out = dict(spec_item)
        for key, value in fake_item.items():
            location = (*where, key)
            if value == [] and spec_item.get(key) and "/".join(location) not in keep:
                continue
            out[key] = overlay(spec_item.get(key), value, keep, location)
        return out
    if (
        isinstance(spec_item, list)
        and isinstance(fake_item, list)
        and spec_item
        and all(isinstance(x, dict) for x in fake_item)
    ):
        return [
            overlay(spec_item[i % len(spec_item)], value, keep, (*where, "*"))
            for i, value in enumerate(fake_item)
        ]
    return fake_item


#: Per endpoint path, the locations whose presence the fake decided (`owned`,
#: `keep`): the coverage test does not ask them to be null or absent.
DECIDED_BY_THE_FAKE: dict[str, set[str]] = {}


@functools.cache
def spec_items() -> SpecItems:
    """The spec of the repository (`spec/metronome-openapi.json`)."""
    return SpecItems(json.loads(SPEC.read_text()))


def complete(
    method: str,
    path: str,
    item: dict[str, Any],
    n: int,
    *,
    owned: tuple[str, ...] = (),
    keep: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The fake's `item` with every other property the spec allows, for item `n`.

    The fake's own optional values are left out or null as item `n`'s shape
    says, but for the locations in `keep` (`"a/b"`; the fake's filters and the
    tests rely on them) and those in `owned`: top-level properties whose
    presence the fake decides (an active customer has no `archived_at`), never
    filled from the spec.
    """
    DECIDED_BY_THE_FAKE.setdefault(path, set()).update(owned, keep)
    items = spec_items()
    base = items.item(method, path, n, like=item)
    for name in owned:
        base.pop(name, None)
    mine = items.shaped(
        items.item_schema(method, path), item, n, (), frozenset((*keep, *owned))
    )
    out = overlay(base, mine, frozenset(keep))
    from tests.client_models import ITEM_MODELS

    schema = items.item_schema(method, path)
    with_client_fields(ITEM_MODELS[method.lower(), path], out, n, (), schema, owned)
    return out


def _declared(node: Any) -> dict[str, Any]:
    """The properties a spec node declares, over all its `oneOf` kinds."""
    if not isinstance(node, dict):
        return {}
    node = spec_items().resolve(node)
    out: dict[str, Any] = {}
    for variant in node.get("oneOf") or node.get("anyOf") or []:
        for name, child in _declared(variant).items():
            out.setdefault(name, child)
    return {**out, **(node.get("properties") or {})}


def _items_of(node: Any) -> Any:
    if not isinstance(node, dict):
        return None
    return spec_items().resolve(node).get("items")


def with_client_fields(
    annotation: Any,
    value: Any,
    n: int,
    where: tuple[str, ...],
    spec: Any,
    owned: tuple[str, ...] = (),
) -> None:
    """Add to `value`, in place, the official client's fields that the spec
    (`spec`: its node at `where`, None where it has none) does not declare, in
    item `n`'s shapes, at every level; the spec's own properties keep the shapes
    they were given, and the fake's `owned` ones are left to it."""
    models = [a for a in union_args(annotation) if hasattr(a, "model_fields")]
    if isinstance(value, dict) and models:
        model = next((m for m in models if _client_admits(m, value)), models[0])
        declared = _declared(spec)
        for key, field_annotation, optional, nullable in _model_fields(model):
            if key in value:
                with_client_fields(
                    field_annotation, value[key], n, (*where, key), declared.get(key)
                )
                continue
            if key in declared or key in owned:
                continue  # the spec's (absent in this shape), or the fake's
            shape = SHAPES[shape_of(n, len(where))]["leaf"]
            if optional and shape == "absent":
                continue
            if optional and shape == "null" and nullable:
                value[key] = None
                continue
            value[key] = client_value(
                field_annotation, n, (*where, key), depth=len(where)
            )
    elif isinstance(value, list):
        for arg in union_args(annotation):
            if typing.get_origin(arg) is list:
                for i, element in enumerate(value):
                    with_client_fields(
                        typing.get_args(arg)[0],
                        element,
                        n + i,
                        (*where, "*"),
                        _items_of(spec),
                    )


def _client_admits(model: Any, value: dict[str, Any]) -> bool:
    """Whether `value`'s literal-typed fields (a `type`) fit `model`'s."""
    return all(
        key not in value or value[key] in allowed
        for key, allowed in _literal_fields(model)
    )


def client_value(annotation: Any, n: int, where: tuple[str, ...], *, depth: int) -> Any:
    """A value of a client type, built as `SpecItems.value` builds a spec one."""
    args = [a for a in union_args(annotation) if a is not type(None)]
    if not args:
        return None
    kind = args[_draw(n, (*where, "union")) % len(args)]
    origin = typing.get_origin(kind)
    name = where[-1] if where else "item"
    if origin is typing.Literal:
        values = typing.get_args(kind)
        return values[_draw(n, where) % len(values)]
    if origin is list:
        if depth > MAX_DEPTH:
            return []
        return [
            client_value(
                typing.get_args(kind)[0], n + i, (*where, "*"), depth=depth + 1
            )
            for i in range(2)
        ]
    if origin is dict:
        return {
            f"clé {n}": client_value(
                typing.get_args(kind)[1], n, (*where, "*"), depth=depth + 1
            )
        }
    if hasattr(kind, "model_fields"):
        out: dict[str, Any] = {}
        if depth <= MAX_DEPTH:
            with_client_fields(kind, out, n, where, {})
        return out
    if kind is datetime:
        moment = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=n * 7 + 1)
        return moment.isoformat().replace("+00:00", "Z")
    if kind is date:
        return date(2024, 1, 1 + n % 28).isoformat()
    if kind is bool:
        return n % 2 == 0
    if kind is int:
        return 9_007_199_254_740_993 + n
    if kind is float:
        return Decimal(f"{n}1234567890123.4567890123")
    if kind is str:
        return f"{name} {n} {TEXT}"
    return {"any": [n, TEXT]}  # object / Any: any JSON


def paths(
    node: Any, where: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (location, value) of a JSON value, array positions as `*`."""
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*where, key))
    elif isinstance(node, list):
        for value in node:
            yield from paths(value, (*where, "*"))
