"""Login, logout and the guard that keeps every HMI resource behind a login (Flask-Login).

Sessions live on the server (``ports.LoginSessions``): the signed session cookie (HttpOnly,
SameSite=Lax; Secure with the ``__Host-`` prefix under TLS) carries only the session's random
token, so a logout revokes the session for every copy of the cookie, and the server ends
sessions that expired or whose user changed. Logins are throttled by the same port: while a
user name or an address is locked out, the answer is 429 with Retry-After.

Login and logout are POST forms; with SameSite=Lax a cross-site POST carries no session cookie,
and an Origin header naming another site is refused outright (OWASP CSRF Prevention: verifying
origin with standard headers). Every login, refused login, lockout and logout is recorded in
the event journal as an audit event.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from flask import Flask, Response, redirect, request, session
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, login_user, logout_user
from werkzeug.exceptions import SecurityError

from controlcenter.model import Event, EventKind, User, utc_now
from controlcenter.ports import (
    EventJournal,
    LoginRefusedError,
    LoginSessions,
    LoginThrottledError,
)
from hmi.login_page import render_login_page

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
DASH_PREFIX = "/_dash-"
DASH_UPDATE_PATH = "/_dash-update-component"
LIVE_PREFIX = "/live/"
AUDIT_SOURCE = "hmi"
"""The ``source`` of the audit events the HMI records."""

_REFUSED = "Invalid user name or password."
_MAX_LOGGED_NAME = 64

_log = logging.getLogger(__name__)


class SessionUser:
    """A logged-in user as Flask-Login wants it; its id is the server-side session's token."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, user: User, token: str) -> None:
        self.user = user
        self.token = token

    def get_id(self) -> str:
        """The id stored in the session cookie: the session token."""
        return self.token


def current_session_user() -> User | None:
    """The user of the current request, or None when nobody is logged in."""
    # current_user is a werkzeug LocalProxy; isinstance sees through it to the loaded user.
    candidate: object = current_user
    return candidate.user if isinstance(candidate, SessionUser) else None


def _current_token() -> str | None:
    candidate: object = current_user
    return candidate.token if isinstance(candidate, SessionUser) else None


def install_authentication(
    server: Flask,
    sessions: LoginSessions,
    journal: EventJournal,
    *,
    site_name: str,
    stylesheet: str,
    public_prefixes: Sequence[str],
    automatic_inputs: Collection[str] = (),
) -> None:
    """Add login, logout and the login guard to ``server``.

    ``public_prefixes`` are path prefixes served without a login (the login page's stylesheet).
    ``automatic_inputs`` are the Dash inputs (``id.property``) that change without the person
    (the refresh timer): callbacks fired only by them do not count as activity.
    """
    manager = LoginManager()
    manager.init_app(server)
    automatic = frozenset(automatic_inputs)

    @manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(token: str) -> SessionUser | None:
        # Checked on the server at every request: revoked, expired or changed users get nothing.
        user = sessions.resolve(token, activity=_is_activity(automatic))
        return SessionUser(user, token) if user is not None else None

    def login_page(
        user_name: str = "", error: str = "", status: int = 200, retry_after_s: float = 0.0
    ) -> Response:
        page = render_login_page(
            site_name=site_name,
            action=LOGIN_PATH,
            stylesheet=stylesheet,
            user_name=user_name,
            error=error,
        )
        response = Response(page, status=status, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        if retry_after_s > 0:
            response.headers["Retry-After"] = str(max(1, round(retry_after_s)))
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

    def check_host() -> ResponseReturnValue | None:
        # Flask's TRUSTED_HOSTS check runs only when the host is first read; read it before
        # anything else (a redirect, a login) can answer a forged Host.
        try:
            _ = request.host
        except SecurityError:
            return Response("unknown host", status=400, mimetype="text/plain")
        return None

    def guard() -> ResponseReturnValue | None:
        path = request.path
        if path == LOGIN_PATH or any(path.startswith(prefix) for prefix in public_prefixes):
            return None
        if current_session_user() is not None:
            return None
        if path.startswith(DASH_PREFIX) or path.startswith(LIVE_PREFIX):
            # The page's scripts cannot follow a redirect to a form; tell them plainly.
            return Response("login required", status=401, mimetype="text/plain")
        return redirect(LOGIN_PATH)

    def login() -> ResponseReturnValue:
        if request.method != "POST":  # GET, or HEAD (which must not count as a login)
            if current_session_user() is not None:
                return redirect("/")
            return login_page()
        if not _same_origin():
            return Response("cross-site request refused", status=403, mimetype="text/plain")
        name = request.form.get("username", "")
        password = request.form.get("password", "")
        shown_name = name[:_MAX_LOGGED_NAME]
        address = request.remote_addr or "unknown"
        try:
            grant = sessions.log_in(name, password, address)
        except LoginThrottledError as err:
            _log.debug("HMI login for %r from %s refused unchecked: %s", shown_name, address, err)
            message = f"Too many refused logins: try again in {max(1, round(err.retry_after_s))} s."
            return login_page(
                user_name=shown_name, error=message, status=429, retry_after_s=err.retry_after_s
            )
        except LoginRefusedError as err:
            record(f"login refused for {shown_name!r} from {address}", shown_name)
            _log.warning("HMI login refused for %r from %s", shown_name, address)
            for lockout in err.lockouts:
                record(f"login {lockout} (from {address})", shown_name)
            return login_page(user_name=shown_name, error=_REFUSED, status=401)
        # A fresh cookie session: nothing from before the login survives into it.
        session.clear()
        login_user(SessionUser(grant.user, grant.session_token))
        record(f"login as {grant.user.role.value} from {address}", grant.user.name)
        return redirect("/")

    def logout() -> ResponseReturnValue:
        if not _same_origin():
            return Response("cross-site request refused", status=403, mimetype="text/plain")
        token = _current_token()
        if token is not None:
            # Revoked on the server: a copy of the cookie is worthless from now on.
            user = sessions.log_out(token)
            if user is not None:
                record(f"logout from {request.remote_addr}", user.name)
        logout_user()
        session.clear()
        return redirect(LOGIN_PATH)

    # The host check must run before the guard (and anything else) answers.
    server.before_request_funcs.setdefault(None, []).insert(0, check_host)
    server.before_request(guard)
    server.add_url_rule(LOGIN_PATH, "hmi_login", login, methods=["GET", "POST"])
    server.add_url_rule(LOGOUT_PATH, "hmi_logout", logout, methods=["POST"])


def _is_activity(automatic: frozenset[str]) -> bool:
    """Whether the current request comes from the person rather than a refresh timer."""
    if request.path.startswith(LIVE_PREFIX):
        return False  # the live stream's (re)connections are the page's, not the person's
    if request.path != DASH_UPDATE_PATH:
        return True
    body = request.get_json(silent=True)
    changed = body.get("changedPropIds") if isinstance(body, dict) else None
    if not isinstance(changed, list):
        return True
    return any(not isinstance(one, str) or one not in automatic for one in changed)


def _same_origin() -> bool:
    """Whether a state-changing request comes from a page of this server (or a non-browser)."""
    origin = request.headers.get("Origin")
    # Browsers send Origin on every POST; clients without it (scripts, curl) are not CSRF vectors.
    return origin is None or origin == request.host_url.rstrip("/")


def user_for_environ(server: Flask, environ: dict[str, object]) -> User | None:
    """The logged-in user of a request given as a WSGI environ (the live stream, served beside
    the WSGI app), with the same host check and session rules as every other request."""
    with server.request_context(environ):
        try:
            _ = request.host
        except SecurityError:
            return None
        return current_session_user()
