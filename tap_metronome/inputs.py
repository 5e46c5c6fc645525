"""The files a run starts from (`--config`, `--state`, `--catalog`), read once each.

Both commands (`tap-metronome`, `source-metronome`) read them here: each file at
most once (a pipe can be read once), at most `MAX_INPUT_BYTES`, as JSON with
exact decimals and without NaN, and any problem is `InputError`, one line naming
the option and the file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path, PurePath
from typing import IO, Any

from singer_sdk.singerlib import Catalog

from tap_metronome.errors import InputError, one_line

#: The most `--config`, `--state` or `--catalog` may hold; a larger one (or
#: `/dev/zero`) is refused after reading one byte more. A state lists each
#: customer's bookmark: about 40 bytes per customer id, so 100,000 customers
#: make ~4 MiB and even ten million stay far below; a catalog is ~100 KiB.
#: Parsing a full 256 MiB input takes about 1 GiB, which a host can still give.
MAX_INPUT_BYTES = 256 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


def config_values(config: Any) -> dict[str, Any]:
    """The config as one dict, from a dict or (as the SDK also accepts) file paths."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    paths = [config] if isinstance(config, str | PurePath) else list(config)
    values: dict[str, Any] = {}
    for path in paths:
        values |= read_json_object(str(path), "config")
    return values


def read_json_object(path: str, option: str) -> dict[str, Any]:
    """A JSON object from a file, or `InputError` naming the option and the file."""
    return _json_object(read_json(path, option), f"{option} {one_line(path, 200)}")


def read_json(path: str, option: str) -> Any:
    """Any JSON value from a file (numbers with a fraction as Decimal), or `InputError`."""
    shown = one_line(path, 200)
    try:
        with Path(path).open("rb") as stream:
            text = _read_capped(stream, f"{option} {shown}").decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        msg = f"{option} {shown}: cannot read the file ({reason})"
        raise InputError(msg) from None
    return _parse_json(text, f"{option} {shown}")


def json_object_text(handle: IO[str], option: str) -> str:
    """The text of an open `--state` or `--catalog`, read once and checked.

    The handle is the SDK's click file; the SDK parses the text it is given.
    """
    name = getattr(handle, "name", None)
    where = f"{option} {one_line(name, 200)}" if isinstance(name, str) else option
    try:
        binary = getattr(handle, "buffer", None)
        if binary is not None:
            text = _read_capped(binary, where).decode("utf-8")
        elif len(text := handle.read(MAX_INPUT_BYTES + 1)) > MAX_INPUT_BYTES:
            raise _too_large(where)
    except (OSError, UnicodeDecodeError):
        msg = f"{option}: cannot read the file (not UTF-8 text?)"
        raise InputError(msg) from None
    _parse_object(text, option)
    return text


def _read_capped(stream: IO[bytes], where: str) -> bytes:
    """All of `stream`, reading at most `MAX_INPUT_BYTES` + 1 bytes, or `InputError`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(_READ_CHUNK, MAX_INPUT_BYTES + 1 - size)):
        size += len(chunk)
        if size > MAX_INPUT_BYTES:
            raise _too_large(where)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(where: str) -> InputError:
    return InputError(f"{where}: larger than {MAX_INPUT_BYTES // 2**20} MiB")


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        msg = f"{where}: not valid JSON (line {line})"
        raise InputError(msg) from None
    except RecursionError:
        msg = f"{where}: JSON nested too deeply"
        raise InputError(msg) from None


def _parse_object(text: str, where: str) -> dict[str, Any]:
    return _json_object(_parse_json(text, where), where)


def _json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{where}: must be a JSON object, not {type(value).__name__}"
        raise InputError(msg)
    return value


def check_catalog(catalog: dict[str, Any]) -> None:
    """Refuse, with one line naming `--catalog`, a catalog the SDK cannot read."""
    problem = None
    entries = catalog.get("streams")
    if not isinstance(entries, list):
        problem = "streams must be a list"
    else:
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(
                entry.get("tap_stream_id"), str
            ):
                problem = f"streams[{position}] needs a tap_stream_id string"
            elif not isinstance(entry.get("schema"), dict) or not isinstance(
                entry["schema"].get("properties", {}), dict
            ):
                problem = f"streams[{position}].schema must be a JSON Schema object"
            elif not isinstance(entry.get("metadata", []), list) or not all(
                isinstance(item, dict)
                and isinstance(item.get("breadcrumb"), list)
                and isinstance(item.get("metadata"), dict)
                for item in entry.get("metadata", [])
            ):
                problem = (
                    f"streams[{position}].metadata must be a list of "
                    "{breadcrumb, metadata} objects"
                )
            if problem:
                break
    if problem is None:
        try:
            Catalog.from_dict(catalog)
        except Exception as exc:  # noqa: BLE001 - any failure is the catalog's
            problem = one_line(f"{type(exc).__name__}: {exc}", 200)
    if problem is not None:
        msg = f"--catalog: not a Singer catalog the tap can use: {problem}"
        raise InputError(msg)


def _no_constant(name: str) -> Any:
    """JSON has no NaN or Infinity; Python's parser accepts them unless told."""
    msg = f"{name} is not a JSON value"
    raise ValueError(msg)


class ReadOnce(io.TextIOBase):
    """A text handed to the SDK, which reads it once: then it is let go.

    The SDK keeps the handle it was given until the run ends; a `StringIO` of a
    large state would hold the whole text (four bytes a character) for as long.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text: str | None = text

    def readable(self) -> bool:
        """A source of text, as the SDK expects."""
        return True

    def read(self, size: int | None = -1) -> str:
        """The text not read yet (at most `size` characters), then nothing."""
        text = self._text or ""
        if size is None or size < 0 or size >= len(text):
            self._text = None
            return text
        self._text = text[size:]
        return text[:size]
