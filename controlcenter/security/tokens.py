"""API tokens: created by an administrator for one user, shown once, stored hashed, with a scope
and an expiry, revocable.

A token reads ``cc_<id>_<secret>``: the id finds the row, the 256-bit secret is checked against
its stored SHA-256 in constant time (a secret of that entropy needs no slow hash; OWASP REST
Security Cheat Sheet). The file (mode 0600) never holds a usable token. A token acts as its user
with at most its scope: the user's role still decides (``controlcenter.permissions``), and a
token of a removed user, or of a user whose role no longer allows the scope, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controlcenter.model import User
from controlcenter.permissions import TokenScope
from controlcenter.security.files import PrivateFileError, ensure_private_file
from controlcenter.security.users import UnknownUserError, UserStore

TOKEN_PREFIX = "cc_"
MAX_LABEL = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    user_name TEXT NOT NULL,
    scope TEXT NOT NULL,
    label TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    revoked REAL
)
"""


class TokenStoreError(Exception):
    """The tokens file cannot be created, read or written."""


class TokenRejectedError(Exception):
    """A presented token is malformed, unknown, expired, revoked or of a removed user."""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """What the center knows of one token (never its secret)."""

    token_id: str
    user_name: str
    scope: TokenScope
    label: str
    created_by: str
    created: float
    expires: float
    revoked: float | None = None

    def live(self, now: float) -> bool:
        """Whether the token may still be used at wall time ``now``."""
        return self.revoked is None and now < self.expires


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: ``secret_text`` is shown once and never again."""

    token: ApiToken
    secret_text: str


class TokenStore:
    """API tokens in a SQLite file (mode 0600); safe to use from any thread."""

    def __init__(
        self, path: Path, users: UserStore, *, wall_time: Callable[[], float] = time.time
    ) -> None:
        self._users = users
        self._wall_time = wall_time
        self._lock = threading.Lock()
        try:
            ensure_private_file(path)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute(_SCHEMA)
        except (PrivateFileError, sqlite3.Error) as err:
            raise TokenStoreError(f"cannot open the tokens file {path}: {err}") from err

    def create(
        self,
        user_name: str,
        scope: TokenScope,
        lifetime_s: float,
        *,
        created_by: str,
        label: str = "",
    ) -> IssuedToken:
        """Create a token for ``user_name`` (who must exist); raises ValueError for a
        non-positive lifetime and UnknownUserError for an unknown user."""
        if not lifetime_s > 0:
            raise ValueError(f"a token's lifetime must be positive, not {lifetime_s}")
        self._users.get_user(user_name)
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = self._wall_time()
        token = ApiToken(
            token_id, user_name, scope, label[:MAX_LABEL], created_by, now, now + lifetime_s
        )
        self._execute(
            "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                token_id,
                _digest(secret),
                user_name,
                scope.value,
                token.label,
                created_by,
                now,
                token.expires,
            ),
        )
        return IssuedToken(token, f"{TOKEN_PREFIX}{token_id}_{secret}")

    def resolve(self, presented: str) -> tuple[User, ApiToken]:
        """The user and token of a presented token text; raises TokenRejectedError saying why."""
        if not presented.startswith(TOKEN_PREFIX) or presented.count("_") < 2:
            raise TokenRejectedError("malformed token")
        token_id, _, secret = presented[len(TOKEN_PREFIX) :].partition("_")
        row = self._fetch_one(token_id)
        if row is None:
            raise TokenRejectedError("unknown token")
        token, stored_digest = row
        if not hmac.compare_digest(stored_digest, _digest(secret)):
            raise TokenRejectedError("unknown token")
        if token.revoked is not None:
            raise TokenRejectedError(f"token {token_id} was revoked")
        if self._wall_time() >= token.expires:
            raise TokenRejectedError(f"token {token_id} has expired")
        try:
            account = self._users.account(token.user_name)
        except UnknownUserError as err:
            raise TokenRejectedError(f"the user of token {token_id} no longer exists") from err
        if account.disabled:
            raise TokenRejectedError(f"the user of token {token_id} is disabled")
        return account.user, token

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; False when there is no such live token."""
        return (
            self._execute(
                "UPDATE api_tokens SET revoked = ? WHERE token_id = ? AND revoked IS NULL",
                (self._wall_time(), token_id),
            )
            > 0
        )

    def tokens(self, user_name: str | None = None) -> list[ApiToken]:
        """Every token (of one user), newest first; secrets are never stored, so not shown."""
        sql = (
            "SELECT token_id, secret_sha256, user_name, scope, label, created_by, created, "
            "expires, revoked FROM api_tokens"
        )
        parameters: tuple[object, ...] = ()
        if user_name is not None:
            sql += " WHERE user_name = ?"
            parameters = (user_name,)
        sql += " ORDER BY created DESC"
        try:
            with self._lock:
                rows = self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as err:
            raise TokenStoreError(f"tokens file: {err}") from err
        return [_token(row)[0] for row in rows]

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def _fetch_one(self, token_id: str) -> tuple[ApiToken, str] | None:
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT token_id, secret_sha256, user_name, scope, label, created_by, "
                    "created, expires, revoked FROM api_tokens WHERE token_id = ?",
                    (token_id,),
                ).fetchone()
        except sqlite3.Error as err:
            raise TokenStoreError(f"tokens file: {err}") from err
        return None if row is None else _token(row)

    def _execute(self, sql: str, parameters: tuple[object, ...]) -> int:
        try:
            with self._lock:
                return int(self._db.execute(sql, parameters).rowcount)
        except sqlite3.Error as err:
            raise TokenStoreError(f"tokens file: {err}") from err


def _token(row: tuple[object, ...]) -> tuple[ApiToken, str]:
    token_id, digest, user, scope, label, by, created, expires, revoked = row
    token = ApiToken(
        str(token_id),
        str(user),
        TokenScope(str(scope)),
        str(label),
        str(by),
        float(str(created)),
        float(str(expires)),
        None if revoked is None else float(str(revoked)),
    )
    return token, str(digest)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
