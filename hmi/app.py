"""The HMI's Dash app: the overview display behind a login, refreshed every second."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dash
from dash import Input, Output

from controlcenter.model import DataType, TagDef, utc_now
from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from hmi.auth import current_session_user, install_authentication
from hmi.formatting import element_id
from hmi.headers import install_security_headers
from hmi.overview import (
    DATA_TIME_ID,
    REFRESH_ID,
    TABLE_BODY_ID,
    TREND_ID,
    data_time_text,
    overview_layout,
    quality_id,
    table_rows,
    tile_class,
    tile_id,
    tile_texts,
    value_id,
)
from hmi.trend import TrendSeries, trend_figure

ASSETS_FOLDER = Path(__file__).parent / "assets"
ASSETS_URL_PATH = "/assets/"
STYLESHEET = ASSETS_URL_PATH + "hmi.css"
MIN_SECRET_KEY_BYTES = 32
"""The session cookie is signed with the secret key; shorter keys could be brute-forced."""

MAX_TREND_TAGS = 4
_NUMERIC = (DataType.FLOAT, DataType.INT)

_log = logging.getLogger(__name__)

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
    live: LiveView,
    history: HistoryReader,
    sessions: LoginSessions,
    journal: EventJournal,
    *,
    site_name: str,
    featured_tags: Sequence[str],
    secret_key: bytes,
    security: HmiSecurity | None = None,
    trend_window: timedelta = timedelta(minutes=30),
) -> dash.Dash:
    """Build the HMI app; serve ``app.server`` (a Flask WSGI app) with ``HmiServer``.

    ``featured_tags`` get a tile each; the trend shows the first numeric one together with the
    following numeric featured tags of the same unit (one y axis). Raises ValueError for an
    unknown featured tag, a short secret key, no host name or a non-positive trend window.
    """
    security = security if security is not None else HmiSecurity()
    if len(secret_key) < MIN_SECRET_KEY_BYTES:
        raise ValueError(f"secret_key must have at least {MIN_SECRET_KEY_BYTES} bytes")
    if not security.host_names:
        raise ValueError("the HMI needs at least one host name")
    if trend_window <= timedelta(0):
        raise ValueError("trend_window must be positive")
    featured = _featured_definitions(live.tags(), featured_tags)
    trended = _trend_tags(featured)

    app = dash.Dash(
        __name__,
        title=site_name,
        # Falsy: the tab keeps the site name instead of flashing "Updating..." every second.
        update_title="",
        assets_folder=str(ASSETS_FOLDER),
        # Operators' networks are closed: every script and stylesheet comes from this server.
        serve_locally=True,
        compress=False,
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
        journal,
        site_name=site_name,
        stylesheet=STYLESHEET,
        public_prefixes=(STYLESHEET,),
        automatic_inputs=(f"{REFRESH_ID}.n_intervals",),
    )

    # A function, so that each page load shows the logged-in user's name and role.
    app.layout = lambda: overview_layout(site_name, featured, current_session_user())

    tile_outputs = [
        output
        for tag in featured
        for output in (
            Output(value_id(tag.name), "children"),
            Output(quality_id(tag.name), "children"),
            Output(tile_id(tag.name), "className"),
        )
    ]

    @app.callback(
        [Output(DATA_TIME_ID, "children"), *tile_outputs], Input(REFRESH_ID, "n_intervals")
    )
    def refresh_tiles(_: int | None) -> list[str]:
        snapshot = live.snapshot()
        texts = [data_time_text(snapshot)]
        for tag in featured:
            sample = snapshot.get(tag.name)
            value, quality = tile_texts(sample)
            texts += [value, quality, tile_class(sample)]
        return texts

    @app.callback(Output(TABLE_BODY_ID, "children"), Input(REFRESH_ID, "n_intervals"))
    def refresh_table(_: int | None) -> list[Any]:
        return table_rows(live.tags(), live.snapshot())

    @app.callback(Output(TREND_ID, "figure"), Input(REFRESH_ID, "n_intervals"))
    def refresh_trend(_: int | None) -> Any:
        return _trend(live, history, trended, trend_window)

    return app


def _featured_definitions(tags: Sequence[TagDef], featured_tags: Sequence[str]) -> list[TagDef]:
    by_name = {tag.name: tag for tag in tags}
    unknown = [name for name in featured_tags if name not in by_name]
    if unknown:
        raise ValueError(f"featured tags not configured: {', '.join(unknown)}")
    ids: dict[str, str] = {}
    for name in featured_tags:
        clash = ids.setdefault(element_id(name), name)
        if clash != name:
            raise ValueError(f"featured tags {clash} and {name} map to the same element id")
    return [by_name[name] for name in featured_tags]


def _trend_tags(featured: Sequence[TagDef]) -> list[TagDef]:
    numeric = [tag for tag in featured if tag.data_type in _NUMERIC]
    if not numeric:
        return []
    unit = numeric[0].unit
    return [tag for tag in numeric if tag.unit == unit][:MAX_TREND_TAGS]


def _trend(
    live: LiveView, history: HistoryReader, trended: Sequence[TagDef], window: timedelta
) -> Any:
    if not trended:
        return trend_figure([], *_empty_window(window), message="No numeric featured tag")
    # The window ends at the newest sample, not at the wall clock: the center may run on a
    # simulated clock that is far ahead of (or behind) real time.
    snapshot = live.snapshot()
    latest = [snapshot.get(tag.name) for tag in trended]
    times = [sample.source_time for sample in latest if sample is not None]
    if not times:
        return trend_figure([], *_empty_window(window), message="Waiting for data")
    end = max(times)
    start = end - window
    try:
        series = [
            TrendSeries(tag.name, tag.unit, history.read_raw(tag.name, start, end))
            for tag in trended
        ]
    except Exception as err:  # any historian failure must show on the display
        _log.exception("trend: reading history failed")
        return trend_figure([], start, end, message=f"History unavailable: {err}")
    return trend_figure(series, start, end)


def _empty_window(window: timedelta) -> tuple[datetime, datetime]:
    # Without any sample there is no data time; the axis then shows the last wall-clock window.
    end = utc_now()
    return end - window, end
