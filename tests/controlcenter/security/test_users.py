"""The user store: Argon2id hashes in a 0600 JSON file, uniform refusals, roles, rehashing."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from controlcenter.model import Role, User
from controlcenter.ports import AuthenticationError, Authenticator
from controlcenter.security.users import (
    InvalidAreaNameError,
    InvalidPasswordError,
    InvalidUserNameError,
    UnknownUserError,
    UserExistsError,
    UserStore,
    UserStoreError,
)

PASSWORD = "correct horse battery"
# Fast parameters for tests; the store's default is the RFC 9106 low-memory profile.
FAST = PasswordHasher.from_parameters(CHEAPEST)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "users.json"


@pytest.fixture
def store(path: Path) -> UserStore:
    return UserStore(path, hasher=FAST)


def test_added_user_authenticates_with_role(store: UserStore) -> None:
    added = store.add_user("olga", PASSWORD, Role.OPERATOR)

    assert added == User("olga", Role.OPERATOR)
    assert store.authenticate("olga", PASSWORD) == User("olga", Role.OPERATOR)
    assert store.get_user("olga") == User("olga", Role.OPERATOR)


def test_wrong_password_and_unknown_user_get_the_same_error(store: UserStore) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)

    with pytest.raises(AuthenticationError) as wrong:
        store.authenticate("olga", "wrong password")
    with pytest.raises(AuthenticationError) as unknown:
        store.authenticate("mallory", PASSWORD)

    assert str(wrong.value) == str(unknown.value) == "invalid user name or password"
    assert type(wrong.value.__cause__) is type(unknown.value.__cause__)


class SpyHasher(PasswordHasher):
    """Records which hashes were verified."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1, hash_len=4, salt_len=8)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(str(hash))
        return super().verify(hash, password)


def test_unknown_user_is_still_verified_against_a_hash(path: Path) -> None:
    # Timing: a refusal for an unknown user costs one Argon2 verification, like a wrong password.
    hasher = SpyHasher()
    authenticator: Authenticator = UserStore(path, hasher=hasher)

    with pytest.raises(AuthenticationError):
        authenticator.authenticate("nobody", PASSWORD)

    assert len(hasher.verified) == 1
    assert hasher.verified[0].startswith("$argon2id$")


def test_get_user_of_unknown_name_is_a_key_error(store: UserStore) -> None:
    with pytest.raises(KeyError):
        store.get_user("nobody")
    with pytest.raises(UnknownUserError, match="unknown user 'nobody'"):
        store.get_user("nobody")


def test_roles_can_be_listed_and_changed(store: UserStore) -> None:
    store.add_user("vera", PASSWORD, Role.VIEWER)
    store.add_user("ada", PASSWORD, Role.ADMIN)

    assert store.users() == [User("ada", Role.ADMIN), User("vera", Role.VIEWER)]
    assert store.set_role("vera", Role.ENGINEER) == User("vera", Role.ENGINEER)
    assert store.authenticate("vera", PASSWORD).role is Role.ENGINEER


def test_users_survive_a_restart(store: UserStore, path: Path) -> None:
    store.add_user("olga", PASSWORD, Role.MAINTENANCE)

    reopened = UserStore(path, hasher=FAST)

    assert reopened.authenticate("olga", PASSWORD) == User("olga", Role.MAINTENANCE)


def test_changes_by_another_process_are_seen(store: UserStore, path: Path) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    other = UserStore(path, hasher=FAST)  # e.g. the command line, while the center runs

    other.add_user("ivan", PASSWORD, Role.VIEWER)
    other.remove_user("olga")

    assert store.users() == [User("ivan", Role.VIEWER)]


def test_password_change_and_removal(store: UserStore) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)

    store.set_password("olga", "a new passphrase")
    with pytest.raises(AuthenticationError):
        store.authenticate("olga", PASSWORD)
    assert store.authenticate("olga", "a new passphrase").name == "olga"

    store.remove_user("olga")
    with pytest.raises(AuthenticationError):
        store.authenticate("olga", "a new passphrase")
    with pytest.raises(UnknownUserError):
        store.remove_user("olga")
    with pytest.raises(UnknownUserError):
        store.set_password("olga", PASSWORD)


def test_passwords_breaking_the_policy_are_refused(store: UserStore) -> None:
    for weak, reason in (
        ("12345678", "at least 12"),
        ("123456789012", "too easy to guess"),
        ("Password1234!", "too easy to guess"),
        ("olga-the-operator-7", "user name"),
    ):
        with pytest.raises(InvalidPasswordError, match=reason):
            store.add_user("olga", weak, Role.OPERATOR)
    assert store.users() == []
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    with pytest.raises(InvalidPasswordError):
        store.set_password("olga", "short")
    with pytest.raises(InvalidPasswordError, match="at most"):
        store.set_password("olga", "x" * 1025)
    assert store.authenticate("olga", PASSWORD).name == "olga"


def test_password_or_role_change_renews_the_session_epoch(store: UserStore, path: Path) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    first = store.session_epoch("olga")

    store.set_role("olga", Role.OPERATOR)  # unchanged: sessions stay
    assert store.session_epoch("olga") == first
    store.set_role("olga", Role.ENGINEER)
    second = store.session_epoch("olga")
    store.set_password("olga", "a new passphrase")
    third = store.session_epoch("olga")

    assert len({first, second, third}) == 3
    assert UserStore(path, hasher=FAST).session_epoch("olga") == third


def test_files_without_session_epochs_still_load(path: Path) -> None:
    store = UserStore(path, hasher=FAST)
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    document = json.loads(path.read_text(encoding="utf-8"))
    del document["users"][0]["session_epoch"]
    path.write_text(json.dumps(document), encoding="utf-8")

    reopened = UserStore(path, hasher=FAST)

    assert reopened.authenticate("olga", PASSWORD).name == "olga"
    assert reopened.session_epoch("olga") == UserStore(path, hasher=FAST).session_epoch("olga")


def test_duplicate_and_malformed_names_are_refused(store: UserStore) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)

    with pytest.raises(UserExistsError):
        store.add_user("olga", PASSWORD, Role.ADMIN)
    for name in ("", " olga", "olga smith", "-dash", "x" * 65, "ölga"):
        with pytest.raises(InvalidUserNameError):
            store.add_user(name, PASSWORD, Role.OPERATOR)
    assert store.get_user("olga").role is Role.OPERATOR


def test_file_holds_argon2id_hashes_only_and_is_private(store: UserStore, path: Path) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)

    text = path.read_text(encoding="utf-8")
    document = json.loads(text)
    assert PASSWORD not in text
    assert document["users"][0]["name"] == "olga"
    assert document["users"][0]["role"] == "operator"
    assert document["users"][0]["password_hash"].startswith("$argon2id$")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["users.json"]  # no temporary file left


def test_default_hasher_uses_argon2id(path: Path) -> None:
    store = UserStore(path)
    store.add_user("olga", PASSWORD, Role.OPERATOR)

    stored = json.loads(path.read_text(encoding="utf-8"))["users"][0]["password_hash"]
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_hash_is_renewed_when_parameters_change(store: UserStore, path: Path) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    old_hash = json.loads(path.read_text(encoding="utf-8"))["users"][0]["password_hash"]
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, hash_len=16)

    assert UserStore(path, hasher=stronger).authenticate("olga", PASSWORD).name == "olga"

    new_hash = json.loads(path.read_text(encoding="utf-8"))["users"][0]["password_hash"]
    assert new_hash != old_hash
    assert "m=16,t=2,p=1" in new_hash
    assert UserStore(path, hasher=FAST).authenticate("olga", PASSWORD).name == "olga"


def test_corrupt_file_is_refused_loudly(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserStoreError, match="cannot read"):
        UserStore(path, hasher=FAST)

    path.write_text(json.dumps({"version": 1, "users": [{"name": "x"}]}), encoding="utf-8")
    with pytest.raises(UserStoreError, match="entry 0 is invalid"):
        UserStore(path, hasher=FAST)

    entry = {"name": "x", "role": "superuser", "password_hash": "h"}
    path.write_text(json.dumps({"version": 1, "users": [entry]}), encoding="utf-8")
    with pytest.raises(UserStoreError, match="entry 0 is invalid"):
        UserStore(path, hasher=FAST)


def test_concurrent_additions_all_land(store: UserStore, path: Path) -> None:
    names = [f"user{i}" for i in range(16)]
    threads = [
        threading.Thread(target=store.add_user, args=(name, PASSWORD, Role.VIEWER))
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [u.name for u in UserStore(path, hasher=FAST).users()] == sorted(names)


def test_areas_default_to_every_area_and_round_trip(store: UserStore, path: Path) -> None:
    assert store.add_user("olga", PASSWORD, Role.OPERATOR).areas == ()
    wanda = store.add_user("wanda", PASSWORD, Role.OPERATOR, ["water", "heating", "water"])
    assert wanda == User("wanda", Role.OPERATOR, ("heating", "water"))
    reopened = UserStore(path, hasher=FAST)
    assert reopened.get_user("wanda").areas == ("heating", "water")
    assert reopened.authenticate("wanda", PASSWORD).areas == ("heating", "water")
    assert reopened.get_user("olga").areas == ()


def test_set_areas_ends_sessions_only_when_they_change(store: UserStore) -> None:
    store.add_user("wanda", PASSWORD, Role.OPERATOR, ["water"])
    epoch = store.session_epoch("wanda")
    assert store.set_areas("wanda", ["water"]).areas == ("water",)
    assert store.session_epoch("wanda") == epoch
    assert store.set_areas("wanda", []).areas == ()
    assert store.session_epoch("wanda") != epoch
    # Role and password changes keep the areas.
    store.set_areas("wanda", ["lighting"])
    store.set_role("wanda", Role.ENGINEER)
    store.set_password("wanda", "another horse battery")
    assert store.get_user("wanda") == User("wanda", Role.ENGINEER, ("lighting",))
    with pytest.raises(UnknownUserError):
        store.set_areas("nobody", ["water"])


@pytest.mark.parametrize("areas", [[""], ["water*"], ["a b"], ["x" * 65], "water"])
def test_bad_area_names_are_refused(store: UserStore, areas: list[str]) -> None:
    with pytest.raises(InvalidAreaNameError):
        store.add_user("wanda", PASSWORD, Role.OPERATOR, areas)
    assert store.users() == []


def test_a_user_file_without_areas_still_loads(path: Path, store: UserStore) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    document = json.loads(path.read_text())
    for entry in document["users"]:
        del entry["areas"]
    path.write_text(json.dumps(document))
    assert UserStore(path, hasher=FAST).get_user("olga") == User("olga", Role.OPERATOR)


def test_a_user_file_with_damaged_areas_is_refused(path: Path, store: UserStore) -> None:
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    document = json.loads(path.read_text())
    document["users"][0]["areas"] = "water"
    path.write_text(json.dumps(document))
    with pytest.raises(UserStoreError, match="user entry 0 is invalid"):
        UserStore(path, hasher=FAST)
    document["users"][0]["areas"] = ["../etc"]
    path.write_text(json.dumps(document))
    with pytest.raises(UserStoreError, match="user entry 0 is invalid"):
        UserStore(path, hasher=FAST)
