"""Public alerts (CAP 1.2): the open feed for the population and the record for operators.

``/open/v1/alerts`` (no login) is an Atom feed whose entries embed the CAP 1.2 messages for
the population (scope Public); ``/open/v1/alerts/<identifier>`` is one message as
``application/cap+xml``. Messages for the emergency services (scope Restricted) never appear
there: they go to the alert webhooks only. ``GET /api/v1/alerts`` lists every message as
journaled, both audiences, for operators.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue
from flask_openapi3.openapi import OpenAPI
from pydantic import AwareDatetime, BaseModel, Field

from alarms.cap import CAP_MEDIA_TYPE, SOURCE, AlertDesk, Scope, atom_feed, to_xml
from controlcenter.api.auth import require
from controlcenter.api.problems import problem_response
from controlcenter.api.routes.common import Query, blueprint, dump, optional_window
from controlcenter.api.services import ApiServices
from controlcenter.permissions import Permission

ATOM_MEDIA_TYPE = "application/atom+xml"
FEED_PATH = "/open/v1/alerts"
MAX_FEED = 100


def add_open_alert_routes(
    app: Flask, desk: AlertDesk, *, site_name: str, now: Callable[[], datetime]
) -> None:
    """The public CAP feed on the open-data app (``now``: the center's clock)."""
    slug = "".join(c if c.isalnum() else "-" for c in site_name.lower())

    @app.get(FEED_PATH)
    def alert_feed() -> ResponseReturnValue:
        if request.args:
            return problem_response(
                400, "the alert feed takes no parameters", kind="invalid-request"
            )
        messages = desk.messages(Scope.PUBLIC)[:MAX_FEED]
        updated = messages[0].sent if messages else now()
        body = atom_feed(
            messages,
            feed_id=f"urn:controlcenter:{slug}:alerts",
            title=f"{site_name} public alerts",
            self_url=request.host_url.rstrip("/") + FEED_PATH,
            updated=updated,
        )
        return Response(body, mimetype=ATOM_MEDIA_TYPE)

    @app.get(FEED_PATH + "/<identifier>")
    def alert_message(identifier: str) -> ResponseReturnValue:
        message = desk.message(identifier[:200], Scope.PUBLIC)
        if message is None:
            return problem_response(404, "no public alert with this identifier", kind="not-found")
        return Response(to_xml(message), mimetype=CAP_MEDIA_TYPE)


class AlertQuery(Query):
    """Which alert messages: a window (default: all), the newest ``limit``, oldest first."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    limit: int = Field(200, ge=1, le=5000)


class AlertInfo(BaseModel):
    """One journaled CAP message (type, identifier, audience, headline, alarm)."""

    time: datetime
    message: str


class AlertList(BaseModel):
    """CAP messages, oldest first."""

    alerts: list[AlertInfo]


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the alerts endpoint (read from the journal: both audiences, across restarts)."""
    bp = blueprint("alerts", "Public alerts (CAP 1.2) sent by the center")

    @bp.get("/alerts", responses={200: AlertList})
    def alerts(query: AlertQuery) -> dict[str, Any]:
        """CAP messages sent to the population and the emergency services, as journaled."""
        require(Permission.VIEW)
        optional_window(query.start, query.end)
        rows = services.history.read_events(
            query.start, query.end, source=SOURCE, limit=query.limit
        )
        return dump(AlertList(alerts=[AlertInfo(time=e.time, message=e.message) for e in rows]))

    api.register_api(bp)
