"""Write `schemas/<stream>.json` from Metronome's OpenAPI spec (`spec/metronome-openapi.json`).

Run after updating the spec or adding a stream:

    .venv/bin/python scripts/generate_schemas.py

`tests/test_schemas.py` fails when a file in `schemas/` differs from what this
script writes. The policy (docs/architecture.md, "Schemas"):

- Fields, types, formats, nullability and descriptions come from the spec's item
  schema of the stream's endpoint, `$ref`s and `allOf`s resolved.
- Tolerant of what Metronome may add: no `additionalProperties: false`, no enums
  (their values go into the description as "Known values"), `required` only for
  the primary key and replication key. A property the spec does not require may
  also be null.
- Which endpoint, method, keys, replication key, parent and description: the
  stream's class (`tap_metronome.streams.STREAM_TYPES`), so adding a stream is
  adding its class and running this script (and its official client type to
  `CLIENT_MODELS`).
- Endpoints the spec copy lacks (`CLIENT_ONLY`: the Plans API's credit grants
  and ledger) are read from the official client's response models instead
  (`client_openapi`), and the schema's description says so.
- Columns the tap adds come first: a per-parent stream's parent id when the
  item has none (`plan_id` on plan charges), the columns a stream declares in
  `added_columns` (a key lifted out of the item); the rows the tap builds
  (`BUILT_BY_THE_TAP`: costs, invoice line items) are declared here.
"""

from __future__ import annotations

import copy
import datetime
import functools
import importlib
import json
import re
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tap_metronome.streams import STREAM_TYPES, CustomerCostsStream, MetronomeStream
from tap_metronome.streams.balances import (
    BalanceLedgerEntriesStream,
    BalanceSnapshotsStream,
)
from tap_metronome.streams.credits import CreditLedgerEntriesStream
from tap_metronome.streams.invoices import InvoiceLineItemsStream
from tap_metronome.streams.partitions import PARENT_KEYS, PARENT_NOUNS

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "spec" / "metronome-openapi.json"
SCHEMAS = REPO / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: Keywords copied from the spec as they are (after conversion of their values).
KEPT = ("type", "format", "description", "items", "properties", "additionalProperties")


@dataclass(frozen=True)
class Endpoint:
    """A list endpoint of the spec: its method (lower case, as under `paths`) and path."""

    method: str
    path: str

    @classmethod
    def of(cls, stream: type[MetronomeStream]) -> Endpoint:
        """The endpoint a stream class reads (its `method` and `path`)."""
        return cls(stream.method.lower(), stream.path)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


UUID = {"type": "string", "format": "uuid"}


def key_columns(stream: type[MetronomeStream]) -> list[str]:
    """The stream's primary key, then its replication key: the required columns."""
    keys = [*(stream.primary_keys or ()), stream.replication_key]
    return [key for key in dict.fromkeys(keys) if key]


def parent_column(parent: str) -> dict[str, Any]:
    """The column of a parent's id that the tap adds to an item without one."""
    noun = PARENT_NOUNS[parent]
    return UUID | {
        "description": f"The {noun} (added by the tap; the API item has none)."
    }


def added_columns(
    stream: type[MetronomeStream], item: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The columns the tap adds to the stream's items, declared before the item's.

    A per-parent list stream's records carry the parent's id (`ListStream.record`):
    declared here when the API's item has no such field (balances: the customer
    goes in the request body and not in the answer; contracts' items have their
    own `customer_id`). Then the columns the stream declares in `added_columns`.
    """
    added: dict[str, dict[str, Any]] = {}
    parent = getattr(stream, "parent", None)
    if parent and PARENT_KEYS[parent] not in item.get("properties", {}):
        added[PARENT_KEYS[parent]] = parent_column(parent)
    for name, schema in getattr(stream, "added_columns", {}).items():
        added[name] = dict(schema)
    return added


#: The official client's (metronome-sdk) type of one item of each stream's
#: endpoint, under `metronome.types`: its fields that the spec lacks are added.
CLIENT_MODELS = {
    "customers": "v1.customer_detail.CustomerDetail",
    "plans": "v1.plan_list_response.PlanListResponse",
    "plan_charges": "v1.plan_list_charges_response.PlanListChargesResponse",
    "customer_plans": "v1.customers.plan_list_response.PlanListResponse",
    "contracts": "shared.contract_v2.ContractV2",
    "balances": "v1.contract_list_balances_response.ContractListBalancesResponse",
    "invoices": "v1.customers.invoice.Invoice",
    "invoice_line_items": "v1.customers.invoice.LineItem",
    "credit_types": "v1.pricing_unit_list_response.PricingUnitListResponse",
    "billable_metrics": "v1.billable_metric_list_response.BillableMetricListResponse",
    "products": "v1.contracts.product_list_response.ProductListResponse",
    "rate_cards": "v1.contracts.rate_card_list_response.RateCardListResponse",
    "usage": "v1.usage_list_response.UsageListResponse",
    "audit_logs": "v1.audit_log_list_response.AuditLogListResponse",
    "customer_costs": "v1.customer_list_costs_response.CustomerListCostsResponse",
    "customer_alerts": "v1.customers.customer_alert.CustomerAlert",
    "billing_provider_configurations": (
        "v1.customer_retrieve_billing_configurations_response.Data"
    ),
    "credit_grants": "v1.credit_grant_list_response.CreditGrantListResponse",
    "credit_ledger_entries": (
        "v1.credit_grant_list_entries_response.CreditGrantListEntriesResponse"
    ),
}

#: Endpoints the spec copy lacks, and the official client's model of one `data`
#: item of each: their item schemas are read from the client (`client_openapi`).
CLIENT_ONLY = {
    ("post", "/v1/credits/listGrants"): CLIENT_MODELS["credit_grants"],
    ("post", "/v1/credits/listEntries"): CLIENT_MODELS["credit_ledger_entries"],
}


def _client_type(dotted: str) -> Any:
    module, _, name = f"metronome.types.{dotted}".rpartition(".")
    return getattr(importlib.import_module(module), name)


def client_fields(properties: dict[str, Any], model: Any, depth: int = 0) -> None:
    """Add to `properties` the fields of the client's `model` that they lack.

    Recursively: a field both have is followed into its nested objects, list
    items and map values. Where the spec has a free-form object, nothing is added.
    """
    for kind in _models(model):
        for name, info in kind.model_fields.items():
            key = info.alias or name
            if key not in properties:
                properties[key] = _nullable(client_schema(info.annotation))
                properties[key]["description"] = (
                    properties[key].get("description", "") + _FROM_THE_CLIENT
                ).strip()
            elif depth < 12:
                _follow(properties[key], info.annotation, depth + 1)


_FROM_THE_CLIENT = " (From the official client, metronome-sdk; not in the spec.)"


def _follow(node: dict[str, Any], annotation: Any, depth: int) -> None:
    """Merge the client's fields into `node` wherever both describe objects."""
    args = [a for a in union_args(annotation) if a is not type(None)]
    for arg in args:
        origin = typing.get_origin(arg)
        if origin is list and isinstance(node.get("items"), dict):
            _follow(node["items"], typing.get_args(arg)[0], depth + 1)
        elif origin is dict and isinstance(node.get("additionalProperties"), dict):
            _follow(node["additionalProperties"], typing.get_args(arg)[1], depth + 1)
        elif _is_model(arg) and node.get("properties"):
            client_fields(node["properties"], arg, depth)


def union_args(annotation: Any) -> list[Any]:
    """The types of a union annotation (`Optional`, `|`, `Annotated` seen through)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return union_args(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in union_args(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "model_fields")


def _models(annotation: Any) -> list[Any]:
    return [a for a in union_args(annotation) if _is_model(a)]


def client_schema(annotation: Any, depth: int = 0) -> dict[str, Any]:
    """A tolerant JSON Schema for a type of the client (its fields all nullable)."""
    args = [a for a in union_args(annotation) if a is not type(None)]
    nullable = len(args) < len(union_args(annotation))
    if len(args) > 1:
        schema: dict[str, Any] = functools.reduce(
            _union, [client_schema(a, depth + 1) for a in args]
        )
    elif not args or args[0] in (object, Any) or depth > 12:
        return {}
    else:
        schema = _client_single(args[0], depth)
    return _nullable(schema) if nullable else schema


def _client_single(kind: Any, depth: int) -> dict[str, Any]:
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        values = typing.get_args(kind)
        return {
            "type": _JSON_KIND[type(values[0])],
            "description": f"Known values: {', '.join(map(str, values))} "
            "(others may appear).",
        }
    if origin is list:
        return {
            "type": "array",
            "items": client_schema(typing.get_args(kind)[0], depth + 1),
        }
    if origin is dict:
        value = client_schema(typing.get_args(kind)[1], depth + 1)
        return _open_object({"type": "object", "additionalProperties": value or True})
    if _is_model(kind):
        properties: dict[str, Any] = {}
        client_fields(properties, kind, depth + 1)
        for schema in properties.values():  # nested: no "from the client" note
            if schema.get("description", "").endswith(_FROM_THE_CLIENT.strip()):
                text = schema["description"][: -len(_FROM_THE_CLIENT.strip())].strip()
                schema.pop("description")
                if text:
                    schema["description"] = text
        return _open_object({"type": "object", "properties": properties})
    if kind in (datetime.datetime, datetime.date):
        form = "date-time" if kind is datetime.datetime else "date"
        return {"type": "string", "format": form}
    return {"type": _JSON_KIND[kind]}


_JSON_KIND = {str: "string", bool: "boolean", int: "integer", float: "number"}


def client_item_schema(method: str, path: str) -> dict[str, Any]:
    """The item schema of an endpoint the spec copy lacks, from the client (a copy)."""
    return copy.deepcopy(_client_openapi(CLIENT_ONLY[method, path]))


@functools.cache
def _client_openapi(dotted: str) -> dict[str, Any]:
    return client_openapi(_client_type(dotted))


def client_openapi(annotation: Any, depth: int = 0) -> dict[str, Any]:
    """An OpenAPI 3.0 schema object for a type of the official client.

    For the endpoints the spec copy lacks (`CLIENT_ONLY`), so that they are read
    as every other endpoint is (`Spec.convert`; the tests' items and checks):
    a model is an object whose fields without a default are `required`, an
    `Optional` is `nullable`, a `Literal` an `enum`, a `datetime` a `date-time`
    string, `float` a number (read as an exact Decimal by the tap).
    """
    args = [a for a in union_args(annotation) if a is not type(None)]
    nullable = {"nullable": True} if len(args) < len(union_args(annotation)) else {}
    if len(args) > 1:
        return {"oneOf": [client_openapi(a, depth + 1) for a in args]} | nullable
    if not args or args[0] in (object, Any) or depth > 12:
        return {} | nullable
    kind = args[0]
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        values = list(typing.get_args(kind))
        return {"type": _JSON_KIND[type(values[0])], "enum": values} | nullable
    if origin is list:
        item = client_openapi(typing.get_args(kind)[0], depth + 1)
        return {"type": "array", "items": item} | nullable
    if origin is dict:
        value = client_openapi(typing.get_args(kind)[1], depth + 1)
        return {"type": "object", "additionalProperties": value or True} | nullable
    if _is_model(kind):
        fields = kind.model_fields
        return {
            "type": "object",
            "required": [
                info.alias or name
                for name, info in fields.items()
                if info.is_required()
            ],
            "properties": {
                info.alias or name: client_openapi(info.annotation, depth + 1)
                for name, info in fields.items()
            },
        } | nullable
    if kind in (datetime.datetime, datetime.date):
        form = "date-time" if kind is datetime.datetime else "date"
        return {"type": "string", "format": form} | nullable
    return {"type": _JSON_KIND[kind]} | nullable


class Spec:
    """The OpenAPI document, with `$ref` resolution."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """`node` with its `$ref` (and the ref's own refs) replaced by the target.

        As OpenAPI 3.0 reads it: the siblings of `$ref` are ignored (the spec has
        `{"type": "object", "$ref": <a string enum>}`), except `nullable`, which
        the official client honours, and `description`, kept as the column's
        text (it describes the field, not its type, and changes no value's
        validity).
        """
        seen: set[str] = set()
        nullable = False
        description = None
        while "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                msg = f"circular $ref {ref}"
                raise ValueError(msg)
            seen.add(ref)
            nullable = nullable or node.get("nullable") is True
            description = description or node.get("description")
            target: Any = self.document
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            node = target
        if nullable:
            node = {**node, "nullable": True}
        if description:
            node = {**node, "description": description}
        return node

    def item_schema(self, endpoint: Endpoint) -> dict[str, Any]:
        """The schema of one `data` item of the endpoint's 200 answer.

        For an endpoint the spec copy lacks (`CLIENT_ONLY`), the official
        client's model of the item, as an OpenAPI schema (`client_openapi`).
        """
        if (endpoint.method, endpoint.path) in CLIENT_ONLY:
            return client_item_schema(endpoint.method, endpoint.path)
        operation = self.document["paths"][endpoint.path][endpoint.method]
        content = operation["responses"]["200"]["content"]["application/json"]
        page = self.resolve(content["schema"])
        return self.resolve(page["properties"]["data"]["items"])

    def convert(self, node: dict[str, Any], depth: int = 0) -> dict[str, Any]:
        """A tolerant JSON Schema (draft 2020-12) for an OpenAPI schema object."""
        if depth > 40:
            msg = "schema nested more than 40 levels"
            raise ValueError(msg)
        node = self.resolve(node)
        for part in node.get("allOf", []):
            node = _merge(node, self.resolve(part))
        if "oneOf" in node:
            # One column set for every variant (a commit or a credit, one of the
            # ledger entry kinds): targets cannot load a union of objects.
            variants = [self.convert(v, depth + 1) for v in node["oneOf"]]
            merged = functools.reduce(_union, variants)
            description = (node.get("description") or "").strip()
            return merged | ({"description": description} if description else {})
        out: dict[str, Any] = {}
        kind = node.get("type")
        if kind is None and "properties" in node:
            kind = "object"
        if kind is not None:
            out["type"] = [kind, "null"] if node.get("nullable") else kind
        if "format" in node:
            out["format"] = node["format"]
        description = (node.get("description") or "").strip()
        if "enum" in node:
            known = ", ".join(str(v) for v in node["enum"] if v is not None)
            description = (
                f"{description} Known values: {known} (others may appear).".strip()
            )
        if description:
            out["description"] = description
        if "items" in node:
            out["items"] = self.convert(node["items"], depth + 1)
        if "properties" in node:
            out["properties"] = {}
            for name, child in node["properties"].items():
                # Null whatever the spec requires: a value that does not match is
                # written as null (tap_metronome/unexpected.py).
                out["properties"][name] = _nullable(self.convert(child, depth + 1))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = self.convert(extra, depth + 1)
        return _open_object(out)


def _merge(node: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for key, value in part.items():
        if key == "properties":
            merged["properties"] = {**merged.get("properties", {}), **value}
        elif key == "required":
            merged["required"] = [*merged.get("required", []), *value]
        else:
            merged.setdefault(key, value)
    return merged


def _open_object(schema: dict[str, Any]) -> dict[str, Any]:
    """An open object (a map, free-form JSON): no properties, any others kept.

    The SDK's conformance keeps such an object as it comes; without
    `properties` it fails on one inside a list.
    """
    if "object" in _types(schema) and "properties" not in schema:
        schema["properties"] = {}
        schema.setdefault("additionalProperties", True)
    return schema


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    return [] if kind is None else kind if isinstance(kind, list) else [kind]


def _union(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """A schema that admits what either admits; a field of one variant only may be null."""
    if not first.get("type") or not second.get("type"):
        return {}  # one variant admits anything: so does the union
    out: dict[str, Any] = {}
    types = [*_types(first), *(t for t in _types(second) if t not in _types(first))]
    if "null" in types:
        types = [*(t for t in types if t != "null"), "null"]
    out["type"] = types[0] if len(types) == 1 else types
    if first.get("format") == second.get("format") and "format" in first:
        out["format"] = first["format"]
    description = _union_description(
        first.get("description", ""), second.get("description", "")
    )
    if description:
        out["description"] = description
    if "items" in first or "items" in second:
        out["items"] = (
            _union(first["items"], second["items"])
            if "items" in first and "items" in second
            else {}
        )
    if "properties" in first or "properties" in second:
        mine, theirs = first.get("properties", {}), second.get("properties", {})
        out["properties"] = {}
        for name in [*mine, *(n for n in theirs if n not in mine)]:
            if name in mine and name in theirs:
                out["properties"][name] = _union(mine[name], theirs[name])
            else:
                out["properties"][name] = _nullable(mine.get(name) or theirs[name])
    if "additionalProperties" in first or "additionalProperties" in second:
        out["additionalProperties"] = (
            _union(first["additionalProperties"], second["additionalProperties"])
            if "additionalProperties" in first and "additionalProperties" in second
            else {}
        )
    return out


_KNOWN = re.compile(r"\s*Known values: (.*) \(others may appear\)\.$")


def _union_description(first: str, second: str) -> str:
    """The first description, with the known values of both variants."""
    values: list[str] = []
    texts = []
    for text in (first, second):
        match = _KNOWN.search(text)
        if match:
            values += [v for v in match.group(1).split(", ") if v not in values]
            text = text[: match.start()]
        texts.append(text.strip())
    text = texts[0] or texts[1]
    if values:
        text = f"{text} Known values: {', '.join(values)} (others may appear).".strip()
    return text


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A key's schema: what the field admits but null (the tap refuses a null key)."""
    kind = schema.get("type")
    if not isinstance(kind, list) or "null" not in kind:
        return schema
    kinds = [t for t in kind if t != "null"]
    return {**schema, "type": kinds[0] if len(kinds) == 1 else kinds}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if kind is None or (isinstance(kind, list) and "null" in kind):
        return schema
    types = kind if isinstance(kind, list) else [kind]
    return {**schema, "type": [*types, "null"]}


def listing_schema(spec: Spec, stream: type[MetronomeStream]) -> dict[str, Any]:
    """A stream of one endpoint's items: the item's fields, keys required.

    Endpoint, keys, parent, added columns and description: the stream's class.
    """
    endpoint = Endpoint.of(stream)
    item = spec.convert(spec.item_schema(endpoint))
    properties = {
        **added_columns(stream, item),
        **item.get("properties", {}),
    }
    client_fields(properties, _client_type(CLIENT_MODELS[stream.name]))
    for name in getattr(stream, "omitted_fields", ()):  # another stream's rows
        properties.pop(name)
    for key in stream.primary_keys or ():  # a key is never null
        schema = properties[key]
        kind = schema.get("type")
        if isinstance(kind, list):
            schema["type"] = next(t for t in kind if t != "null")
    return _stream(
        stream.name,
        f"An item of {endpoint}. {stream.description}{_source(endpoint)}".strip(),
        keys=key_columns(stream),
        properties=properties,
    )


def _source(endpoint: Endpoint) -> str:
    """What says where a schema comes from when it is not the spec."""
    dotted = CLIENT_ONLY.get((endpoint.method, endpoint.path))
    if dotted is None:
        return ""
    return (
        f" Read from the official client's response model (metronome-sdk "
        f"{_client_version()}, metronome.types.{dotted}): the spec copy lacks "
        "this endpoint."
    )


def _client_version() -> str:
    return importlib.import_module("metronome._version").__version__


def credit_ledger_entries_schema(
    spec: Spec, stream: type[MetronomeStream]
) -> dict[str, Any]:
    """`credit_ledger_entries`: one row per entry of a customer's ledger (tap-built)."""
    endpoint = Endpoint.of(stream)
    item = spec.resolve(spec.item_schema(endpoint))
    ledger = spec.resolve(spec.resolve(item["properties"]["ledgers"])["items"])
    credit_type = spec.convert(ledger["properties"]["credit_type"])["properties"]
    entry = spec.convert(ledger["properties"]["entries"])["items"]
    properties = {
        "customer_id": spec.convert(item["properties"]["customer_id"])
        | {"description": "The customer whose ledger holds the entry."},
        "credit_type_id": {
            "type": "string",
            "description": "The ledger's credit type (credit_type.id of the ledger).",
        },
        "credit_type_name": _nullable(credit_type["name"])
        | {"description": "The ledger's credit type's name, also the amounts' unit."},
        "entry_key": {
            "type": "string",
            "description": (
                "Added by the tap (entries have no id): a hash of the customer, credit "
                "type, pending flag, credit_grant_id, effective_at, reason, invoice_id "
                "and created_by, with #2, #3... for identical entries in API order; "
                "the same entry gets the same key in every run, whatever its amount "
                "or running balance."
            ),
        },
        "pending": {
            "type": "boolean",
            "description": (
                "Added by the tap: whether the entry is one of the ledger's "
                "pending_entries (not posted yet: a pending deduction's amount "
                "changes until its invoice is finalized, then it is posted as an "
                "entry of its own) rather than its entries."
            ),
        },
        **entry["properties"],
    }
    return _stream(
        stream.name,
        f"One entry of a customer's credit ledger of one credit type, posted or "
        f"pending: {endpoint}'s items (a customer each, with a ledger per credit "
        f"type) turned into rows.{_source(endpoint)}",
        keys=key_columns(stream),
        properties=properties,
    )


def line_items_schema(spec: Spec, stream: type[MetronomeStream]) -> dict[str, Any]:
    """`invoice_line_items`: the line items of `invoices`, one row each, keyed by the tap."""
    endpoint = Endpoint.of(stream)
    invoice = spec.resolve(spec.item_schema(endpoint))
    line = spec.convert(invoice["properties"]["line_items"])["items"]
    properties = {
        "invoice_id": UUID | {"description": "The invoice (added by the tap)."},
        "line_item_key": {
            "type": "string",
            "description": (
                "Added by the tap (line items have no id): a hash of the fields that "
                "identify a line item within its invoice (type, name, product, period, "
                "commit, charge, subscription, group values, tier, applied commit or "
                "credit), with #2, #3... for repeats; the same line item gets the same "
                "key in every run, whatever its amounts."
            ),
        },
        "customer_id": UUID | {"description": "The customer (added by the tap)."},
        "invoice_start_timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "The invoice's start_timestamp (added by the tap); the "
            "replication key.",
        },
        **line["properties"],
    }
    client_fields(properties, _client_type("v1.customers.invoice.LineItem"))
    return _stream(
        stream.name,
        f"A line item of an invoice of {endpoint}, read from the same responses as "
        "the invoices stream.",
        keys=key_columns(stream),
        properties=properties,
    )


def costs_schema(spec: Spec, stream: type[MetronomeStream]) -> dict[str, Any]:
    """`customer_costs`: one row per Costs item and credit type (built by the tap)."""
    endpoint = Endpoint.of(stream)
    item = spec.resolve(spec.item_schema(endpoint))
    day = {
        name: spec.convert(item["properties"][name])
        for name in ("start_timestamp", "end_timestamp")
    }
    per_credit_type = spec.resolve(item["properties"]["credit_types"])
    entry = spec.convert(per_credit_type["additionalProperties"])["properties"]
    properties = {
        "customer_id": parent_column("customers"),
        "start_timestamp": day["start_timestamp"]
        | {"description": "Start of the UTC day (inclusive)."},
        "end_timestamp": day["end_timestamp"]
        | {"description": "End of the UTC day (exclusive); the replication key."},
        "credit_type_id": {
            "type": "string",
            "description": "The key of the item's credit_types map: the credit type's id.",
        },
        "credit_type_name": _nullable(entry["name"])
        | {"description": "The credit type's name, which is also the unit of cost."},
        "cost": _nullable(entry["cost"])
        | {"description": "Total cost of the day in this credit type."},
        "line_item_breakdown": _nullable(entry["line_item_breakdown"]),
    }
    return _stream(
        stream.name,
        "One customer's cost for one UTC day in one credit type: a Costs item of "
        f"{endpoint} with its credit_types map turned into rows. Amounts are in the "
        'credit type\'s unit ("USD (cents)" is cents).',
        keys=key_columns(stream),
        properties=properties,
    )


def _balance_item(spec: Spec, stream: type[MetronomeStream]) -> dict[str, Any]:
    """A balances item (a commit or a credit: every variant's fields), converted."""
    properties: dict[str, Any] = spec.convert(spec.item_schema(Endpoint.of(stream)))[
        "properties"
    ]
    return properties


def ledger_entries_schema(spec: Spec, stream: type[MetronomeStream]) -> dict[str, Any]:
    """`balance_ledger_entries`: the ledgers of `balances`, one row per entry."""
    endpoint = Endpoint.of(stream)
    item = _balance_item(spec, stream)
    entry = item["ledger"]["items"]  # every entry type of commits and credits
    properties = {
        "customer_id": parent_column("customers"),
        "commit_or_credit_id": _not_null(item["id"])
        | {"description": "The commit's or credit's id (added by the tap)."},
        "commit_or_credit_type": item["type"]
        | {
            "description": "The commit's or credit's type (added by the tap): "
            + item["type"]["description"]
        },
        "commit_or_credit_contract_id": item["contract"]["properties"]["id"]
        | {
            "description": "The contract of a contract-level commit or credit "
            "(added by the tap; null for a customer-level one)."
        },
        "entry_key": {
            "type": "string",
            "description": (
                "Added by the tap (ledger entries have no id): a hash of the fields "
                "that identify an entry within its commit's or credit's ledger "
                "(type, timestamp, segment, invoice, contract, new contract, "
                "reason), with #2, #3... for identical entries in API order; the "
                "same entry gets the same key in every run, whatever its amount."
            ),
        },
        **entry["properties"],
    }
    for ledger in ("shared.commit.Ledger", "shared.credit.Ledger"):
        client_fields(properties, _client_type(ledger))
    return _stream(
        stream.name,
        f"An entry of the ledger of a commit or credit of {endpoint} "
        "(include_ledgers true), read from the same responses as the balances "
        f"stream. {stream.description}",
        keys=key_columns(stream),
        properties=properties,
    )


def snapshots_schema(spec: Spec, stream: type[MetronomeStream]) -> dict[str, Any]:
    """`balance_snapshots`: a few fields of each balances item, per UTC day."""
    endpoint = Endpoint.of(stream)
    item = _balance_item(spec, stream)
    product = item["product"]["properties"]
    credit_type = item["access_schedule"]["properties"]["credit_type"]["properties"]
    properties = {
        "id": _not_null(item["id"]) | {"description": "The commit's or credit's id."},
        "snapshot_date": {
            "type": "string",
            "format": "date",
            "description": "The UTC day of the run that read the balance (added by "
            "the tap); the replication key.",
        },
        "customer_id": parent_column("customers"),
        "contract_id": item["contract"]["properties"]["id"]
        | {
            "description": "The contract of a contract-level commit or credit "
            "(null for a customer-level one)."
        },
        "type": item["type"],
        "name": item["name"],
        "product_id": product["id"] | {"description": "The product's id."},
        "product_name": product["name"] | {"description": "The product's name."},
        "credit_type_id": credit_type["id"]
        | {"description": "The access schedule's credit type: the balance's unit."},
        "credit_type_name": credit_type["name"]
        | {"description": 'The credit type\'s name ("USD (cents)" is cents).'},
        "balance": item["balance"],
    }
    return _stream(
        stream.name,
        f"A commit's or credit's balance of {endpoint} on one UTC day, read from "
        f"the same responses as the balances stream. {stream.description}",
        keys=key_columns(stream),
        properties=properties,
    )


#: Streams whose rows the tap builds from the items (the others: one item, one row).
BUILT_BY_THE_TAP = {
    CustomerCostsStream: costs_schema,
    InvoiceLineItemsStream: line_items_schema,
    BalanceLedgerEntriesStream: ledger_entries_schema,
    BalanceSnapshotsStream: snapshots_schema,
    CreditLedgerEntriesStream: credit_ledger_entries_schema,
}


#: Where the tap keeps a value that does not match the schema (unexpected.py).
UNEXPECTED_VALUES = {
    "type": ["object", "null"],
    "description": (
        "Added by the tap: values the API sent that do not match this schema, by "
        "JSON Pointer (RFC 6901) of their place in the record, which holds null "
        "instead. Null when every value matched."
    ),
    # No "properties": the SDK's flattening drops an object with `properties: {}`
    # from the flattened schema and spreads the record's pointers into columns
    # (`_unexpected_values__/name`) that no schema declares; without, the column
    # is kept, as JSON text.
    "additionalProperties": True,
}


def _stream(
    name: str, description: str, *, keys: list[str], properties: dict[str, Any]
) -> dict[str, Any]:
    """A stream's schema: every field but the keys may be null.

    The keys are required in the order of their columns.
    """
    missing = set(keys) - set(properties)
    if missing:
        msg = f"{name}: key columns {sorted(missing)} are not in the schema"
        raise ValueError(msg)
    properties = {
        field: schema if field in keys else _nullable(schema)
        for field, schema in properties.items()
    }
    return {
        "$schema": DRAFT,
        "title": name,
        "description": description,
        "type": "object",
        "required": [field for field in properties if field in keys],
        "properties": {**properties, "_unexpected_values": UNEXPECTED_VALUES},
    }


def build(document: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every stream's schema, by stream name."""
    spec = Spec(copy.deepcopy(document or json.loads(SPEC.read_text())))
    schemas = {
        stream.name: BUILT_BY_THE_TAP.get(stream, listing_schema)(spec, stream)
        for stream in STREAM_TYPES
    }
    return dict(sorted(schemas.items()))


def render(schema: dict[str, Any]) -> str:
    """The file text of one schema."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write every schema file."""
    for name, schema in build().items():
        path = SCHEMAS / f"{name}.json"
        path.write_text(render(schema))
        sys.stdout.write(f"wrote {path.relative_to(REPO)}\n")


if __name__ == "__main__":
    main()
