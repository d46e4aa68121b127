"""``controlcenter commands``: the command side of the center seen from the command line.

``commands overrides`` lists the operators' active manual overrides (tag, value, who, why,
since, until) as the center keeps them in its database, so that a maintenance crew can see
which points are held by hand before they go out, without a running HMI.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer

from controlcenter.model import Override, utc_now
from controlcenter.ports import OverrideStore
from controlcenter.runtime.defaults import DEMO_DB_URL

commands_app = typer.Typer(help="Commands to the field: active overrides.", no_args_is_help=True)

COLUMNS = ("tag", "value", "who", "why", "since", "until")


class OverridesFormat(StrEnum):
    """Output formats of ``commands overrides``."""

    TABLE = "table"
    JSON = "json"


def override_rows(store: OverrideStore, now: datetime) -> list[dict[str, str]]:
    """One row of text per active override of ``store``, ordered by tag; an override whose
    ``until`` has passed is marked as lapsed (the center clears it at its next check)."""
    return [_row(override, now) for override in store.active_overrides()]


def _row(override: Override, now: datetime) -> dict[str, str]:
    if override.until is None:
        until = "until released"
    else:
        until = override.until.isoformat(timespec="seconds")
        if override.until <= now:
            until += " (lapsed)"
    return {
        "tag": override.tag,
        "value": json.dumps(override.value)
        if not isinstance(override.value, datetime)
        else override.value.isoformat(),
        "who": override.user,
        "why": override.reason,
        "since": override.since.isoformat(timespec="seconds"),
        "until": until,
    }


def render_overrides(rows: list[dict[str, str]], output_format: OverridesFormat) -> str:
    """The rows as an aligned text table (or a note that there are none), or as JSON."""
    if output_format is OverridesFormat.JSON:
        return json.dumps(rows, indent=2)
    if not rows:
        return "no active overrides"
    widths = {name: max(len(name), *(len(row[name]) for row in rows)) for name in COLUMNS}
    lines = ["  ".join(name.ljust(widths[name]) for name in COLUMNS).rstrip()]
    lines += ["  ".join(row[name].ljust(widths[name]) for name in COLUMNS).rstrip() for row in rows]
    return "\n".join(lines)


@commands_app.command("overrides")
def overrides(
    db: Annotated[str, typer.Option(help="Historian database URL.")] = DEMO_DB_URL,
    output_format: Annotated[
        OverridesFormat, typer.Option("--format", help="Output format.")
    ] = OverridesFormat.TABLE,
) -> None:
    """List the active manual overrides: tag, value, who, why, since, until."""
    from historian.errors import HistorianError
    from historian.store import SqlHistorian

    try:
        store = SqlHistorian(db)
    except HistorianError as err:
        typer.echo(f"cannot open {db}: {err}", err=True)
        raise typer.Exit(1) from err
    try:
        rows = override_rows(store, utc_now())
    except HistorianError as err:
        typer.echo(f"cannot read the overrides from {db}: {err}", err=True)
        raise typer.Exit(1) from err
    finally:
        store.close()
    typer.echo(render_overrides(rows, output_format))
