"""``controlcenter write``: command one tag of the running center, select-before-operate.

Through the center's REST API and so through the one command pipeline, as the token's user:
select the point (the center reserves it and shows its current value, limits and any interlock
that would block), operate with the value and the reason, and print the result with the value
read back from the field. A selection left unused (an error between the two steps) is
cancelled, so the point is not held.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Annotated, Any

import typer

from controlcenter.cli.value import (
    DEFAULT_URL,
    ApiCallError,
    CenterClient,
    Json,
    Token,
    Url,
    client_or_exit,
    fail,
    quality_text,
    value_text,
)

SELECTIONS = "/commands/selections"
"""Select: POST {"tag"} → 201 SelectionInfo; operate: POST …/{id}/operate {"value", "reason"}
→ 200 CommandOutcome (``status``, ``status_reason``, ``readback``); cancel: DELETE …/{id}."""
MAX_REASON = 500


def parse_value(text: str) -> bool | int | float | str:
    """The command value as typed: true/false, an integer, a number, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "on"):
        return True
    if lowered in ("false", "off"):
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def describe_selection(selection: dict[str, Any]) -> list[str]:
    """Lines showing what was selected: current value, limits, interlock, expiry."""
    lines = [f"selected {selection.get('tag', '?')}"]
    current = selection.get("current")
    if isinstance(current, dict):
        lines.append(
            f"  current   {value_text(current.get('value'))} "
            f"({quality_text(current.get('quality'))})"
        )
    else:
        lines.append("  current   - (no value known)")
    limits = selection.get("limits")
    if isinstance(limits, dict):
        low, high, unit = limits.get("low"), limits.get("high"), limits.get("unit") or ""
        span = f"{value_text(low)} .. {value_text(high)} {unit}".rstrip()
        if low is None and high is None:
            span = "none"
        extra = []
        if limits.get("max_step") is not None:
            extra.append(f"max step {value_text(limits['max_step'])}")
        if limits.get("min_command_interval_s"):
            extra.append(f"min interval {value_text(limits['min_command_interval_s'])} s")
        lines.append(f"  limits    {span}{'; ' + ', '.join(extra) if extra else ''}")
    interlock = selection.get("blocking_interlock")
    lines.append(f"  interlock {interlock if interlock else 'none blocking'}")
    if selection.get("expires_at"):
        lines.append(f"  expires   {selection['expires_at']}")
    return lines


def describe_result(result: dict[str, Any]) -> str:
    """One line for the operate's outcome: status, the pipeline's reason, the value read back."""
    reason = result.get("status_reason") or result.get("reason") or ""
    return f"{result.get('status', '?')}: {reason} (read back {value_text(result.get('readback'))})"


def write(
    tag: Annotated[str, typer.Argument(help="Tag to command, e.g. heat.ss1.supply_setpoint.")],
    new_value: Annotated[str, typer.Argument(metavar="VALUE", help="Value: number, true/false.")],
    reason: Annotated[str, typer.Option(help="Why (journaled with the command).")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Write a value through the command pipeline (select, show, operate, read back)."""
    if not reason.strip() or len(reason) > MAX_REASON:
        typer.echo(f"--reason: say why, in at most {MAX_REASON} characters", err=True)
        raise typer.Exit(2)
    client = client_or_exit(url, token)
    try:
        selection = client.post(SELECTIONS, {"tag": tag})
    except ApiCallError as err:
        raise fail(err) from err
    if not isinstance(selection, dict) or "selection_id" not in selection:
        typer.echo("the center's answer to the selection has no selection_id", err=True)
        raise typer.Exit(1)
    if not as_json:
        typer.echo("\n".join(describe_selection(selection)))
    result = _operate(client, str(selection["selection_id"]), parse_value(new_value), reason)
    if as_json:
        typer.echo(json.dumps({"selection": selection, "result": result}, indent=1))
    else:
        typer.echo(describe_result(result))
    if result.get("status") != "confirmed":
        raise typer.Exit(1)


def _operate(client: CenterClient, selection_id: str, value: object, reason: str) -> dict[str, Any]:
    path = f"{SELECTIONS}/{selection_id}"
    try:
        result = client.post(f"{path}/operate", {"value": value, "reason": reason})
    except ApiCallError as err:
        # Gone already, or the center away: the selection then expires on its own.
        with contextlib.suppress(ApiCallError):
            client.delete(path)
        raise fail(err) from err
    if not isinstance(result, dict):
        typer.echo("the center's answer to operate is not a result", err=True)
        raise typer.Exit(1)
    return result
