"""Errors a human must fix end the run fast with one clear line; nothing leaks."""

from __future__ import annotations

from tests.conftest import run_tap, tap_config

SECRET = "sk-VERY-RECOGNISABLE-SECRET-4242"


def test_wrong_token_fails_fast_naming_auth_token(fake_api, tmp_path):
    server = fake_api()
    run = run_tap(tap_config(server, auth_token=SECRET), tmp_path)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "auth_token" in line]
    assert errors, run.stderr
    assert "HTTP 401" in errors[-1]
    # Fast by construction: one request, no retry, no backoff wait.
    assert server.app.count() == 1, "a 401 is not retried"
    assert "Retrying" not in run.stderr
    assert SECRET not in run.stdout + run.stderr
