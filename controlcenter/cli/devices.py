"""``controlcenter devices``: the running center's acquisition health, one line per device.

Read over the REST API (``GET /api/v1/devices``): connected, healthy, scans on time, failed
scans, latency, reconnects and the last error, so an engineer commissioning a device sees
whether the center reaches it without opening the HMI.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from controlcenter.cli.value import (
    DEFAULT_URL,
    ApiCallError,
    Json,
    Token,
    Url,
    client_or_exit,
    fail,
    table,
    value_text,
)

COLUMNS = (
    "device",
    "connected",
    "healthy",
    "on_time_pct",
    "failed_scans",
    "latency_p95_ms",
    "reconnects",
    "last_error",
)


def device_rows(devices: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row of text per device, in COLUMNS order ('-' for a field the center omits)."""
    rows = []
    for device in devices:
        cells = []
        for column in COLUMNS:
            cell = device.get(column)
            text = value_text(cell) if cell is not None and cell != "" else "-"
            cells.append(" ".join(text.split())[:120])
        rows.append(tuple(cells))
    return rows


def devices(
    only_unhealthy: Annotated[
        bool, typer.Option("--unhealthy", help="Only devices that are not healthy.")
    ] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Print the running center's diagnostics of every device."""
    client = client_or_exit(url, token)
    try:
        answer = client.get("/devices")
    except ApiCallError as err:
        raise fail(err) from err
    found = answer.get("devices", []) if isinstance(answer, dict) else answer
    listed = [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []
    if only_unhealthy:
        listed = [d for d in listed if d.get("healthy") is not True]
    if as_json:
        typer.echo(json.dumps(listed, indent=1))
        return
    typer.echo(table(COLUMNS, device_rows(listed)))
