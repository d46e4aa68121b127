"""The administration of users: the one service every face (HMI, command line, API) calls to
add, disable, enable, re-role users and reset their passwords.

Every call checks the acting user's permission (``controlcenter.permissions``) and requires a
reason; every change, and every refused attempt, is journaled as an AUDIT event naming who did
what to whom, and why. An administrator cannot disable or demote themselves: a site whose last
administrator locked themselves out could not be administered at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from controlcenter.model import Event, EventKind, Role, User, utc_now
from controlcenter.permissions import Permission, PermissionDeniedError, require
from controlcenter.ports import EventJournal, UserAccount, UserAdministrationError
from controlcenter.security.users import UserStore, UserStoreError

_T = TypeVar("_T")

JOURNAL_SOURCE = "users"
"""The source of the administration's journal events."""
REFUSAL_SEVERITY = 500
"""Severity of a journaled refusal (a change people should look at)."""
MAX_REASON_LENGTH = 500
"""Longest reason kept: the journal's message has its own limit."""


class UserAdministrationService:
    """``ports.UserAdministration`` over the user store; safe to call from any thread."""

    def __init__(
        self,
        users: UserStore,
        journal: EventJournal,
        *,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._users = users
        self._journal = journal
        self._now = now

    def accounts(self, actor: User) -> list[UserAccount]:
        """Every user, sorted by name (administrators only)."""
        self._permitted(actor, "list the users")
        return self._users.accounts()

    def add_user(
        self,
        actor: User,
        name: str,
        role: Role,
        areas: Sequence[str],
        password: str,
        reason: str,
    ) -> UserAccount:
        """Create a user with an initial password checked by the password policy."""
        why = self._checked(actor, f"add user {name} ({role.value})", reason)
        try:
            user = self._users.add_user(name, password, role, areas)
        except UserStoreError as err:
            raise self._refused(actor, f"add user {name}", str(err)) from err
        areas_text = ", ".join(user.areas) if user.areas else "every area"
        self._record(actor, f"added user {name} ({role.value}; {areas_text})", why)
        return UserAccount(user)

    def disable_user(self, actor: User, name: str, reason: str) -> UserAccount:
        """Disable a user: no more logins, and every open session ends."""
        why = self._checked(actor, f"disable user {name}", reason)
        if name == actor.name:
            raise self._refused(actor, f"disable user {name}", "you cannot disable yourself")
        account = self._change(actor, f"disable user {name}", lambda: self._set(name, True))
        self._record(actor, f"disabled user {name} ({account.user.role.value})", why)
        return account

    def enable_user(self, actor: User, name: str, reason: str) -> UserAccount:
        """Let a disabled user log in again."""
        why = self._checked(actor, f"enable user {name}", reason)
        account = self._change(actor, f"enable user {name}", lambda: self._set(name, False))
        self._record(actor, f"enabled user {name} ({account.user.role.value})", why)
        return account

    def set_role(self, actor: User, name: str, role: Role, reason: str) -> UserAccount:
        """Change a user's role; their sessions end."""
        action = f"change the role of {name} to {role.value}"
        why = self._checked(actor, action, reason)
        if name == actor.name and not role.includes(Role.ADMIN):
            raise self._refused(actor, action, "you cannot remove your own administrator role")
        before = self._change(actor, action, lambda: self._users.account(name))
        after = self._change(actor, action, lambda: self._account(self._users.set_role(name, role)))
        self._record(
            actor,
            f"changed the role of {name} from {before.user.role.value} to {role.value}",
            why,
        )
        return after

    def reset_password(self, actor: User, name: str, password: str, reason: str) -> None:
        """Give a user a new password checked by the password policy; their sessions end."""
        action = f"reset the password of {name}"
        why = self._checked(actor, action, reason)
        self._change(actor, action, lambda: self._users.set_password(name, password))
        self._record(actor, f"reset the password of {name}", why)

    # --- steps ----------------------------------------------------------------------------

    def _permitted(self, actor: User, action: str) -> None:
        try:
            require(actor, Permission.ADMINISTER_USERS)
        except PermissionDeniedError as err:
            self._journal_refusal(actor, action, str(err))
            raise

    def _checked(self, actor: User, action: str, reason: str) -> str:
        """The reason, trimmed, once the actor may act and gave one."""
        self._permitted(actor, action)
        why = " ".join(reason.split())[:MAX_REASON_LENGTH]
        if not why:
            raise self._refused(actor, action, "a reason is required")
        return why

    def _change(self, actor: User, action: str, change: Callable[[], _T]) -> _T:
        """Run ``change``; a store refusal becomes a journaled UserAdministrationError."""
        try:
            return change()
        except UserStoreError as err:
            raise self._refused(actor, action, str(err)) from err

    def _set(self, name: str, disabled: bool) -> UserAccount:
        return self._users.set_disabled(name, disabled)

    def _account(self, user: User) -> UserAccount:
        return self._users.account(user.name)

    def _refused(self, actor: User, action: str, why: str) -> UserAdministrationError:
        self._journal_refusal(actor, action, why)
        return UserAdministrationError(why)

    def _journal_refusal(self, actor: User, action: str, why: str) -> None:
        message = f"refused: {actor.name} may not {action}: {why}"
        self._journal.record(
            Event(
                self._now(),
                EventKind.AUDIT,
                JOURNAL_SOURCE,
                message[:MAX_REASON_LENGTH],
                actor.name,
                REFUSAL_SEVERITY,
            )
        )

    def _record(self, actor: User, what: str, why: str) -> None:
        message = f"{actor.name} {what}: {why}"
        self._journal.record(
            Event(self._now(), EventKind.AUDIT, JOURNAL_SOURCE, message[:1000], actor.name)
        )
