"""``controlcenter token``: API tokens for integrators, managed by an administrator.

The administrator signs in (password from ``CC_PASSWORD`` or a prompt; a refused login is
journaled); a token is printed once at creation and never again (only its hash is kept).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from controlcenter.cli.signin import log_in_or_exit, open_store_or_exit
from controlcenter.model import Event, EventKind, User, utc_now
from controlcenter.permissions import Permission, TokenScope, allows
from controlcenter.runtime.defaults import DEMO_DB_URL, DEMO_USERS_PATH

token_app = typer.Typer(help="Manage API tokens (administrators).", no_args_is_help=True)

UsersFile = Annotated[Path, typer.Option(help="Users file; the tokens file lies beside it.")]
Db = Annotated[str, typer.Option(help="Historian URL (for the journal).")]
Admin = Annotated[str, typer.Option("--as", help="The administrator signing in.")]
SOURCE = "token"


def _tokens_file(users: Path) -> Path:
    from controlcenter.api.services import API_TOKENS_FILE

    return users.parent / API_TOKENS_FILE


def _administrator(name: str, users: Path, db: str, action: str) -> User:
    user = log_in_or_exit(name, users, db, SOURCE, action)
    if not allows(user, Permission.ADMINISTER_USERS):
        message = f"{user.name} ({user.role.value}) may not {action}: administrators only"
        _journal(db, user.name, message)
        typer.echo(message, err=True)
        raise typer.Exit(1)
    return user


def _journal(db: str, user: str, message: str) -> None:
    with open_store_or_exit(db) as store:
        store.journal_event(Event(utc_now(), EventKind.AUDIT, SOURCE, message, user=user))


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Argument(help="Whose token (it acts as this user).")],
    admin: Admin,
    scope: Annotated[TokenScope, typer.Option(help="At most what the token may do.")] = (
        TokenScope.READ
    ),
    days: Annotated[float, typer.Option(help="Lifetime in days.", min=0.001, max=366)] = 30.0,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    users: UsersFile = DEMO_USERS_PATH,
    db: Db = DEMO_DB_URL,
) -> None:
    """Create a token and print it once (store it now: it is never shown again)."""
    from controlcenter.security.tokens import TokenStore, TokenStoreError
    from controlcenter.security.users import UnknownUserError, UserStore

    actor = _administrator(admin, users, db, f"create an API token for {user}")
    try:
        store = TokenStore(_tokens_file(users), UserStore(users))
        issued = store.create(user, scope, days * 86400, created_by=actor.name, label=label)
    except (UnknownUserError, TokenStoreError, ValueError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    _journal(
        db, actor.name, f"created API token {issued.token.token_id} ({scope.value}) for {user}"
    )
    typer.echo(issued.secret_text)
    typer.echo(
        f"token {issued.token.token_id} for {user} ({scope.value}), expires "
        f"{_stamp(issued.token.expires)}: shown once, store it now",
        err=True,
    )


@token_app.command("list")
def token_list(
    admin: Admin,
    user: Annotated[str, typer.Option(help="Only this user's tokens.")] = "",
    users: UsersFile = DEMO_USERS_PATH,
    db: Db = DEMO_DB_URL,
) -> None:
    """List tokens (never their secrets), newest first."""
    from controlcenter.security.tokens import TokenStore
    from controlcenter.security.users import UserStore

    _administrator(admin, users, db, "list API tokens")
    store = TokenStore(_tokens_file(users), UserStore(users))
    now = utc_now().timestamp()
    for token in store.tokens(user or None):
        state = "revoked" if token.revoked is not None else "live" if token.live(now) else "expired"
        typer.echo(
            f"{token.token_id}  {token.user_name:<12} {token.scope.value:<10} {state:<8} "
            f"expires {_stamp(token.expires)}  by {token.created_by}  {token.label}"
        )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `token list`).")],
    admin: Admin,
    users: UsersFile = DEMO_USERS_PATH,
    db: Db = DEMO_DB_URL,
) -> None:
    """Revoke a token at once."""
    from controlcenter.security.tokens import TokenStore
    from controlcenter.security.users import UserStore

    actor = _administrator(admin, users, db, f"revoke API token {token_id}")
    if not TokenStore(_tokens_file(users), UserStore(users)).revoke(token_id):
        typer.echo(f"no live token {token_id}", err=True)
        raise typer.Exit(1)
    _journal(db, actor.name, f"revoked API token {token_id}")
    typer.echo(f"revoked {token_id}")
