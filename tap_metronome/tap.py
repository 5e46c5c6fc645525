"""The tap: its settings, its services (client, listings, metrics) and its streams."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
from collections.abc import Mapping
from pathlib import PurePath
from types import FrameType
from typing import IO, Any, cast

import click
from singer_sdk import Tap
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.exceptions import ConfigValidationError

from tap_metronome import setting_table, stopping, streams
from tap_metronome.client import MetronomeClient
from tap_metronome.errors import InputError, one_line
from tap_metronome.flattening import FlatteningMapper, flattening_config
from tap_metronome.inputs import (
    ReadOnce,
    check_catalog,
    config_values,
    json_object_text,
    read_json_object,
)
from tap_metronome.logs import protect_logs
from tap_metronome.output import BufferedRecordWriter, write_stdout
from tap_metronome.services import Services
from tap_metronome.settings import SETTING_NAMES, Settings, parse_settings
from tap_metronome.state import read_state
from tap_metronome.stopping import StopRequest

TOKEN_ENV_VAR = "TAP_METRONOME_AUTH_TOKEN"  # noqa: S105 - a variable name, not a secret


class TapMetronome(Tap):
    """Singer tap for Metronome billing data."""

    name = "tap-metronome"
    package_name = "tap-metronome"
    message_writer_class = BufferedRecordWriter
    #: The streams this tap offers; the state check asks each to clean its own.
    stream_types: tuple[type[streams.MetronomeStream], ...] = streams.STREAM_TYPES

    #: Generated from the settings table, `setting_table.SETTINGS`.
    config_jsonschema = setting_table.config_jsonschema()

    def __init__(
        self,
        *,
        config: Mapping[str, Any] | str | PurePath | list[Any] | None = None,
        state: Any = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        **kwargs: Any,
    ) -> None:
        values = config_values(config)
        if isinstance(state, str | PurePath):  # a path, as the SDK also accepts
            state = read_json_object(str(state), "state")
        if not values.get("auth_token") and os.environ.get(TOKEN_ENV_VAR):
            # The token may live only in the environment, without `--config ENV`.
            parse_env_config = True
        if parse_env_config:
            values |= self.environment_config()
        settings, errors, warnings = parse_settings(values)
        token = values.get("auth_token")
        if isinstance(token, str):
            protect_logs({token, token.strip()})
        if validate_config:
            if errors:
                raise ConfigValidationError("Config validation failed", errors=errors)
            state = read_state(state, self.logger, self.stream_types)
        self.settings: Settings | None = settings
        #: What the streams share (settings, client, listings, stop, metrics).
        self.services = Services(
            self,
            settings,
            logger=logging.getLogger(self.name),
            user_agent=f"tap-metronome/{self.plugin_version}",
        )
        if settings is not None:
            values = {
                key: value for key, value in values.items() if key not in SETTING_NAMES
            } | settings.normalized()
        super().__init__(
            config={key: value for key, value in values.items() if value is not None},
            state=state,
            parse_env_config=False,
            validate_config=validate_config,
            **kwargs,
        )
        for warning in warnings:
            self.logger.warning("%s", warning)

    def setup_mapper(self) -> None:
        """The SDK's stream maps and flattening, with records flattened safely.

        As `Tap.setup_mapper`, with `flattening.FlatteningMapper` for the SDK's
        `PluginMapper` (singer-sdk 0.54.9 crashes on a record key such as
        `description` when flattening), and flattened names kept within
        PostgreSQL's 63 characters unless `flattening_max_key_length` says.
        """
        self.mapper = FlatteningMapper(
            plugin_config=flattening_config(dict(self.config)), logger=self.logger
        )
        self.mapper.register_raw_streams_from_catalog(self.catalog)

    @classmethod
    def environment_config(cls) -> dict[str, Any]:
        """Settings from `TAP_METRONOME_*` variables (and a `.env` file).

        The tap's own settings are read as strings and parsed by `settings`, so
        that `TAP_METRONOME_MAX_REQUESTS_PER_SECOND=0.5` works and a bad value is
        named; the SDK's settings (stream maps, flattening, ...) are parsed by the
        SDK.
        """
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        sdk_settings = {
            "properties": {
                name: prop
                for name, prop in schema["properties"].items()
                if name not in SETTING_NAMES
            }
        }
        try:
            values = parse_environment_config(sdk_settings, cls._env_var_prefix)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the user's input
            msg = (
                f"environment: a {cls._env_var_prefix}* variable cannot be read: "
                f"{one_line(exc, 200)}"
            )
            raise InputError(msg) from None
        for name in SETTING_NAMES:
            variable = f"{cls._env_var_prefix}{name.upper()}"
            if variable in os.environ:
                values[name] = os.environ[variable]
        return values

    @classmethod
    def cb_config(
        cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]
    ) -> Any:
        """Read each `--config` file once, refusing an unreadable one with one line.

        A file may be a pipe (`/dev/stdin`, `<(...)`), which can be read only
        once: the SDK's callback is given only `ENV`, and the files' values,
        merged in order as the SDK would, are handed to it in what it returns.
        """
        config_input = super().cb_config(
            ctx, param, tuple(path for path in value if path == "ENV")
        )
        for path in value:
            if path != "ENV":
                config_input.config |= read_json_object(path, "--config")
        return config_input

    @classmethod
    def invoke(
        cls,
        *,
        state: IO[str] | None = None,
        catalog: IO[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Run the tap; `--state` and `--catalog` must be JSON objects."""
        if state is not None:
            state = cast("IO[str]", ReadOnce(json_object_text(state, "--state")))
        if catalog is not None:
            text = json_object_text(catalog, "--catalog")
            check_catalog(json.loads(text))
            catalog = cast("IO[str]", ReadOnce(text))
        stopping.inputs_read()
        super().invoke(state=state, catalog=catalog, **kwargs)

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """Discover; once it starts, a signal is noted, not raised (see `stopping`)."""
        if value:
            stopping.inputs_read()
        super().cb_discover(ctx, param, value)

    def run_discovery(self) -> str:
        """Write the catalog as the SDK would, through the one stdout path."""
        with contextlib.redirect_stdout(io.StringIO()) as text:
            catalog_text = super().run_discovery()
        write_stdout(text.getvalue().encode(), "the catalog")
        return catalog_text

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """Write `--about` as the SDK would, through the one stdout path."""
        with contextlib.redirect_stdout(io.StringIO()) as text:
            super().print_about(output_format)
        write_stdout(text.getvalue().encode(), "the --about output")

    @classmethod
    def cb_version(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """Write `--version` as the SDK would, through the one stdout path."""
        if value:
            cls.print_version(
                print_fn=lambda line: write_stdout(f"{line}\n".encode(), "the version")
            )
            ctx.exit()

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Ask the sync to stop at its next safe point (see `stopping`).

        Replaces the SDK's handler, which writes STATE and exits 0 from inside
        the handler, in the middle of whatever the main thread was writing.
        """
        stopping.notify(signum)

    @property
    def stop(self) -> StopRequest:
        """The run's stop request (signals)."""
        return self.services.stop

    @property
    def client(self) -> MetronomeClient:
        """The run's one HTTP client (`source-metronome check` uses it)."""
        return self.services.client

    def discover_streams(self) -> list[streams.MetronomeStream]:
        """One instance of every stream (the SDK syncs them in name order)."""
        return [stream_type(self, self.services) for stream_type in self.stream_types]
