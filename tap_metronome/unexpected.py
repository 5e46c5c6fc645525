"""Values that do not match the stream's schema: kept in the record, not fatal.

Why: the API may send a value its spec does not allow (a new enum kind of
object, a number as a string). Stopping the run for it stops every stream after
it, on every scheduled run, until a release. So, like Airbyte's destinations
(which null the value and note it in `_airbyte_meta`), a value that does not
match is written as null and kept, as it came, in the record's
`_unexpected_values` column: a JSON object of RFC 6901 pointer -> value
(`{"/billable_status": {"a": 1}}`), declared in every stream's schema.

What stays strict (a `ResponseError` stops the run, naming the stream and
field): the fields the tap computes with, which are a stream's primary keys,
replication key, the parent id it adds and its `strict_fields` (an invoice's
status and line items, a usage window's end), and an item that is not an
object. With the setting `unexpected_values: fail`, every mismatch is strict.

A value "does not match" when the schema's type refuses it, or when it is a
string whose format (`date-time`, `date`, `uuid`) a target would parse and
cannot: a target such as target-postgres makes a TIMESTAMP column of a
`date-time` field and would refuse the whole batch. A strict field that is not
a uuid is the one exception: ids of another form have always been keys here.

The field nulled is the deepest location, from the one that does not match up
to its top-level field, whose schema admits null: in practice the field itself
(the schemas admit null everywhere but in keys and array items).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from tap_metronome import times
from tap_metronome.errors import ResponseError, one_line

#: The column that keeps the values the tap nulled (declared in every schema).
COLUMN = "_unexpected_values"
KEEP = "keep"
FAIL = "fail"

_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")

FORMATS = FormatChecker(formats=())


def _parses(value: object, parse: Callable[[str], object]) -> bool:
    """Whether `parse` takes a string; other kinds pass (the type check speaks)."""
    if not isinstance(value, str):
        return True
    try:
        parse(value)
    except ValueError:  # 2026-02-30, not-a-date
        return False
    return True


@FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    """RFC 3339 (`times`), in a form targets read as it is.

    A date-time `times` reads but a target would not (a lower-case `z`, a leap
    second) does not match here; in a field the tap computes with,
    `UnexpectedValues.check` writes it in the tap's form instead (`_respelled`).
    """
    return not isinstance(value, str) or times.written_as_is(value)


@FORMATS.checks("date")
def _is_date(value: object) -> bool:
    return _parses(value, times.parse_date)


@FORMATS.checks("uuid")
def _is_uuid(value: object) -> bool:
    return _parses(value, _uuid)


def _uuid(text: str) -> uuid.UUID:
    if not _UUID.fullmatch(text):
        raise ValueError(text)
    return uuid.UUID(text)


def pointer(path: Iterable[str | int]) -> str:
    """The RFC 6901 JSON Pointer of a location (`/line_items/0/total`)."""
    return "".join(
        "/" + str(part).replace("~", "~0").replace("/", "~1") for part in path
    )


def field_name(path: Iterable[str | int]) -> str:
    """A location without its array positions, for log lines (`line_items/*/total`)."""
    return "/".join("*" if isinstance(part, int) else str(part) for part in path)


def _schema_at(schema: Mapping[str, Any], path: tuple[str | int, ...]) -> Any:
    """The schema of the value at `path` (`{}`, anything, where none is declared)."""
    node: Any = schema
    for part in path:
        if not isinstance(node, Mapping):
            return {}
        if isinstance(part, int):
            node = node.get("items", {})
            continue
        properties = node.get("properties") or {}
        if part in properties:
            node = properties[part]
        else:
            extra = node.get("additionalProperties", {})
            node = extra if isinstance(extra, Mapping) else {}
    return node


def _admits_null(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return bool(schema)
    kind = schema.get("type")
    return kind is None or kind == "null" or (isinstance(kind, list) and "null" in kind)


class UnexpectedValues:
    """One stream's check of its records against its schema, with the policy."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        stream: str,
        where: str,
        strict: Iterable[str],
        policy: str,
        logger: logging.Logger,
    ) -> None:
        self.schema = schema
        self.stream = stream
        #: The request, for messages ("GET /v1/customers/{customer_id}/invoices").
        self.where = where
        self.strict = frozenset(strict)
        self.policy = policy
        self.logger = logger
        self.validator = Draft202012Validator(schema, format_checker=FORMATS)
        #: Records written with a value moved to `_unexpected_values`, this run.
        self.rows = 0
        self._warned: set[str] = set()
        self._respelled_fields: set[str] = set()

    def check(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row if it matches; else a copy with each mismatch nulled and kept.

        Raises `ResponseError` for a mismatch the policy or the field makes strict.
        """
        if COLUMN in row:  # the API's own, if it ever sends one: kept, not trusted
            row = dict(row)
            moved: dict[str, Any] = {pointer([COLUMN]): row.pop(COLUMN)}
        else:
            moved = {}
        errors = self._errors(row)
        if errors:
            row, errors = self._respelled(row, errors)
        if not errors and not moved:
            return row
        targets = sorted(
            {
                self._target(tuple(error.absolute_path), error.message)
                for error in errors
            },
            key=len,
        )
        chosen: list[tuple[str | int, ...]] = []
        for target in targets:
            if not any(target[: len(done)] == done for done in chosen):
                chosen.append(target)
        row = _nulled(row, chosen, moved)
        remaining = next(iter(self._errors(row)), None)
        if remaining is not None:  # a schema without a nullable place for it
            raise self._refusal(tuple(remaining.absolute_path), remaining.message)
        self.note(row, moved)
        return row

    def _respelled(
        self, row: dict[str, Any], errors: list[Any]
    ) -> tuple[dict[str, Any], list[Any]]:
        """The row with each strict date-time targets cannot read in the tap's form.

        A lower-case `z` or a leap second is RFC 3339 (`times` reads it), but
        Python's `fromisoformat`, which Singer SDK targets use, refuses it. In a
        field the tap computes with (a key, a replication key, a strict field),
        which cannot be nulled, the value is written as the same instant in the
        tap's form (`times.instant_text`; a leap second as 23:59:59.999999), so
        the record, its bookmark and the next run's state check agree. Anywhere
        else it is a mismatch, nulled and kept as it came. Returns the other
        errors.
        """
        changes: list[tuple[tuple[str | int, ...], str]] = []
        others = []
        for error in errors:
            value = error.instance
            path = error.absolute_path
            if (
                error.validator == "format"
                and error.validator_value == "date-time"
                and len(path) == 1
                and path[0] in self.strict
            ):
                try:
                    changes.append((tuple(error.absolute_path), times.canonical(value)))
                    continue
                except (TypeError, ValueError):
                    pass
            others.append(error)
        if not changes:
            return row, errors
        out: dict[str, Any] = dict(row)
        copied: set[int] = set()
        for path, text in changes:
            container = _container(out, path, copied)
            name = field_name(path)
            if name not in self._respelled_fields:
                self._respelled_fields.add(name)
                self.logger.info(
                    "Stream %s: %s returned %s in %s, written as %s (the same "
                    "instant, in a form every target reads; once per field and run)",
                    self.stream,
                    self.where,
                    one_line(container[path[-1]], 60),
                    name,
                    text,
                )
            container[path[-1]] = text
        return out, others

    def _errors(self, row: dict[str, Any]) -> list[Any]:
        """The row's mismatches, but a key's form (an id need not be a uuid).

        A strict date or date-time that does not parse is a mismatch (it stops
        the run: a target would refuse it, and a bookmark cannot be made of it);
        a value nested in a strict field (an invoice's line item's date) is
        checked like any other. The same test before and after nulling: a key's
        form must not stop a row whose other mismatches were nulled.
        """
        return [
            error
            for error in self.validator.iter_errors(row)
            if error.validator != "format"
            or error.validator_value != "uuid"
            or len(error.absolute_path) != 1
            or error.absolute_path[0] not in self.strict
        ]

    def note(self, row: dict[str, Any], moved: Mapping[str, Any] | None = None) -> None:
        """Count a row that carries unexpected values and warn once per field.

        For rows built by the tap with `_unexpected_values` already set (costs);
        under `unexpected_values: fail` it raises instead.
        """
        moved = moved if moved is not None else row.get(COLUMN) or {}
        if not moved:
            row.pop(COLUMN, None)
            return
        if self.policy == FAIL:
            where, value = next(iter(moved.items()))
            raise self._refusal(
                tuple(where.split("/")[1:]), f"{one_line(value, 60)} is unexpected"
            )
        row[COLUMN] = dict(moved)
        self.rows += 1
        for where, value in moved.items():
            name = field_name(_unescape(where))
            if name in self._warned:
                continue
            self._warned.add(name)
            self.logger.warning(
                "Stream %s: %s returned %s in %s, which does not match the schema; "
                "the record is written with it null and the value in %s "
                "(unexpected_values: keep; once per field and run)",
                self.stream,
                self.where,
                one_line(value, 80),
                name,
                COLUMN,
            )

    def summary(self) -> str:
        """The stream's summary-line part."""
        return f"{self.rows} records with unexpected values kept"

    def _target(
        self, path: tuple[str | int, ...], message: str
    ) -> tuple[str | int, ...]:
        """Where to null for a mismatch at `path`, or the refusal if it is strict."""
        if (
            not path
            or self.policy == FAIL
            or (len(path) == 1 and path[0] in self.strict)
        ):
            raise self._refusal(path, message)
        for end in range(len(path), 0, -1):
            if end == 1 and path[0] in self.strict:
                break
            if _admits_null(_schema_at(self.schema, path[:end])):
                return path[:end]
        raise self._refusal(path, message)

    def _refusal(self, path: tuple[str | int, ...], message: str) -> ResponseError:
        field = "/".join(str(part) for part in path) or "(item)"
        hint = (
            ""
            if not path or path[0] in self.strict or self.policy != FAIL
            else (" (unexpected_values: fail)")
        )
        return ResponseError(
            f"Stream {self.stream}: {self.where} returned an item whose {field} does "
            f"not match the schema: {one_line(message, 160)}{hint}"
        )


def _unescape(where: str) -> list[str | int]:
    parts: list[str | int] = []
    for part in where.split("/")[1:]:
        text = part.replace("~1", "/").replace("~0", "~")
        parts.append(int(text) if text.isdigit() else text)
    return parts


def _nulled(
    row: dict[str, Any],
    targets: list[tuple[str | int, ...]],
    moved: dict[str, Any],
) -> dict[str, Any]:
    """A copy of `row` with each target null, its value put in `moved`.

    Copies only the containers on the way: the row may be shared (invoices are
    kept for their line items and bookmarks).
    """
    out = dict(row)
    copied: set[int] = set()
    for target in targets:
        container = _container(out, target, copied)
        moved[pointer(target)] = container[target[-1]]
        container[target[-1]] = None
    return out


def _container(
    out: dict[str, Any], path: tuple[str | int, ...], copied: set[int]
) -> Any:
    """The container of `path`'s last part in `out` (a copy), each copied once.

    Copies only the containers on the way: the row may be shared.
    """
    copied.add(id(out))
    container: Any = out
    for part in path[:-1]:
        child = container[part]
        if id(child) not in copied:
            child = list(child) if isinstance(child, list) else dict(child)
            copied.add(id(child))
            container[part] = child
        container = child
    return container
