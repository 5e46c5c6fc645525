"""The built wheel carries its schemas and works from any working directory."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile

import pytest

from tests.conftest import REPO

# A wheel built and installed into a fresh venv (pip reaches the package index):
# `make test` runs it, `make check` does not.
pytestmark = pytest.mark.e2e


def test_wheel_in_a_fresh_venv_discovers_from_another_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = dist.glob("tap_metronome-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for stream in ("customers", "plans", "plan_charges"):
        assert f"tap_metronome/schemas/{stream}.json" in names

    env_dir = tmp_path / "fresh-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
    )
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    config = elsewhere / "config.json"
    config.write_text(json.dumps({"auth_token": "x", "start_date": "2024-01-01"}))
    tap = str(env_dir / "bin" / "tap-metronome")
    proc = subprocess.run(
        [tap, "--config", str(config), "--discover"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    catalog = json.loads(proc.stdout)
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert {"customers", "plans", "plan_charges"} <= set(streams)
    assert streams["plan_charges"]["key_properties"] == ["plan_id", "id"]
    assert "prices" in streams["plan_charges"]["schema"]["properties"]

    about = subprocess.run(
        [tap, "--about", "--format=json"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    settings = json.loads(about.stdout)["settings"]["properties"]
    assert settings["auth_token"]["secret"] is True

    # The Airbyte source ships in the same wheel, without airbyte-cdk or pydantic
    # (pydantic v2 writes Decimal as a string; airbyte-cdk pins pyrate-limiter).
    source = subprocess.run(
        [
            str(env_dir / "bin" / "source-metronome"),
            "discover",
            "--config",
            str(config),
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    (message,) = [json.loads(line) for line in source.stdout.splitlines()]
    offered = {s["name"] for s in message["catalog"]["streams"]}
    assert offered == set(streams)
    installed = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    packages = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert not packages & {"pydantic", "airbyte-cdk", "airbyte-protocol-models"}
