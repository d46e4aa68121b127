"""API tokens: shown once, stored hashed, scoped, expiring, revocable, bound to a live user."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from controlcenter.model import Role, User
from controlcenter.permissions import Permission, PermissionDeniedError, TokenScope, allows, require
from controlcenter.security.tokens import TokenRejectedError, TokenStore
from controlcenter.security.users import UnknownUserError, UserStore


class Wall:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    store = UserStore(tmp_path / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    store.add_user("olga", "operator passphrase 1", Role.OPERATOR)
    store.add_user("ada", "admin passphrase 123", Role.ADMIN)
    return store


def test_a_token_is_shown_once_and_only_its_hash_is_stored(
    tmp_path: Path, users: UserStore
) -> None:
    wall = Wall()
    store = TokenStore(tmp_path / "tokens.sqlite", users, wall_time=wall)
    issued = store.create("olga", TokenScope.COMMAND, 3600, created_by="ada", label="scada-gw")
    secret = issued.secret_text.split("_", 2)[2]
    assert issued.secret_text.startswith("cc_") and len(secret) >= 40
    assert secret.encode() not in (tmp_path / "tokens.sqlite").read_bytes()
    assert stat.S_IMODE((tmp_path / "tokens.sqlite").stat().st_mode) == 0o600
    user, token = store.resolve(issued.secret_text)
    assert user.name == "olga" and token.scope is TokenScope.COMMAND
    assert [t.label for t in store.tokens("olga")] == ["scada-gw"]
    store.close()


@pytest.mark.parametrize(
    "forged",
    ["", "Bearer x", "cc_", "cc_00_", "cc_nope_secret", "cc_" + "0" * 16 + "_" + "a" * 43],
)
def test_malformed_or_unknown_tokens_are_refused(
    tmp_path: Path, users: UserStore, forged: str
) -> None:
    store = TokenStore(tmp_path / "tokens.sqlite", users)
    with pytest.raises(TokenRejectedError):
        store.resolve(forged)


def test_a_guessed_secret_for_a_real_id_is_refused(tmp_path: Path, users: UserStore) -> None:
    store = TokenStore(tmp_path / "tokens.sqlite", users)
    issued = store.create("olga", TokenScope.READ, 60, created_by="ada")
    token_id = issued.token.token_id
    with pytest.raises(TokenRejectedError, match="unknown token"):
        store.resolve(f"cc_{token_id}_{'x' * 43}")


def test_expired_revoked_and_orphaned_tokens_are_refused(tmp_path: Path, users: UserStore) -> None:
    wall = Wall()
    store = TokenStore(tmp_path / "tokens.sqlite", users, wall_time=wall)
    short = store.create("olga", TokenScope.READ, 60, created_by="ada")
    wall.now += 60
    with pytest.raises(TokenRejectedError, match="expired"):
        store.resolve(short.secret_text)
    revoked = store.create("olga", TokenScope.READ, 3600, created_by="ada")
    assert store.revoke(revoked.token.token_id)
    assert not store.revoke(revoked.token.token_id)
    with pytest.raises(TokenRejectedError, match="revoked"):
        store.resolve(revoked.secret_text)
    disabled = store.create("olga", TokenScope.READ, 3600, created_by="ada")
    users.set_disabled("olga", True)
    with pytest.raises(TokenRejectedError, match="disabled"):
        store.resolve(disabled.secret_text)
    users.set_disabled("olga", False)
    assert store.resolve(disabled.secret_text)[0].name == "olga"
    orphan = store.create("olga", TokenScope.READ, 3600, created_by="ada")
    users.remove_user("olga")
    with pytest.raises(TokenRejectedError, match="no longer exists"):
        store.resolve(orphan.secret_text)
    with pytest.raises(UnknownUserError):
        store.create("nobody", TokenScope.READ, 60, created_by="ada")
    with pytest.raises(ValueError, match="positive"):
        store.create("ada", TokenScope.READ, 0, created_by="ada")


def test_a_scope_narrows_the_role_and_never_widens_it() -> None:
    olga, ada = User("olga", Role.OPERATOR), User("ada", Role.ADMIN)
    assert allows(olga, Permission.COMMAND, TokenScope.COMMAND)
    assert not allows(olga, Permission.COMMAND, TokenScope.READ)
    assert not allows(olga, Permission.ADMINISTER_USERS, TokenScope.ADMINISTER)
    assert allows(ada, Permission.ADMINISTER_USERS, TokenScope.ADMINISTER)
    assert not allows(ada, Permission.APPLY_RULES, TokenScope.COMMAND)
    with pytest.raises(PermissionDeniedError, match="outside the token's scope read"):
        require(olga, Permission.COMMAND, TokenScope.READ)
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        require(olga, Permission.ADMINISTER_USERS, TokenScope.ADMINISTER)
