"""Users and API tokens, for administrators (a token of the administer scope whose user holds
the administer-users permission): list, add, disable, enable, change role, reset password;
list, create and revoke tokens. Every change goes through the user administration service,
which journals who did what to whom, and why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Response
from flask_openapi3.openapi import OpenAPI
from pydantic import BaseModel, Field
from werkzeug.exceptions import Conflict, NotFound

from controlcenter.api.app import available
from controlcenter.api.auth import require
from controlcenter.api.problems import problems
from controlcenter.api.routes.common import MAX_TEXT, Query, blueprint, dump
from controlcenter.api.services import ApiServices
from controlcenter.model import Event, EventKind, Role
from controlcenter.permissions import Permission, TokenScope
from controlcenter.ports import UserAccount, UserAdministration, UserAdministrationError
from controlcenter.security.tokens import MAX_LABEL, ApiToken
from controlcenter.security.users import UnknownUserError

MAX_TOKEN_LIFETIME_S = 366 * 86400.0
AUDIT_SOURCE = "api"

T = TypeVar("T")


class AccountInfo(BaseModel):
    """A user as administrators see them."""

    name: str
    role: Role
    areas: list[str] = Field(description="Areas the user may command; empty: every area")
    disabled: bool


class AccountList(BaseModel):
    """Every user, sorted by name."""

    users: list[AccountInfo]


class UserPath(BaseModel):
    """One user by name."""

    name: str = Field(max_length=100)


class NewUser(BaseModel):
    """A user to add, with an initial password (checked by the password policy)."""

    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.VIEWER
    areas: list[str] = Field(default_factory=list, max_length=100)
    password: str = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class RoleBody(BaseModel):
    """The new role, and why."""

    role: Role
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class PasswordBody(BaseModel):
    """The new password, and why."""

    password: str = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class ReasonBody(BaseModel):
    """Why (journaled)."""

    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class TokenInfo(BaseModel):
    """An API token (never its secret)."""

    token_id: str
    user: str
    scope: TokenScope
    label: str
    created_by: str
    created: datetime
    expires: datetime
    revoked: datetime | None


class TokenList(BaseModel):
    """Tokens, newest first."""

    tokens: list[TokenInfo]


class TokenQuery(Query):
    """Whose tokens (empty: everyone's)."""

    user: str = Field("", max_length=100)


class NewToken(BaseModel):
    """A token to create for a user: its scope, lifetime and a label."""

    user: str = Field(min_length=1, max_length=100)
    scope: TokenScope = TokenScope.READ
    lifetime_s: float = Field(30 * 86400.0, gt=0, le=MAX_TOKEN_LIFETIME_S)
    label: str = Field("", max_length=MAX_LABEL)


class IssuedTokenInfo(BaseModel):
    """A token just created: ``secret`` is shown this once and never again."""

    token: TokenInfo
    secret: str


class TokenPath(BaseModel):
    """One token by id."""

    token_id: str = Field(max_length=64)


def _account(account: UserAccount) -> AccountInfo:
    user = account.user
    return AccountInfo(
        name=user.name, role=user.role, areas=list(user.areas), disabled=account.disabled
    )


def _stamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def token_info(token: ApiToken) -> TokenInfo:
    """The document of ``token``."""
    return TokenInfo(
        token_id=token.token_id,
        user=token.user_name,
        scope=token.scope,
        label=token.label,
        created_by=token.created_by,
        created=_stamp(token.created),
        expires=_stamp(token.expires),
        revoked=_stamp(token.revoked) if token.revoked is not None else None,
    )


def _call(call: Callable[[], T]) -> T:
    try:
        return call()
    except UserAdministrationError as err:
        raise Conflict(str(err)) from err


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the user and token endpoints."""
    bp = blueprint("users", "Users and API tokens (administrators)")
    refused = problems(e409="Refused: unknown or existing user, weak password, self-lockout")

    def admin() -> UserAdministration:
        return available(services.users, "user administration")  # type: ignore[no-any-return]

    @bp.get("/users", responses={200: AccountList})
    def accounts() -> dict[str, Any]:
        """Every user with role, areas and whether disabled."""
        actor = require(Permission.ADMINISTER_USERS)
        return dump(AccountList(users=[_account(a) for a in admin().accounts(actor)]))

    @bp.post("/users", responses={201: AccountInfo, **refused})
    def add_user(body: NewUser) -> tuple[dict[str, Any], int]:
        """Add a user with an initial password."""
        actor = require(Permission.ADMINISTER_USERS)
        users = admin()
        account = _call(
            lambda: users.add_user(
                actor, body.name, body.role, body.areas, body.password, body.reason
            )
        )
        return dump(_account(account)), 201

    @bp.post("/users/<name>/disable", responses={200: AccountInfo, **refused})
    def disable(path: UserPath, body: ReasonBody) -> dict[str, Any]:
        """Disable a user: no more logins, their sessions end (not oneself)."""
        actor = require(Permission.ADMINISTER_USERS)
        users = admin()
        return dump(_account(_call(lambda: users.disable_user(actor, path.name, body.reason))))

    @bp.post("/users/<name>/enable", responses={200: AccountInfo, **refused})
    def enable(path: UserPath, body: ReasonBody) -> dict[str, Any]:
        """Let a disabled user log in again."""
        actor = require(Permission.ADMINISTER_USERS)
        users = admin()
        return dump(_account(_call(lambda: users.enable_user(actor, path.name, body.reason))))

    @bp.put("/users/<name>/role", responses={200: AccountInfo, **refused})
    def set_role(path: UserPath, body: RoleBody) -> dict[str, Any]:
        """Change a user's role (their sessions end; not one's own demotion)."""
        actor = require(Permission.ADMINISTER_USERS)
        users = admin()
        return dump(
            _account(_call(lambda: users.set_role(actor, path.name, body.role, body.reason)))
        )

    @bp.post("/users/<name>/password", responses={204: None, **refused})
    def reset_password(path: UserPath, body: PasswordBody) -> Response:
        """Give a user a new password (their sessions end)."""
        actor = require(Permission.ADMINISTER_USERS)
        users = admin()
        _call(lambda: users.reset_password(actor, path.name, body.password, body.reason))
        return Response(status=204)

    @bp.get("/tokens", responses={200: TokenList})
    def tokens(query: TokenQuery) -> dict[str, Any]:
        """API tokens (of one user), newest first; secrets are never shown again."""
        require(Permission.ADMINISTER_USERS)
        listed = services.tokens.tokens(query.user or None)
        return dump(TokenList(tokens=[token_info(t) for t in listed]))

    @bp.post("/tokens", responses={201: IssuedTokenInfo, **problems(e404="No such user")})
    def create_token(body: NewToken) -> tuple[dict[str, Any], int]:
        """Create a token for a user with a scope and a lifetime; the secret is in this
        answer only. The user's role still decides what the token may do."""
        actor = require(Permission.ADMINISTER_USERS)
        try:
            issued = services.tokens.create(
                body.user, body.scope, body.lifetime_s, created_by=actor.name, label=body.label
            )
        except UnknownUserError as err:
            raise NotFound(f"no user named {body.user!r}") from err
        _audit(
            services,
            actor.name,
            f"created API token {issued.token.token_id} ({body.scope.value}) for {body.user}",
        )
        info = IssuedTokenInfo(token=token_info(issued.token), secret=issued.secret_text)
        return dump(info), 201

    @bp.delete("/tokens/<token_id>", responses={204: None, **problems(e404="No such live token")})
    def revoke_token(path: TokenPath) -> Response:
        """Revoke a token at once."""
        actor = require(Permission.ADMINISTER_USERS)
        if not services.tokens.revoke(path.token_id):
            raise NotFound(f"no live token {path.token_id!r}")
        _audit(services, actor.name, f"revoked API token {path.token_id}")
        return Response(status=204)

    api.register_api(bp)


def _audit(services: ApiServices, user: str, message: str) -> None:
    services.journal.record(
        Event(services.now(), EventKind.AUDIT, AUDIT_SOURCE, message, user=user)
    )
