"""``controlcenter token``: an administrator creates (printed once), lists and revokes API
tokens; others are refused and journaled."""

from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher
from typer.testing import CliRunner

from controlcenter.api.services import API_TOKENS_FILE
from controlcenter.cli.tokens import token_app
from controlcenter.model import EventKind, Role
from controlcenter.security.tokens import TokenRejectedError, TokenStore
from controlcenter.security.users import UserStore
from historian.store import SqlHistorian

PASSWORD = "correct horse battery staple 42"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_an_administrator_creates_lists_and_revokes_tokens(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    store = UserStore(users, hasher=FAST_HASHER)
    store.add_user("ada", PASSWORD, Role.ADMIN)
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    db = f"sqlite:///{tmp_path / 'center.db'}"
    common = ["--users", str(users), "--db", db]
    runner = CliRunner()
    env = {"CC_PASSWORD": PASSWORD}

    created = runner.invoke(
        token_app,
        ["create", "olga", "--as", "ada", "--scope", "command", "--days", "1", *common],
        env=env,
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[0]
    tokens = TokenStore(tmp_path / API_TOKENS_FILE, UserStore(users))
    user, token = tokens.resolve(secret)
    assert user.name == "olga" and token.scope.value == "command"

    listed = runner.invoke(token_app, ["list", "--as", "ada", *common], env=env)
    assert token.token_id in listed.stdout and "live" in listed.stdout
    assert secret not in listed.stdout

    refused = runner.invoke(token_app, ["list", "--as", "olga", *common], env=env)
    assert refused.exit_code == 1

    revoked = runner.invoke(token_app, ["revoke", token.token_id, "--as", "ada", *common], env=env)
    assert revoked.exit_code == 0
    try:
        tokens.resolve(secret)
    except TokenRejectedError as err:
        assert "revoked" in str(err)
    else:
        raise AssertionError("a revoked token still resolves")
    again = runner.invoke(token_app, ["revoke", token.token_id, "--as", "ada", *common], env=env)
    assert again.exit_code == 1

    with SqlHistorian(db) as historian:
        messages = [e.message for e in historian.read_events(kind=EventKind.AUDIT)]
    assert any("created API token" in m for m in messages)
    assert any("revoked API token" in m for m in messages)
    assert any("olga (operator) may not list API tokens" in m for m in messages)
