"""``controlcenter value``: live values from a running center, over its REST API.

Also the small API client ``write`` and ``devices`` share: the center's address (``--url``),
the API token (``--token`` or ``CC_API_TOKEN``), and one clear line for every way a call can
fail (no token, 401, 403, 404, 409, refused connection, timeout), never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer

TOKEN_ENV = "CC_API_TOKEN"
"""The environment variable holding the API token (so it stays out of the shell history)."""
DEFAULT_URL = "http://127.0.0.1:8050"
"""The demo center's address (its HMI, which also serves ``/api/v1``)."""
API_PREFIX = "/api/v1"
TIMEOUT_S = 10.0
MAX_TAGS = 1000
"""Tags one ``value`` call may name (the API's own bound)."""
MAX_TAGS_PARAM = 3500
"""Characters of names one ``/values?tags=`` request carries (the API accepts 4,000)."""

Url = Annotated[str, typer.Option("--url", help="Address of the running center.")]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help=f"API token (default: the {TOKEN_ENV} environment variable).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON as it came.")]


class ApiCallError(Exception):
    """A call to the center failed; the text is the one line to show."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CenterClient:
    """Calls to one center's API with one token."""

    url: str
    token: str
    transport: httpx.BaseTransport | None = None

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path`` (under /api/v1): the decoded JSON, or ApiCallError."""
        return self._call("GET", path, params=params)

    def post(self, path: str, body: dict[str, object]) -> Any:
        """POST JSON to ``path``: the decoded JSON, or ApiCallError."""
        return self._call("POST", path, json_body=body)

    def delete(self, path: str) -> Any:
        """DELETE ``path``."""
        return self._call("DELETE", path)

    def _call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        json_body: dict[str, object] | None = None,
    ) -> Any:
        target = self.url.rstrip("/") + API_PREFIX + path
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            with httpx.Client(timeout=TIMEOUT_S, transport=self.transport) as client:
                response = client.request(
                    method, target, params=params, json=json_body, headers=headers
                )
        except httpx.ConnectError as err:
            raise ApiCallError(
                f"cannot reach the center at {self.url} (is it running? --url)"
            ) from err
        except httpx.TimeoutException as err:
            raise ApiCallError(f"the center at {self.url} did not answer in time") from err
        except httpx.HTTPError as err:
            raise ApiCallError(f"{self.url}: {type(err).__name__}: {err}") from err
        if response.status_code >= 400:
            raise ApiCallError(_refusal(response), response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as err:
            raise ApiCallError(f"{target}: the answer is not JSON (is --url a center?)") from err


def _refusal(response: httpx.Response) -> str:
    """One line for a refused call: what it means here, and the center's own detail."""
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("title") or "")
    except ValueError:
        detail = ""
    detail = " ".join(detail.split())[:300]
    status = response.status_code
    meaning = {
        401: f"not authenticated: the token was refused (check --token or {TOKEN_ENV})",
        403: "forbidden: your role or the token's scope does not allow this",
        404: "not found",
        409: "refused by the center",
        429: "too many requests: try again shortly",
    }.get(status, f"the center answered {status}")
    return f"{meaning}: {detail}" if detail else meaning


def client_or_exit(url: str, token: str | None) -> CenterClient:
    """The API client for ``url``, or exit 2 saying how to give a token."""
    chosen = token or os.environ.get(TOKEN_ENV, "")
    if not chosen.strip():
        typer.echo(
            f"no API token: give --token or set {TOKEN_ENV} (an administrator creates one)",
            err=True,
        )
        raise typer.Exit(2)
    if not url.startswith(("http://", "https://")):
        typer.echo(f"--url {url!r}: http://host:port or https://host:port", err=True)
        raise typer.Exit(2)
    return CenterClient(url, chosen.strip())


def fail(err: ApiCallError) -> typer.Exit:
    """Print the failed call's line; the exit to raise (1)."""
    typer.echo(err.args[0], err=True)
    return typer.Exit(1)


def value_text(value: object) -> str:
    """A value as an engineer reads it: numbers plainly, null as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def quality_text(quality: object) -> str:
    """``good``, or ``bad (comm_failure: reason)``."""
    if not isinstance(quality, dict):
        return str(quality)
    severity = str(quality.get("severity", ""))
    extra = ": ".join(str(quality[k]) for k in ("substatus", "reason") if quality.get(k))
    return f"{severity} ({extra})" if extra and severity != "good" else severity


def render_values(values: list[dict[str, Any]]) -> str:
    """An aligned table: tag, value, quality, time."""
    rows = [
        (
            str(v.get("tag", "")),
            value_text(v.get("value")),
            quality_text(v.get("quality")),
            str(v.get("source_time", "")),
        )
        for v in values
    ]
    return table(("tag", "value", "quality", "source_time"), rows)


def table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Columns aligned with two spaces; trailing spaces trimmed."""
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def name_batches(names: Sequence[str], limit: int = MAX_TAGS_PARAM) -> list[list[str]]:
    """``names`` in order, split so that each batch joined by commas fits in ``limit``."""
    batches: list[list[str]] = []
    size = 0
    for name in names:
        if not batches or size + len(name) + 1 > limit:
            batches.append([])
            size = 0
        batches[-1].append(name)
        size += len(name) + 1
    return batches


def value(
    tags: Annotated[list[str], typer.Argument(help="Tag names, e.g. water.tank1.level.")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Print the live value, quality and time of each tag from the running center."""
    if len(tags) > MAX_TAGS:
        typer.echo(f"at most {MAX_TAGS} tags per call", err=True)
        raise typer.Exit(2)
    client = client_or_exit(url, token)
    values: list[dict[str, Any]] = []
    try:
        for batch in name_batches(tags):
            answer = client.get("/values", {"tags": ",".join(batch)})
            found = answer.get("values", []) if isinstance(answer, dict) else []
            values += [v for v in found if isinstance(v, dict)]
    except ApiCallError as err:
        raise fail(err) from err
    if as_json:
        typer.echo(json.dumps(values, indent=1))
    else:
        typer.echo(render_values(values))
    missing = sorted(set(tags) - {str(v.get("tag")) for v in values})
    if missing:
        typer.echo(f"unknown tags: {', '.join(missing)}", err=True)
        raise typer.Exit(1)
