"""The user administration service on a real user file and a real sessions file: permissions,
reasons, self-lockout, journal entries; a disabled user cannot log in and their sessions end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from controlcenter.model import Event, EventKind, Role, User
from controlcenter.permissions import PermissionDeniedError
from controlcenter.ports import AuthenticationError, UserAdministrationError
from controlcenter.security.administration import UserAdministrationService
from controlcenter.security.sessions import SessionStore
from controlcenter.security.users import UserStore

PASSWORD = "a long test passphrase 1"
NEW_PASSWORD = "another quiet river stone 7"
ADMIN = User("ada", Role.ADMIN)
ENGINEER = User("erik", Role.ENGINEER)


class Journal:
    """EventJournal into a list."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, event: Event) -> None:
        """Append the event."""
        self.events.append(event)


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    store = UserStore(tmp_path / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    store.add_user(ADMIN.name, PASSWORD, Role.ADMIN)
    store.add_user(ENGINEER.name, PASSWORD, Role.ENGINEER)
    store.add_user("olga", PASSWORD, Role.OPERATOR)
    return store


@pytest.fixture
def sessions(tmp_path: Path, users: UserStore) -> Iterator[SessionStore]:
    store = SessionStore(tmp_path / "sessions.sqlite", users)
    yield store
    store.close()


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def admin(users: UserStore, journal: Journal) -> UserAdministrationService:
    return UserAdministrationService(users, journal)


def test_an_admin_adds_a_user_who_can_log_in_and_it_is_journaled(
    admin: UserAdministrationService, users: UserStore, journal: Journal
) -> None:
    account = admin.add_user(ADMIN, "nina", Role.OPERATOR, ["north"], PASSWORD, "new shift")
    assert account.user == User("nina", Role.OPERATOR, ("north",)) and not account.disabled
    assert users.authenticate("nina", PASSWORD).role is Role.OPERATOR
    (event,) = journal.events
    assert event.kind is EventKind.AUDIT and event.user == "ada"
    assert "added user nina (operator; north)" in event.message and "new shift" in event.message


def test_a_weak_password_a_bad_name_and_a_duplicate_are_refused(
    admin: UserAdministrationService, users: UserStore, journal: Journal
) -> None:
    with pytest.raises(UserAdministrationError, match="at least 12"):
        admin.add_user(ADMIN, "nina", Role.VIEWER, [], "short", "why")
    with pytest.raises(UserAdministrationError, match="user name"):
        admin.add_user(ADMIN, "<script>", Role.VIEWER, [], PASSWORD, "why")
    with pytest.raises(UserAdministrationError, match="already exists"):
        admin.add_user(ADMIN, "olga", Role.VIEWER, [], PASSWORD, "why")
    assert "nina" not in {a.user.name for a in users.accounts()}
    assert all(e.message.startswith("refused: ada") for e in journal.events)
    assert len(journal.events) == 3


def test_a_reason_is_required(admin: UserAdministrationService, journal: Journal) -> None:
    with pytest.raises(UserAdministrationError, match="reason"):
        admin.disable_user(ADMIN, "olga", "   ")
    assert journal.events[-1].severity > 0


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.MAINTENANCE, Role.ENGINEER])
def test_lower_roles_are_refused_every_action_and_the_refusal_is_journaled(
    admin: UserAdministrationService, users: UserStore, journal: Journal, role: Role
) -> None:
    actor = User("olga", role)
    calls: list[Callable[[], object]] = [
        lambda: admin.accounts(actor),
        lambda: admin.add_user(actor, "nina", Role.ADMIN, [], PASSWORD, "why"),
        lambda: admin.disable_user(actor, "ada", "why"),
        lambda: admin.enable_user(actor, "ada", "why"),
        lambda: admin.set_role(actor, "olga", Role.ADMIN, "why"),
        lambda: admin.reset_password(actor, "ada", NEW_PASSWORD, "why"),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError):
            call()
    assert len(journal.events) == len(calls)
    assert all("administer_users" in e.message for e in journal.events)
    assert users.account("ada").user.role is Role.ADMIN and not users.account("ada").disabled


def test_an_admin_cannot_disable_or_demote_themselves(
    admin: UserAdministrationService, users: UserStore
) -> None:
    with pytest.raises(UserAdministrationError, match="yourself"):
        admin.disable_user(ADMIN, "ada", "tidy up")
    with pytest.raises(UserAdministrationError, match="own administrator role"):
        admin.set_role(ADMIN, "ada", Role.ENGINEER, "tidy up")
    assert users.account("ada") == users.accounts()[0]
    assert not users.account("ada").disabled and users.account("ada").user.role is Role.ADMIN


def test_a_disabled_user_cannot_log_in_and_their_sessions_end(
    admin: UserAdministrationService,
    users: UserStore,
    sessions: SessionStore,
    journal: Journal,
) -> None:
    olga = users.authenticate("olga", PASSWORD)
    token = sessions.open(olga, "127.0.0.1")
    assert sessions.resolve(token, activity=False) == olga

    account = admin.disable_user(ADMIN, "olga", "left the company")
    assert account.disabled
    assert sessions.resolve(token, activity=False) is None
    with pytest.raises(AuthenticationError):
        users.authenticate("olga", PASSWORD)
    # Even a session opened by hand for a disabled user is not valid.
    assert sessions.resolve(sessions.open(olga, "127.0.0.1"), activity=False) is None
    # Disabled survives other changes and a reload of the file from disk.
    admin.set_role(ADMIN, "olga", Role.VIEWER, "demoted while away")
    assert UserStore(users.path).account("olga").disabled

    admin.enable_user(ADMIN, "olga", "back from leave")
    assert users.authenticate("olga", PASSWORD).role is Role.VIEWER
    messages = [e.message for e in journal.events]
    assert messages == [
        "ada disabled user olga (operator): left the company",
        "ada changed the role of olga from operator to viewer: demoted while away",
        "ada enabled user olga (viewer): back from leave",
    ]


def test_reset_password_ends_sessions_and_checks_the_policy(
    admin: UserAdministrationService, users: UserStore, sessions: SessionStore
) -> None:
    token = sessions.open(users.get_user("erik"), "127.0.0.1")
    with pytest.raises(UserAdministrationError, match="user name"):
        admin.reset_password(ADMIN, "erik", "erik-erik-erik-erik", "forgotten")
    assert sessions.resolve(token, activity=False) is not None
    admin.reset_password(ADMIN, "erik", NEW_PASSWORD, "forgotten")
    assert sessions.resolve(token, activity=False) is None
    assert users.authenticate("erik", NEW_PASSWORD).name == "erik"


def test_unknown_users_are_refused(admin: UserAdministrationService) -> None:
    calls: list[Callable[[], object]] = [
        lambda: admin.disable_user(ADMIN, "nobody", "why"),
        lambda: admin.enable_user(ADMIN, "nobody", "why"),
        lambda: admin.set_role(ADMIN, "nobody", Role.VIEWER, "why"),
        lambda: admin.reset_password(ADMIN, "nobody", NEW_PASSWORD, "why"),
    ]
    for call in calls:
        with pytest.raises(UserAdministrationError, match="unknown user"):
            call()


def test_a_file_with_a_bad_disabled_flag_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(
        '{"version": 1, "users": [{"name": "a", "role": "viewer", "password_hash": "x",'
        ' "disabled": "yes"}]}'
    )
    with pytest.raises(Exception, match="disabled"):
        UserStore(path)
