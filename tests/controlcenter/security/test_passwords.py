"""The password policy, and the command line that sets passwords through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlcenter.cli.main import app
from controlcenter.security.passwords import WeakPasswordError, check_new_password


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("12345678", "at least 12"),
        ("short-one", "at least 12"),
        ("123456789012", "too easy to guess"),
        ("password1234", "too easy to guess"),
        ("Password1234!", "too easy to guess"),
        ("passwordpassword", "too easy to guess"),
        ("qwertyuiop12", "too easy to guess"),
        ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ("controlcenter1", "too easy to guess"),
        ("Olga2026-01-01", "user name"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: str) -> None:
    with pytest.raises(WeakPasswordError, match=reason):
        check_new_password(password, user_name="olga")


@pytest.mark.parametrize(
    "password",
    ["correct horse battery", "pump-station-7 nightshift", "Zr8_kq2LmW0xYt", "y" * 30 + "Kq8#zW"],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    check_new_password(password, user_name="olga")


def test_user_add_refuses_a_weak_password_and_stores_nothing(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    runner = CliRunner()

    refused = runner.invoke(
        app, ["user", "add", "olga", "--users", str(users), "--password", "12345678"]
    )
    assert refused.exit_code == 1
    assert "at least 12" in refused.output
    assert not users.exists()

    refused = runner.invoke(
        app, ["user", "add", "olga", "--users", str(users), "--password", "password1234"]
    )
    assert refused.exit_code == 1
    assert "too easy to guess" in refused.output

    accepted = runner.invoke(
        app,
        ["user", "add", "olga", "--users", str(users), "--password", "correct horse battery"],
    )
    assert accepted.exit_code == 0, accepted.output
    assert [u["name"] for u in json.loads(users.read_text())["users"]] == ["olga"]
