"""Who is calling the API, and may they? Bearer tokens (RFC 6750), checked on every request.

The caller is resolved once per request from ``Authorization: Bearer cc_…`` and kept in
``flask.g``; every endpoint then asks ``require(Permission.X)``, which applies the one
permission table (``controlcenter.permissions``) to the token's user within its scope. Every
refusal (no token, a bad one, a forbidden action) is journaled as an audit event with who and
why, and answered 401 or 403.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import g, request

from controlcenter.model import Event, EventKind, User, utc_now
from controlcenter.permissions import Permission, PermissionDeniedError, TokenScope
from controlcenter.permissions import require as require_permission
from controlcenter.ports import EventJournal
from controlcenter.security.tokens import ApiToken, TokenRejectedError, TokenStore

AUDIT_SOURCE = "api"
"""The ``source`` of the API's audit events."""

_log = logging.getLogger(__name__)


class AuthenticationRequiredError(Exception):
    """No usable token came with the request (answered 401)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The user a request acts as, through which token."""

    user: User
    token: ApiToken

    @property
    def scope(self) -> TokenScope:
        """The token's scope."""
        return self.token.scope


def resolve_caller(tokens: TokenStore) -> Caller:
    """The caller of the current request; raises AuthenticationRequiredError saying why not."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise AuthenticationRequiredError("an API token is required (Authorization: Bearer …)")
    try:
        user, token = tokens.resolve(presented.strip())
    except TokenRejectedError as err:
        raise AuthenticationRequiredError(str(err)) from err
    return Caller(user, token)


def current_caller() -> Caller:
    """The caller resolved for this request (the app resolves it before any endpoint runs)."""
    caller = g.get("caller")
    if not isinstance(caller, Caller):
        raise AuthenticationRequiredError("an API token is required")
    return caller


def require(permission: Permission) -> User:
    """The calling user when their role and token scope allow ``permission``; raises
    PermissionDeniedError (answered 403 and journaled) otherwise."""
    caller = current_caller()
    return require_permission(caller.user, permission, caller.scope)


def journal_refusal(journal: EventJournal, status: int, reason: str, user: str = "") -> None:
    """Record a refused request as an audit event (who, what, why)."""
    message = f"API refused {request.method} {request.path} ({status}): {reason}"
    _log.info("%s", message)
    journal.record(
        Event(utc_now(), EventKind.AUDIT, AUDIT_SOURCE, message[:500], user=user, severity=300)
    )


def refusal_user(error: PermissionDeniedError) -> str:
    """The name of the refused user (empty when nobody was authenticated)."""
    return error.user.name if error.user is not None else ""
