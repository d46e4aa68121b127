"""A plain HTTP(S) client for the HMI tests: exact headers, cookies copied by hand."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server answered."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def cookie(self) -> str:
        """The ``name=value`` of the cookie this reply sets ('' if none)."""
        header = self.headers.get("Set-Cookie", "")
        return header.split(";", 1)[0]


def send(
    base_url: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    cookie: str = "",
    context: ssl.SSLContext | None = None,
) -> Reply:
    """One request on a new connection."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT_S, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    all_headers = dict(headers or {})
    if cookie:
        all_headers["Cookie"] = cookie
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def log_in(
    base_url: str, name: str, password: str, *, context: ssl.SSLContext | None = None
) -> Reply:
    """POST the login form as the HMI's own page would."""
    return send(
        base_url,
        "POST",
        "/login",
        body=urlencode({"username": name, "password": password}).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": base_url,
        },
        context=context,
    )


def log_out(base_url: str, cookie: str, *, context: ssl.SSLContext | None = None) -> Reply:
    """POST the logout form."""
    return send(
        base_url, "POST", "/logout", headers={"Origin": base_url}, cookie=cookie, context=context
    )


def layout_status(base_url: str, cookie: str, *, context: ssl.SSLContext | None = None) -> int:
    """Status of a data request of the page: 200 with a live session, 401 without."""
    return send(base_url, "GET", "/_dash-layout", cookie=cookie, context=context).status


def banner_refresh_status(base_url: str, cookie: str, changed: str) -> int:
    """Status of the alarm banner's callback as fired by the input ``changed`` (``id.property``):
    its automatic inputs (``alarm-version.data``, ``banner-tick.n_intervals``) or anything else."""
    payload = {
        "output": "alarm-banner.children",
        "outputs": {"id": "alarm-banner", "property": "children"},
        "inputs": [
            {"id": "alarm-version", "property": "data", "value": 1},
            {"id": "banner-tick", "property": "n_intervals", "value": 1},
        ],
        "changedPropIds": [changed],
    }
    return post_callback(base_url, cookie, payload)


def navigation_status(base_url: str, cookie: str, pathname: str, search: str = "") -> int:
    """Status of the router's callback drawing the display of ``pathname`` (a person's click)."""
    payload = {
        "output": "page.children",
        "outputs": {"id": "page", "property": "children"},
        "inputs": [{"id": "url", "property": "pathname", "value": pathname}],
        "state": [{"id": "url", "property": "search", "value": search}],
        "changedPropIds": ["url.pathname"],
    }
    return post_callback(base_url, cookie, payload)


def post_callback(base_url: str, cookie: str, payload: Mapping[str, object]) -> int:
    """Status of a Dash callback request as a page sends it."""
    return send(
        base_url,
        "POST",
        "/_dash-update-component",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        cookie=cookie,
    ).status
