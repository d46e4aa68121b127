"""Server-side login sessions, kept in a private SQLite file so that they survive a restart.

The browser holds only a random token (256 bits, inside the signed session cookie); the file
holds its SHA-256, never the token, so reading the file gives no usable session. A session ends
when it is revoked (logout), when it is older than the absolute lifetime, when it has seen no
activity of the person for the idle timeout of the user's role, or when the user's password or
role changed since it was opened (the user's session epoch differs) or the user was removed
(OWASP Session Management Cheat Sheet: server-side invalidation, idle and absolute timeouts,
renewal on privilege change). Times are wall-clock seconds: the demo's simulated clock must not
shorten a session.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controlcenter.model import Role, User
from controlcenter.security.files import PrivateFileError, ensure_private_file
from controlcenter.security.users import UnknownUserError, UserStore

_PRIVILEGED = frozenset({Role.MAINTENANCE, Role.ENGINEER, Role.ADMIN})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    session_epoch TEXT NOT NULL,
    address TEXT NOT NULL,
    created REAL NOT NULL,
    last_activity REAL NOT NULL
)
"""


class SessionStoreError(Exception):
    """The sessions file cannot be created, read or written."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long sessions last.

    Defaults for a control room: a session lasts at most one 12-hour shift; the consoles of
    viewers and operators stay logged in while open, while a maintenance, engineer or admin
    session ends after 30 minutes without activity of the person.
    """

    absolute_s: float = 12 * 3600.0
    privileged_idle_s: float | None = 30 * 60.0
    """Idle timeout of maintenance, engineer and admin sessions (None: none)."""
    console_idle_s: float | None = None
    """Idle timeout of viewer and operator sessions (None: only the absolute lifetime)."""
    activity_resolution_s: float = 60.0
    """The last activity is written at most this often; idle timeouts are this accurate."""

    def __post_init__(self) -> None:
        for value in (self.absolute_s, self.privileged_idle_s, self.console_idle_s):
            if value is not None and value <= 0:
                raise ValueError("session lifetimes must be positive")
        if self.activity_resolution_s < 0:
            raise ValueError("activity_resolution_s must not be negative")

    def idle_s(self, role: Role) -> float | None:
        """The idle timeout of a session of ``role`` (None: none)."""
        return self.privileged_idle_s if role in _PRIVILEGED else self.console_idle_s


class SessionStore:
    """Server-side sessions in a SQLite file (mode 0600); safe to use from any thread."""

    def __init__(
        self,
        path: Path,
        users: UserStore,
        policy: SessionPolicy | None = None,
        *,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        self._users = users
        self._policy = policy if policy is not None else SessionPolicy()
        self._wall_time = wall_time
        self._lock = threading.Lock()
        try:
            ensure_private_file(path)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute(_SCHEMA)
        except (PrivateFileError, sqlite3.Error) as err:
            raise SessionStoreError(f"cannot open the sessions file {path}: {err}") from err

    @property
    def policy(self) -> SessionPolicy:
        """The lifetimes in force."""
        return self._policy

    def open(self, user: User, address: str) -> str:
        """Open a session for ``user`` and return its token (for the browser only)."""
        token = secrets.token_urlsafe(32)
        now = self._wall_time()
        epoch = self._users.session_epoch(user.name)
        self._execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
            (_digest(token), user.name, epoch, address[:64], now, now),
        )
        # Each login sweeps what has expired, so the file stays as small as the live sessions.
        self._execute("DELETE FROM sessions WHERE created <= ?", (now - self._policy.absolute_s,))
        return token

    def resolve(self, token: str, *, activity: bool) -> User | None:
        """The user of a live session, or None; ``activity`` restarts its idle timeout."""
        digest = _digest(token)
        row = self._fetch(
            "SELECT user_name, session_epoch, created, last_activity FROM sessions "
            "WHERE token_sha256 = ?",
            (digest,),
        )
        if row is None:
            return None
        name, epoch, created, last_activity = row
        now = self._wall_time()
        try:
            user = self._users.get_user(name)
            current_epoch = self._users.session_epoch(name)
        except UnknownUserError:
            user, current_epoch = None, ""
        idle = self._policy.idle_s(user.role) if user is not None else None
        if (
            user is None
            or epoch != current_epoch
            or now - created >= self._policy.absolute_s
            or (idle is not None and now - last_activity >= idle)
        ):
            self._execute("DELETE FROM sessions WHERE token_sha256 = ?", (digest,))
            return None
        if activity and now - last_activity >= self._policy.activity_resolution_s:
            self._execute(
                "UPDATE sessions SET last_activity = ? WHERE token_sha256 = ?", (now, digest)
            )
        return user

    def revoke(self, token: str) -> User | None:
        """End a session; return its user if it was live, else None."""
        user = self.resolve(token, activity=False)
        self._execute("DELETE FROM sessions WHERE token_sha256 = ?", (_digest(token),))
        return user

    def revoke_user(self, name: str) -> int:
        """End every session of ``name``; return how many there were."""
        return self._execute("DELETE FROM sessions WHERE user_name = ?", (name,))

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, parameters: tuple[object, ...]) -> int:
        try:
            with self._lock:
                return self._db.execute(sql, parameters).rowcount
        except sqlite3.Error as err:
            raise SessionStoreError(f"sessions file: {err}") from err

    def _fetch(
        self, sql: str, parameters: tuple[object, ...]
    ) -> tuple[str, str, float, float] | None:
        try:
            with self._lock:
                row = self._db.execute(sql, parameters).fetchone()
        except sqlite3.Error as err:
            raise SessionStoreError(f"sessions file: {err}") from err
        if row is None:
            return None
        return str(row[0]), str(row[1]), float(row[2]), float(row[3])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
