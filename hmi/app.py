"""The HMI's Dash app: every display behind a login, kept current by the live stream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dash

from controlcenter.live import LiveHub
from controlcenter.ports import LoginSessions
from hmi.auth import install_authentication, user_for_environ
from hmi.context import HmiContext
from hmi.guard import install_refusals
from hmi.headers import install_security_headers
from hmi.live import STREAM_PATH, stream_endpoint
from hmi.pages import all_pages
from hmi.server import ASGI_ROUTES_EXTENSION, LIVE_HUB_EXTENSION
from hmi.shell import automatic_inputs, install_shell, page_user, shell_layout

ASSETS_FOLDER = Path(__file__).parent / "assets"
ASSETS_URL_PATH = "/assets/"
STYLESHEET = ASSETS_URL_PATH + "hmi.css"
MIN_SECRET_KEY_BYTES = 32
"""The session cookie is signed with the secret key; shorter keys could be brute-forced."""


LOCAL_HOST_NAMES = ("localhost", "127.0.0.1")
"""Host names every HMI answers to (IPv6 literals are not matched by Flask's host check)."""


@dataclass(frozen=True, slots=True)
class HmiSecurity:
    """How the HMI is reached: over TLS or not, and by which host names."""

    tls: bool = False
    """Served over HTTPS: Secure ``__Host-`` session cookie and Strict-Transport-Security."""
    host_names: tuple[str, ...] = LOCAL_HOST_NAMES
    """Host header values accepted (port ignored; ".example.org" accepts its subdomains);
    any other Host gets 400, so that links and redirects never point to a forged name."""


def create_hmi(
    context: HmiContext,
    sessions: LoginSessions,
    *,
    secret_key: bytes,
    security: HmiSecurity | None = None,
    hub: LiveHub | None = None,
) -> dash.Dash:
    """Build the HMI app; serve it with ``HmiServer``.

    ``hub`` feeds the live stream: the center subscribes it to its bus and alarm service
    (without one, displays show the values of the moment they were drawn). Raises ValueError
    for an unknown featured tag, a short secret key or no host name.
    """
    security = security if security is not None else HmiSecurity()
    if len(secret_key) < MIN_SECRET_KEY_BYTES:
        raise ValueError(f"secret_key must have at least {MIN_SECRET_KEY_BYTES} bytes")
    if not security.host_names:
        raise ValueError("the HMI needs at least one host name")
    unknown = [name for name in context.featured if name not in context.tags_by_name()]
    if unknown:
        raise ValueError(f"featured tags not configured: {', '.join(unknown)}")
    hub = hub if hub is not None else LiveHub()
    pages = all_pages()

    app = dash.Dash(
        __name__,
        title=context.site_name,
        # Falsy: the tab keeps the site name instead of flashing "Updating..." at each update.
        update_title="",
        assets_folder=str(ASSETS_FOLDER),
        # Operators' networks are closed: every script and stylesheet comes from this server.
        serve_locally=True,
        compress=False,
        # Displays are drawn by the router: their components are not in the first layout.
        suppress_callback_exceptions=True,
    )
    server = app.server
    server.secret_key = secret_key
    server.config.update(
        # The __Host- prefix makes browsers refuse the cookie unless it is Secure, for this
        # host only and for every path (RFC 6265bis 4.1.3.2): only possible over HTTPS.
        SESSION_COOKIE_NAME=(
            "__Host-controlcenter_session" if security.tls else "controlcenter_session"
        ),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=security.tls,
        TRUSTED_HOSTS=list(security.host_names),
    )
    install_security_headers(server, tls=security.tls)
    install_authentication(
        server,
        sessions,
        context.journal,
        site_name=context.site_name,
        stylesheet=STYLESHEET,
        public_prefixes=(STYLESHEET,),
        automatic_inputs=automatic_inputs(),
    )
    install_refusals(server, context.journal)
    server.extensions[LIVE_HUB_EXTENSION] = hub
    server.extensions[ASGI_ROUTES_EXTENSION] = {
        STREAM_PATH: stream_endpoint(
            hub, context.live, lambda environ: user_for_environ(server, environ)
        )
    }

    # A function, so that each page load shows the logged-in user's name, role and links.
    app.layout = lambda: shell_layout(context, pages, page_user())
    install_shell(app, context, pages)
    return app
