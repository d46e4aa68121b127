"""Login, logout and the guard that keeps every HMI resource behind a login (Flask-Login).

The session is Flask's signed cookie (HttpOnly, SameSite=Lax). Login and logout are POST forms;
with SameSite=Lax a cross-site POST carries no session cookie, and an Origin header naming another
site is refused outright (OWASP CSRF Prevention: verifying origin with standard headers). Every
login, refused login and logout is recorded in the event journal as an audit event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import Flask, Response, redirect, request, session
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, login_user, logout_user

from controlcenter.model import Event, EventKind, User, utc_now
from controlcenter.ports import AuthenticationError, Authenticator, EventJournal
from hmi.login_page import render_login_page

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
DASH_PREFIX = "/_dash-"
AUDIT_SOURCE = "hmi"
"""The ``source`` of the audit events the HMI records."""

_REFUSED = "Invalid user name or password."
_MAX_LOGGED_NAME = 64

_log = logging.getLogger(__name__)


class SessionUser:
    """A logged-in user as Flask-Login wants it (is_authenticated, get_id...)."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        """The id stored in the session: the user name."""
        return self.user.name


def current_session_user() -> User | None:
    """The user of the current request, or None when nobody is logged in."""
    # current_user is a werkzeug LocalProxy; isinstance sees through it to the loaded user.
    candidate: object = current_user
    return candidate.user if isinstance(candidate, SessionUser) else None


def install_authentication(
    server: Flask,
    auth: Authenticator,
    journal: EventJournal,
    *,
    site_name: str,
    stylesheet: str,
    public_prefixes: Sequence[str],
) -> None:
    """Add login, logout and the login guard to ``server``.

    ``public_prefixes`` are path prefixes served without a login (the login page's stylesheet).
    """
    manager = LoginManager()
    manager.init_app(server)

    @manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(name: str) -> SessionUser | None:
        # A user removed from the store loses access at the next request.
        try:
            return SessionUser(auth.get_user(name))
        except KeyError:
            return None

    def login_page(user_name: str = "", error: str = "", status: int = 200) -> Response:
        page = render_login_page(
            site_name=site_name,
            action=LOGIN_PATH,
            stylesheet=stylesheet,
            user_name=user_name,
            error=error,
        )
        response = Response(page, status=status, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    def record(message: str, user: str) -> None:
        journal.record(
            Event(
                time=utc_now(),
                kind=EventKind.AUDIT,
                source=AUDIT_SOURCE,
                message=message,
                user=user,
            )
        )

    def guard() -> ResponseReturnValue | None:
        path = request.path
        if path == LOGIN_PATH or any(path.startswith(prefix) for prefix in public_prefixes):
            return None
        if current_session_user() is not None:
            return None
        if path.startswith(DASH_PREFIX):
            # The page's scripts cannot follow a redirect to a form; tell them plainly.
            return Response("login required", status=401, mimetype="text/plain")
        return redirect(LOGIN_PATH)

    def login() -> ResponseReturnValue:
        if request.method == "GET":
            if current_session_user() is not None:
                return redirect("/")
            return login_page()
        if not _same_origin():
            return Response("cross-site request refused", status=403, mimetype="text/plain")
        name = request.form.get("username", "")
        password = request.form.get("password", "")
        shown_name = name[:_MAX_LOGGED_NAME]
        try:
            user = auth.authenticate(name, password)
        except AuthenticationError:
            record(f"login refused for {shown_name!r} from {request.remote_addr}", shown_name)
            _log.warning("HMI login refused for %r from %s", shown_name, request.remote_addr)
            return login_page(user_name=shown_name, error=_REFUSED, status=401)
        # A fresh session: nothing from before the login survives into it.
        session.clear()
        login_user(SessionUser(user))
        record(f"login as {user.role.value} from {request.remote_addr}", user.name)
        return redirect("/")

    def logout() -> ResponseReturnValue:
        if not _same_origin():
            return Response("cross-site request refused", status=403, mimetype="text/plain")
        user = current_session_user()
        if user is not None:
            record(f"logout from {request.remote_addr}", user.name)
        logout_user()
        session.clear()
        return redirect(LOGIN_PATH)

    server.before_request(guard)
    server.add_url_rule(LOGIN_PATH, "hmi_login", login, methods=["GET", "POST"])
    server.add_url_rule(LOGOUT_PATH, "hmi_logout", logout, methods=["POST"])


def _same_origin() -> bool:
    """Whether a state-changing request comes from a page of this server (or a non-browser)."""
    origin = request.headers.get("Origin")
    # Browsers send Origin on every POST; clients without it (scripts, curl) are not CSRF vectors.
    return origin is None or origin == request.host_url.rstrip("/")
