"""``controlcenter user``: manage the HMI's users, their roles and the areas they may command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controlcenter.model import Role, User
from controlcenter.runtime.defaults import DEMO_USERS_PATH

user_app = typer.Typer(help="Manage HMI users.", no_args_is_help=True)

Areas = Annotated[
    list[str] | None,
    typer.Option(
        "--area",
        help="An area of the site (site file `areas:`) the user may command; repeatable. "
        "Without any, the user may command every area.",
    ),
]
UsersFile = Annotated[Path, typer.Option(help="HMI users file.")]


def _describe(user: User) -> str:
    areas = ", ".join(user.areas) if user.areas else "every area"
    return f"user {user.name} ({user.role.value}; {areas})"


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[Role, typer.Option(help="What the user may do.")] = Role.VIEWER,
    area: Areas = None,
    users: UsersFile = DEMO_USERS_PATH,
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
    """Add a user, or replace the password, role and areas of an existing one."""
    from controlcenter.security.users import UserStore, UserStoreError

    store = UserStore(users)
    areas = area or []
    try:
        if name in {user.name for user in store.users()}:
            store.set_password(name, password)
            store.set_role(name, role)
            saved = store.set_areas(name, areas)
        else:
            saved = store.add_user(name, password, role, areas)
    except UserStoreError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    typer.echo(f"{_describe(saved)} saved in {users}")


@user_app.command("set")
def user_set(
    name: Annotated[str, typer.Argument(help="Login name of an existing user.")],
    role: Annotated[Role | None, typer.Option(help="New role.")] = None,
    area: Areas = None,
    all_areas: Annotated[
        bool, typer.Option("--all-areas", help="Let the user command every area.")
    ] = False,
    users: UsersFile = DEMO_USERS_PATH,
) -> None:
    """Change an existing user's role or areas (their open sessions end)."""
    from controlcenter.security.users import UserStore, UserStoreError

    if area and all_areas:
        typer.echo("--area and --all-areas exclude each other", err=True)
        raise typer.Exit(2)
    if role is None and not area and not all_areas:
        typer.echo("nothing to change: give --role, --area or --all-areas", err=True)
        raise typer.Exit(2)
    store = UserStore(users)
    try:
        saved = store.get_user(name)
        if role is not None:
            saved = store.set_role(name, role)
        if area or all_areas:
            saved = store.set_areas(name, area or [])
    except (UserStoreError, KeyError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    typer.echo(f"{_describe(saved)} saved in {users}")
