"""The user store: operators and engineers with their roles and Argon2id password hashes.

Users live in one JSON file, rewritten atomically (temporary file, fsync, rename) with mode 0600 so
that a crash never leaves half a file and other accounts on the machine cannot read the hashes.
Passwords are hashed with Argon2id (RFC 9106); a hash made with older parameters is replaced by a
fresh one at the next successful login. The store reloads the file when another process (the
command line) has changed it, so a running center sees added or removed users at once.

New passwords must pass the policy of ``controlcenter.security.passwords``. Each account carries
a session epoch, a random value renewed whenever its password or role changes: a session opened
under an older epoch is no longer valid (``controlcenter.security.sessions``).

An administrator may disable an account: a disabled user cannot log in, and disabling renews
the session epoch, so every open session ends at once; enabling lets them log in again.

A user may be bound to areas of the site (``areas`` in the site file): such a user may command
only the tags of those areas; a user without areas may command every area. Changing a user's
areas, like their role, ends their sessions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from controlcenter.model import Role, User
from controlcenter.ports import AuthenticationError, UserAccount
from controlcenter.security.files import PrivateFileError, ensure_private_directory
from controlcenter.security.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    WeakPasswordError,
    check_new_password,
)

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "InvalidAreaNameError",
    "InvalidPasswordError",
    "InvalidUserNameError",
    "UnknownUserError",
    "UserExistsError",
    "UserStore",
    "UserStoreError",
]

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_AREA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FILE_FORMAT_VERSION = 1


class UserStoreError(Exception):
    """The user store refused an operation or could not read or write its file."""


class InvalidUserNameError(UserStoreError, ValueError):
    """A user name is empty, too long or contains characters outside [A-Za-z0-9_.@-]."""


class InvalidAreaNameError(UserStoreError, ValueError):
    """An area name is empty, too long or contains characters outside [A-Za-z0-9_.-]."""


class InvalidPasswordError(UserStoreError, ValueError):
    """A new password breaks the password policy (too short, too long, or guessable)."""


class UserExistsError(UserStoreError):
    """A user with that name already exists."""


class UnknownUserError(UserStoreError, KeyError):
    """No user has that name."""

    def __str__(self) -> str:
        # KeyError.__str__ would print the repr of the argument; keep the plain message.
        return str(self.args[0]) if self.args else "unknown user"


@dataclass(frozen=True, slots=True)
class _Account:
    """One stored user: name, role, the Argon2id hash of the password, the session epoch and
    the areas the user may command (empty: every area)."""

    name: str
    role: Role
    password_hash: str
    session_epoch: str
    areas: tuple[str, ...] = ()
    disabled: bool = False

    @property
    def user(self) -> User:
        """The account as the rest of the center sees it."""
        return User(self.name, self.role, self.areas)

    def replaced(self, **changes: Any) -> _Account:
        """This account with ``changes`` (keeps every other field, disabled included)."""
        return replace(self, **changes)


# Identity of the file last loaded: (inode, size, modification time in ns).
_FileStamp = tuple[int, int, int]


class UserStore:
    """Users with roles and Argon2id password hashes in a JSON file; safe to use from any thread."""

    def __init__(self, path: Path, *, hasher: PasswordHasher | None = None) -> None:
        self._path = path
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._lock = threading.RLock()
        self._accounts: dict[str, _Account] = {}
        self._stamp: _FileStamp | None = None
        with self._lock:
            self._reload_if_changed()
        # Unknown users are verified against this hash so that a refused login takes as long
        # whether or not the user exists (no user enumeration by timing).
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))

    @property
    def path(self) -> Path:
        """The JSON file the users are kept in."""
        return self._path

    def authenticate(self, name: str, password: str) -> User:
        """Return the user for valid credentials; raise AuthenticationError otherwise."""
        with self._lock:
            self._reload_if_changed()
            account = self._accounts.get(name)
        if len(password) > MAX_PASSWORD_LENGTH:
            raise AuthenticationError("invalid user name or password")
        stored_hash = account.password_hash if account is not None else self._dummy_hash
        try:
            # Verified outside the lock: Argon2 is slow on purpose and must not serialise logins.
            self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError) as err:
            raise AuthenticationError("invalid user name or password") from err
        if account is None or account.disabled:
            # A disabled account is refused like a wrong password: a login form must not tell
            # an attacker which accounts exist.
            raise AuthenticationError("invalid user name or password")
        if self._hasher.check_needs_rehash(stored_hash):
            self._rehash(account, password)
        return account.user

    def session_epoch(self, name: str) -> str:
        """The user's session epoch (renewed at each password or role change); raises
        UnknownUserError for an unknown user."""
        with self._lock:
            self._reload_if_changed()
            account = self._account(name)
        if account.disabled:
            # Never the epoch any session was opened under: a disabled user has no session.
            return "disabled-" + _new_epoch()
        return account.session_epoch

    def get_user(self, name: str) -> User:
        """Return a known user; raise UnknownUserError (a KeyError) for an unknown one."""
        with self._lock:
            self._reload_if_changed()
            return self._account(name).user

    def users(self) -> list[User]:
        """Every user, sorted by name."""
        with self._lock:
            self._reload_if_changed()
            return [self._accounts[name].user for name in sorted(self._accounts)]

    def accounts(self) -> list[UserAccount]:
        """Every user with whether the account is disabled, sorted by name."""
        with self._lock:
            self._reload_if_changed()
            return [
                UserAccount(self._accounts[name].user, self._accounts[name].disabled)
                for name in sorted(self._accounts)
            ]

    def account(self, name: str) -> UserAccount:
        """One user with whether the account is disabled; raise UnknownUserError."""
        with self._lock:
            self._reload_if_changed()
            account = self._account(name)
            return UserAccount(account.user, account.disabled)

    def set_disabled(self, name: str, disabled: bool) -> UserAccount:
        """Disable (ending every session) or enable a user; raise UnknownUserError."""
        with self._lock:
            self._reload_if_changed()
            current = self._account(name)
            if current.disabled is disabled:
                return UserAccount(current.user, disabled)
            account = current.replaced(disabled=disabled, session_epoch=_new_epoch())
            self._save({**self._accounts, name: account})
            return UserAccount(account.user, disabled)

    def add_user(self, name: str, password: str, role: Role, areas: Sequence[str] = ()) -> User:
        """Create a user (bound to ``areas``; none: every area); raise UserExistsError,
        InvalidUserNameError, InvalidAreaNameError or InvalidPasswordError."""
        _check_user_name(name)
        bound = _checked_areas(areas)
        password_hash = self._hash_new_password(name, password)
        with self._lock:
            self._reload_if_changed()
            if name in self._accounts:
                raise UserExistsError(f"user {name!r} already exists")
            account = _Account(name, role, password_hash, _new_epoch(), bound)
            self._save({**self._accounts, name: account})
            return account.user

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password (ending their sessions); raise UnknownUserError or
        InvalidPasswordError."""
        password_hash = self._hash_new_password(name, password)
        with self._lock:
            self._reload_if_changed()
            account = self._account(name)
            updated = account.replaced(password_hash=password_hash, session_epoch=_new_epoch())
            self._save({**self._accounts, name: updated})

    def set_role(self, name: str, role: Role) -> User:
        """Change a user's role (ending their sessions if it differs); raise UnknownUserError
        for an unknown user."""
        with self._lock:
            self._reload_if_changed()
            current = self._account(name)
            if current.role is role:
                return current.user
            account = current.replaced(role=role, session_epoch=_new_epoch())
            self._save({**self._accounts, name: account})
            return account.user

    def set_areas(self, name: str, areas: Sequence[str]) -> User:
        """Bind a user to ``areas`` (none: every area), ending their sessions if that changes
        them; raise UnknownUserError or InvalidAreaNameError."""
        bound = _checked_areas(areas)
        with self._lock:
            self._reload_if_changed()
            current = self._account(name)
            if current.areas == bound:
                return current.user
            account = current.replaced(areas=bound, session_epoch=_new_epoch())
            self._save({**self._accounts, name: account})
            return account.user

    def remove_user(self, name: str) -> None:
        """Delete a user; raise UnknownUserError for an unknown one."""
        with self._lock:
            self._reload_if_changed()
            self._account(name)
            self._save({key: value for key, value in self._accounts.items() if key != name})

    def _account(self, name: str) -> _Account:
        try:
            return self._accounts[name]
        except KeyError as err:
            raise UnknownUserError(f"unknown user {name!r}") from err

    def _hash_new_password(self, name: str, password: str) -> str:
        try:
            check_new_password(password, user_name=name)
        except WeakPasswordError as err:
            raise InvalidPasswordError(str(err)) from err
        return self._hasher.hash(password)

    def _rehash(self, account: _Account, password: str) -> None:
        new_hash = self._hasher.hash(password)
        with self._lock:
            self._reload_if_changed()
            # Only if nobody changed the password or removed the user meanwhile.
            if self._accounts.get(account.name) == account:
                updated = account.replaced(password_hash=new_hash)
                self._save({**self._accounts, account.name: updated})

    def _reload_if_changed(self) -> None:
        try:
            status = self._path.stat()
        except FileNotFoundError:
            self._accounts, self._stamp = {}, None
            return
        except OSError as err:
            raise UserStoreError(f"cannot read the user file {self._path}: {err}") from err
        stamp = (status.st_ino, status.st_size, status.st_mtime_ns)
        if stamp != self._stamp:
            self._accounts = _parse(self._path)
            self._stamp = stamp

    def _save(self, accounts: dict[str, _Account]) -> None:
        document = {
            "version": _FILE_FORMAT_VERSION,
            "users": [
                {
                    "name": a.name,
                    "role": a.role.value,
                    "password_hash": a.password_hash,
                    "session_epoch": a.session_epoch,
                    "areas": list(a.areas),
                    # Written only when set: files stay readable by versions without it.
                    **({"disabled": True} if a.disabled else {}),
                }
                for a in sorted(accounts.values(), key=lambda a: a.name)
            ],
        }
        _write_atomically(self._path, json.dumps(document, indent=2) + "\n")
        self._accounts = dict(accounts)
        status = self._path.stat()
        self._stamp = (status.st_ino, status.st_size, status.st_mtime_ns)


def _new_epoch() -> str:
    return secrets.token_hex(8)


def _derived_epoch(password_hash: str, role: str) -> str:
    return hashlib.sha256(f"{password_hash}\0{role}".encode()).hexdigest()[:16]


def _checked_areas(areas: Sequence[str]) -> tuple[str, ...]:
    """``areas`` sorted without duplicates; raise InvalidAreaNameError for a bad name."""
    if isinstance(areas, str):
        # A lone string would otherwise be taken as its characters.
        raise InvalidAreaNameError("areas must be a list of area names, not one string")
    for area in areas:
        if not isinstance(area, str) or not _AREA_NAME.fullmatch(area):
            raise InvalidAreaNameError(
                f"area name {area!r} must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-' "
                "starting with a letter or digit"
            )
    return tuple(sorted(set(areas)))


def _check_user_name(name: str) -> None:
    if not _USER_NAME.fullmatch(name):
        raise InvalidUserNameError(
            f"user name {name!r} must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '@', '-' "
            "starting with a letter or digit"
        )


def _parse(path: Path) -> dict[str, _Account]:
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserStoreError(f"cannot read the user file {path}: {err}") from err
    if not isinstance(document, dict) or document.get("version") != _FILE_FORMAT_VERSION:
        raise UserStoreError(f"{path} is not a version {_FILE_FORMAT_VERSION} user file")
    accounts: dict[str, _Account] = {}
    entries = document.get("users")
    if not isinstance(entries, list):
        raise UserStoreError(f"{path}: 'users' must be a list")
    for index, entry in enumerate(entries):
        try:
            name, role, password_hash = entry["name"], entry["role"], entry["password_hash"]
            # Files written before session epochs existed: derive a stable one from the hash.
            epoch = entry.get("session_epoch") or _derived_epoch(str(password_hash), str(role))
            # Files written before areas existed: no areas, i.e. every area.
            areas = entry.get("areas", [])
            if not isinstance(areas, list):
                raise TypeError(f"'areas' must be a list, not {type(areas).__name__}")
            disabled = entry.get("disabled", False)
            if not isinstance(disabled, bool):
                raise TypeError(f"'disabled' must be true or false, not {disabled!r}")
            account = _Account(
                str(name),
                Role(role),
                str(password_hash),
                str(epoch),
                _checked_areas(areas),
                disabled,
            )
        except (TypeError, KeyError, ValueError) as err:
            raise UserStoreError(f"{path}: user entry {index} is invalid: {err!r}") from err
        if account.name in accounts:
            raise UserStoreError(f"{path}: user {account.name!r} appears twice")
        accounts[account.name] = account
    return accounts


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix."""
    try:
        ensure_private_directory(path.parent)
    except PrivateFileError as err:
        raise UserStoreError(str(err)) from err
    # mkstemp creates the file with mode 0600 before anything is written to it.
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except OSError as err:
        Path(temporary).unlink(missing_ok=True)
        raise UserStoreError(f"cannot write the user file {path}: {err}") from err
    # Make the rename itself durable (POSIX: the directory entry lives in the directory).
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
