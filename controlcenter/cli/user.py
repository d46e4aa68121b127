"""``controlcenter user``: manage the HMI's users."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controlcenter.model import Role
from controlcenter.runtime.defaults import DEMO_USERS_PATH

user_app = typer.Typer(help="Manage HMI users.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[Role, typer.Option(help="What the user may do.")] = Role.VIEWER,
    users: Annotated[Path, typer.Option(help="HMI users file.")] = DEMO_USERS_PATH,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Password: at least 12 characters, not the user name, not easy to guess.",
        ),
    ] = "",
) -> None:
    """Add a user, or replace the password and role of an existing one."""
    from controlcenter.security.users import UserStore, UserStoreError

    store = UserStore(users)
    try:
        if name in {user.name for user in store.users()}:
            store.set_password(name, password)
            store.set_role(name, role)
        else:
            store.add_user(name, password, role)
    except UserStoreError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    typer.echo(f"user {name} ({role.value}) saved in {users}")
