"""The server-side check at the top of every callback: who is asking, and may they?

Hiding a button is a courtesy; this is the rule. A callback sent by hand (a forged
``_dash-update-component`` request) meets the same check as a click: a user without the
permission gets 403 and the refusal is journaled (``install_refusals``).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from controlcenter.model import Event, EventKind, User, utc_now
from controlcenter.permissions import Permission, PermissionDeniedError, require
from controlcenter.ports import EventJournal
from hmi.auth import AUDIT_SOURCE, current_session_user

_log = logging.getLogger(__name__)


def acting_user(permission: Permission) -> User:
    """The logged-in user when they hold ``permission``; raises PermissionDeniedError."""
    return require(current_session_user(), permission)


def viewing_user() -> User:
    """The logged-in user (any role may look); raises PermissionDeniedError without one."""
    return require(current_session_user(), Permission.VIEW)


def install_refusals(server: Flask, journal: EventJournal) -> None:
    """Answer a PermissionDeniedError with 403 and journal it as an audit event."""

    def refused(error: PermissionDeniedError) -> Response:
        user = error.user.name if error.user is not None else ""
        message = f"refused {request.path}: {error}"
        _log.warning("HMI %s", message)
        journal.record(Event(utc_now(), EventKind.AUDIT, AUDIT_SOURCE, message[:500], user=user))
        return Response(str(error), status=403, mimetype="text/plain")

    server.register_error_handler(PermissionDeniedError, refused)
