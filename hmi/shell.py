"""The frame around every display: the fixed header (site, local time, user and role, the
navigation), the alarm banner, and the router that draws the display of the URL.

Every display has its own URL; links change it without reloading the page (``dcc.Link``), so the
browser's back and forward buttons move between displays. The router checks the display's
permission on the server; a display's own callbacks check again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import dash
from dash import Input, Output, State, dcc, html

from controlcenter.model import User
from controlcenter.permissions import allows
from hmi.auth import LOGOUT_PATH, current_session_user
from hmi.banner import BANNER_ID, render_banner
from hmi.context import HmiContext
from hmi.guard import viewing_user
from hmi.live import data_attributes
from hmi.page import Page, PageRequest

URL_ID = "url"
PAGE_ID = "page"
ALARM_VERSION_ID = "alarm-version"
"""A store the live stream bumps (``assets/live.js``) whenever an alarm changes."""
BANNER_TICK_ID = "banner-tick"
BANNER_FALLBACK_MS = 10_000
"""The banner also refreshes this often, should the stream be down."""
CLOCK_ID = "site-clock"


def shell_layout(context: HmiContext, pages: Sequence[Page], user: User | None) -> Any:
    """The whole page; the display itself is drawn by the router callback."""
    return html.Div(
        className="hmi",
        children=[
            dcc.Location(id=URL_ID, refresh=False),
            dcc.Store(id=ALARM_VERSION_ID, data=0),
            dcc.Interval(id=BANNER_TICK_ID, interval=BANNER_FALLBACK_MS),
            _header(context, pages, user),
            html.Div(id=BANNER_ID, className="alarm-banner"),
            html.Main(id=PAGE_ID, className="display"),
        ],
    )


def _header(context: HmiContext, pages: Sequence[Page], user: User | None) -> Any:
    now = context.now()
    links = [
        dcc.Link(page.nav_label, href=page.path, className="nav-link", id=f"nav-{_slug(page)}")
        for page in pages
        if page.nav_label and (user is None or allows(user, page.permission))
    ]
    who: list[Any] = []
    if user is not None:
        who = [
            html.Span(user.name, className="user-name", id="user-name"),
            html.Span(user.role.value, className="user-role", id="user-role"),
            html.Form(
                action=LOGOUT_PATH,
                method="post",
                className="logout-form",
                children=[html.Button("Log out", type="submit", className="logout-button")],
            ),
        ]
    return html.Header(
        className="header",
        children=[
            html.Div(
                className="header-top",
                children=[
                    dcc.Link(context.site_name, href="/", className="site-name"),
                    html.Span(
                        context.local_text(now),
                        id=CLOCK_ID,
                        className="site-clock",
                        title=f"Time in {context.timezone.key}",
                        # The center's time (simulated in the demo), ticked on in the browser.
                        **data_attributes(
                            {
                                "data-tz": context.timezone.key,
                                "data-center-ms": str(round(now.timestamp() * 1000)),
                                "data-speed": f"{context.clock_speed:g}",
                            }
                        ),
                    ),
                    html.Div(className="user", children=who),
                ],
            ),
            html.Nav(className="nav", children=links),
        ],
    )


def _slug(page: Page) -> str:
    return page.path.strip("/").replace("/", "-") or "overview"


def find_page(pages: Sequence[Page], path: str) -> tuple[Page, str] | None:
    """The display of ``path`` and its tail, or None."""
    for page in pages:
        tail = page.matches(path)
        if tail is not None:
            return page, tail
    return None


def install_shell(app: dash.Dash, context: HmiContext, pages: Sequence[Page]) -> None:
    """The router and the banner's callbacks, and every display's own callbacks."""

    @app.callback(
        Output(PAGE_ID, "children"),
        Input(URL_ID, "pathname"),
        State(URL_ID, "search"),
    )
    def route(pathname: str | None, search: str | None) -> Any:
        user = viewing_user()
        path = pathname or "/"
        found = find_page(pages, path)
        if found is None:
            return _message("No such display", f"There is no display at {path}.")
        page, tail = found
        if not allows(user, page.permission):
            return _message(
                "Not permitted",
                f"{page.title} needs the {page.permission.value} permission; "
                f"{user.name} is {user.role.value}.",
            )
        query = dict(parse_qsl((search or "").lstrip("?"), keep_blank_values=True))
        return html.Div(
            className=f"display-level-{page.level}",
            children=[page.render(context, user, PageRequest(path, tail, query))],
        )

    @app.callback(
        Output(BANNER_ID, "children"),
        Input(ALARM_VERSION_ID, "data"),
        Input(BANNER_TICK_ID, "n_intervals"),
    )
    def banner(_version: int | None, _tick: int | None) -> Any:
        return render_banner(context, viewing_user())

    for page in pages:
        if page.register is not None:
            page.register(app, context)


def automatic_inputs() -> tuple[str, ...]:
    """Inputs that change without the person (they do not keep a session alive)."""
    # The trend's follow timer appends new points: a trend left open is no activity.
    return (
        f"{ALARM_VERSION_ID}.data",
        f"{BANNER_TICK_ID}.n_intervals",
        "trends-follow.n_intervals",
    )


def _message(title: str, text: str) -> Any:
    return html.Section(className="panel message", children=[html.H2(title), html.P(text)])


def page_user() -> User | None:
    """The user a page layout is drawn for (None while Dash validates the layout)."""
    return current_session_user()
