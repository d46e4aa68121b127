"""What the command lines that change a running center share: the historian opened or a clear
exit, the user's login (journaled when refused), and waiting for the center's decision.

``controlcenter rules apply`` and the ``controlcenter alarms`` actions store a request in the
historian and wait for the running center to decide it; both authenticate the person first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from controlcenter.model import User, utc_now

if TYPE_CHECKING:
    from historian.store import SqlHistorian

PASSWORD_ENV = "CC_PASSWORD"
"""The environment variable a script may put the password in (otherwise it is asked for)."""
WAIT_POLL_S = 0.2
"""Wall seconds between two looks at a request's outcome."""

T = TypeVar("T")


def open_store_or_exit(db: str) -> SqlHistorian:
    """The historian at ``db``, or exit 1 saying why it cannot be opened."""
    from historian.errors import HistorianError
    from historian.store import SqlHistorian

    try:
        return SqlHistorian(db)
    except HistorianError as err:
        typer.echo(f"cannot open {db}: {err}", err=True)
        raise typer.Exit(1) from err


def log_in_or_exit(name: str, users_path: Path, db: str, source: str, action: str) -> User:
    """The authenticated user (password from ``CC_PASSWORD`` or a prompt); a refused login
    is journaled as a failed login (never saying whether the name or the password was wrong)
    and exits 1."""
    from controlcenter.ports import AuthenticationError
    from controlcenter.security.users import UserStore, UserStoreError
    from historian.audit import AuditAction, AuditRecord

    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = typer.prompt("Password", hide_input=True)
    try:
        return UserStore(users_path).authenticate(name, password)
    except (AuthenticationError, UserStoreError) as err:
        with open_store_or_exit(db) as store:
            store.journal_audit(
                AuditRecord(utc_now(), AuditAction.LOGIN_FAILED, name, source, action, False)
            )
        typer.echo(f"refused: {err}", err=True)
        raise typer.Exit(1) from err


def wait_for_decision(read: Callable[[], T], pending: Callable[[T], bool], wait_s: float) -> T:
    """``read()`` once it is no longer ``pending``, or as it is after ``wait_s`` wall seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        current = read()
        if not pending(current) or time.monotonic() >= deadline:
            return current
        time.sleep(min(WAIT_POLL_S, max(0.0, deadline - time.monotonic())))
