"""Level 4, diagnostics: one line per field device, the abnormal ones first.

Each line says whether the device is reached and healthy (a device down is one line with its
reason, not one line per point), when it was last scanned well and how long ago, its latency,
its errors by kind, its reconnects and outages, the share of scans on time, and the share of
its points per quality. It is filtered by domain (the first part of a device's name) and shown
a page of ``PAGE_SIZE`` devices at a time, abnormal devices first: every device is on a page,
and the summary counts them all.

The table stays small on purpose: the browser's cost of drawing a display grows faster than its
number of elements (a hundred devices as 1,400 elements take seconds to appear), so a row is
seven cells and a page twenty rows. What a render needs from the site (each device's points and
assets, the domains) is indexed once per site; a render reads the live snapshot and the
devices' diagnostics once each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import dash
from dash import Input, Output, State, dcc, html

from controlcenter.model import Sample, ScanDiagnostics, Severity, User, utc_now
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.guard import acting_user
from hmi.page import Page, PageRequest

TABLE_ID = "diagnostics-table"
DOMAIN_ID = "diagnostics-domain"
REFRESH_ID = "diagnostics-refresh"
SUMMARY_ID = "diagnostics-summary"
PAGE_STORE_ID = "diagnostics-page"
PREVIOUS_ID = "diagnostics-previous"
NEXT_ID = "diagnostics-next"
REFRESH_MS = 5_000
"""The table is cheap (one snapshot, one list of devices): every 5 s is enough for level 4."""
ALL_DOMAINS = ""
PAGE_SIZE = 20
"""Devices per page of the table (abnormal first); the summary counts them all."""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device's line of the diagnostics table."""

    device: str
    domain: str
    state: str
    """``OK``, ``Down``, ``Failing`` or ``Stale points``: a word, never a colour alone."""
    abnormal: bool
    reason: str
    mode: str
    last_good: datetime | None
    age_s: float | None
    """Seconds since the last good scan on the center's clock (None: never)."""
    latency_mean_ms: float
    latency_p95_ms: float
    failed_scans: int
    errors: str
    """Failed scans by kind, e.g. ``not_connected 4, timeout 1``."""
    reconnects: int
    outages: int
    on_time_pct: float
    points: int
    good: int
    uncertain: int
    bad: int
    assets: tuple[str, ...]

    def share(self, count: int) -> float:
        """``count`` of the device's points in percent (0 without points)."""
        return 100.0 * count / self.points if self.points else 0.0


def domain_of(device: str) -> str:
    """The domain of a device: the first part of its name (``water`` of ``water.rtu1``)."""
    return device.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class SiteDevices:
    """What the table needs from the site, per device: its points and its assets."""

    tag_count: int
    points: Mapping[str, tuple[str, ...]]
    """Device → the names of the tags read from it."""
    assets: Mapping[str, tuple[str, ...]]
    """Device → the assets its tags belong to, in the site's order."""
    domains: frozenset[str]
    """The domains of the site's tags' devices."""


def index_devices(context: HmiContext) -> SiteDevices:
    """Each device's points and assets, from the site's tags and assets (one pass)."""
    tags = context.tags_by_name()
    points: dict[str, list[str]] = {}
    for tag in tags.values():
        points.setdefault(tag.device, []).append(tag.name)
    order = {asset.name: number for number, asset in enumerate(context.assets)}
    assets: dict[str, tuple[str, ...]] = {}
    for device, names in points.items():
        found: set[str] = set()
        for prefix in {name.rsplit(".", 1)[0] for name in names}:
            # The asset of a tag is the asset whose name is a dotted prefix of the tag's name.
            part = prefix
            while part:
                if part in order:
                    found.add(part)
                part = part.rpartition(".")[0]
        assets[device] = tuple(sorted(found, key=order.__getitem__))
    return SiteDevices(
        tag_count=len(tags),
        points={device: tuple(names) for device, names in points.items()},
        assets=assets,
        domains=frozenset(domain_of(device) for device in points),
    )


_SITE_DEVICES: dict[int, SiteDevices] = {}


def site_devices(context: HmiContext) -> SiteDevices:
    """The context's device index, rebuilt only when its tags change (calculated tags)."""
    cached = _SITE_DEVICES.get(id(context))
    if cached is None or cached.tag_count != len(context.live.tags()):
        cached = _SITE_DEVICES[id(context)] = index_devices(context)
    return cached


def device_rows(
    context: HmiContext,
    diagnostics: Sequence[ScanDiagnostics],
    snapshot: Mapping[str, Sample],
    *,
    domain: str = ALL_DOMAINS,
    now: datetime | None = None,
) -> list[DeviceRow]:
    """The table's lines for ``domain`` (all when empty), abnormal devices first."""
    index = site_devices(context)
    # Ages are counted on the center's clock (simulated in the demo), which the samples carry.
    if now is None:
        now = max((s.server_time for s in snapshot.values()), default=utc_now())
    rows = []
    for entry in diagnostics:
        if domain and domain_of(entry.device) != domain:
            continue
        names = index.points.get(entry.device, ())
        good = uncertain = bad = 0
        for name in names:
            sample = snapshot.get(name)
            severity = sample.quality.severity if sample is not None else Severity.BAD
            if severity is Severity.GOOD:
                good += 1
            elif severity is Severity.UNCERTAIN:
                uncertain += 1
            else:
                bad += 1
        assets = index.assets.get(entry.device, ())
        rows.append(_row(entry, len(names), (good, uncertain, bad), assets, now))
    rows.sort(key=lambda row: (not row.abnormal, row.state != "Down", row.device))
    return rows


def _row(
    entry: ScanDiagnostics,
    points: int,
    counts: tuple[int, int, int],
    assets: tuple[str, ...],
    now: datetime,
) -> DeviceRow:
    if not entry.healthy:
        state = "Down" if not entry.connected else "Failing"
    elif entry.stale_points:
        state = "Stale points"
    else:
        state = "OK"
    good, uncertain, bad = counts
    age = (now - entry.last_good_scan).total_seconds() if entry.last_good_scan else None
    return DeviceRow(
        device=entry.device,
        domain=domain_of(entry.device),
        state=state,
        abnormal=state != "OK" or uncertain + bad > 0,
        reason=entry.last_error if not entry.healthy else "",
        mode=entry.mode.value,
        last_good=entry.last_good_scan,
        age_s=max(age, 0.0) if age is not None else None,
        latency_mean_ms=entry.latency_mean_ms,
        latency_p95_ms=entry.latency_p95_ms,
        failed_scans=entry.failed_scans,
        errors=", ".join(f"{kind} {n}" for kind, n in sorted(entry.errors_by_kind.items())),
        reconnects=entry.reconnects,
        outages=entry.outages,
        on_time_pct=entry.on_time_pct,
        points=points,
        good=good,
        uncertain=uncertain,
        bad=bad,
        assets=assets,
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7_200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3_600:.1f} h ago"


def _quality_cell(row: DeviceRow) -> Any:
    shares = [
        (label, count)
        for label, count in (("Good", row.good), ("Uncertain", row.uncertain), ("Bad", row.bad))
        if count or label == "Good"
    ]
    # One cell of words (its colour the worst quality present): a span per share would triple
    # the elements of a row.
    worst = "q-bad" if row.bad else "q-uncertain" if row.uncertain else "q-good"
    return html.Td(
        " · ".join(f"{label} {row.share(count):.0f}%" for label, count in shares),
        className=f"diagnostics-quality {worst}",
        title=", ".join(f"{count} {label}" for label, count in shares) + f" of {row.points} points",
    )


HEADINGS = (
    "Device",
    "State",
    "Last good scan",
    "Scan (mode, latency mean / p95, on time)",
    "Errors",
    "Points by quality",
    "Assets",
)


def render_table(context: HmiContext, rows: Sequence[DeviceRow]) -> Any:
    """The diagnostics table for ``rows`` (seven cells a row)."""
    body = []
    for row in rows:
        last_good = (
            f"{context.local_text(row.last_good)} ({_age(row.age_s)})"
            if row.last_good is not None
            else "never"
        )
        state_text = f"{row.state}: {row.reason}" if row.reason else row.state
        failed = f"{row.failed_scans} failed" + (f" ({row.errors})" if row.errors else "")
        body.append(
            html.Tr(
                className="diagnostics-row abnormal" if row.abnormal else "diagnostics-row",
                children=[
                    html.Td(row.device, className="diagnostics-device"),
                    html.Td(state_text, className="diagnostics-state"),
                    html.Td(last_good),
                    html.Td(
                        f"{row.mode}, {row.latency_mean_ms:.0f} / {row.latency_p95_ms:.0f} ms, "
                        f"{row.on_time_pct:.1f}% on time"
                    ),
                    html.Td(
                        f"{failed}, {row.reconnects} reconnects, {row.outages} outages",
                        className="diagnostics-errors",
                    ),
                    _quality_cell(row),
                    html.Td(
                        [
                            dcc.Link(
                                name, href=f"/asset/{quote(name)}", className="diagnostics-asset"
                            )
                            for name in row.assets
                        ]
                    ),
                ],
            )
        )
    if not body:
        body = [html.Tr(html.Td("No devices.", colSpan=len(HEADINGS)))]
    return html.Table(
        className="diagnostics-table",
        children=[html.Thead(html.Tr([html.Th(text) for text in HEADINGS])), html.Tbody(body)],
    )


def _summary(rows: Sequence[DeviceRow]) -> str:
    down = sum(1 for row in rows if row.state == "Down")
    abnormal = sum(1 for row in rows if row.abnormal)
    return f"{len(rows)} devices, {abnormal} abnormal, {down} down"


def page_count(devices: int) -> int:
    """Pages of ``PAGE_SIZE`` devices (at least one: no devices is one empty page)."""
    return max(1, math.ceil(devices / PAGE_SIZE))


@dataclass(frozen=True, slots=True)
class TableView:
    """One page of the table, the summary of every device, and which page it is."""

    table: Any
    summary: str
    page: int
    """0-based, within the pages there are."""
    pages: int


def table_view(
    context: HmiContext,
    domain: str,
    page: int,
    diagnostics: Sequence[ScanDiagnostics] | None = None,
) -> TableView:
    """Page ``page`` (0-based, clamped) of the devices of ``domain``, abnormal first."""
    if context.devices is None:
        return TableView(html.P("This center reports no device diagnostics."), "", 0, 1)
    entries = context.devices.diagnostics() if diagnostics is None else diagnostics
    rows = device_rows(context, entries, context.live.snapshot(), domain=domain)
    pages = page_count(len(rows))
    page = min(max(page, 0), pages - 1)
    first = page * PAGE_SIZE
    shown = rows[first : first + PAGE_SIZE]
    table = render_table(context, shown)
    if len(rows) > len(shown):
        others = [*rows[:first], *rows[first + len(shown) :]]
        abnormal = sum(1 for row in others if row.abnormal)
        table = html.Div(
            [
                html.P(
                    f"Devices {first + 1} to {first + len(shown)} of {len(rows)}, abnormal first "
                    f"(page {page + 1} of {pages}); {len(others)} on other pages "
                    f"({abnormal} abnormal).",
                    className="diagnostics-more",
                    id="diagnostics-more",
                ),
                table,
            ]
        )
    return TableView(table, _summary(rows), page, pages)


def _domains(context: HmiContext, diagnostics: Sequence[ScanDiagnostics]) -> list[str]:
    names = set(site_devices(context).domains)
    names |= {domain_of(entry.device) for entry in diagnostics}
    return sorted(names)


def _page_number(text: str | None) -> int:
    """The 0-based page of a ``?page=`` parameter (1-based; anything else is the first)."""
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 6:
        return 0
    return max(int(text) - 1, 0)


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The diagnostics display (``?domain=water`` filters it, ``?page=2`` turns the page)."""
    diagnostics = context.devices.diagnostics() if context.devices is not None else []
    domains = _domains(context, diagnostics)
    wanted = request.query.get("domain", ALL_DOMAINS)
    domain = wanted if wanted in domains else ALL_DOMAINS
    view = table_view(context, domain, _page_number(request.query.get("page")), diagnostics)
    return html.Section(
        className="panel diagnostics",
        children=[
            html.H2("Diagnostics"),
            html.Div(
                className="diagnostics-controls",
                children=[
                    html.Label("Domain", htmlFor=DOMAIN_ID),
                    dcc.Dropdown(
                        id=DOMAIN_ID,
                        options=[{"label": "All", "value": ALL_DOMAINS}]
                        + [{"label": name, "value": name} for name in domains],
                        value=domain,
                        clearable=False,
                        className="diagnostics-domain",
                    ),
                    html.Span(view.summary, id=SUMMARY_ID, className="diagnostics-summary"),
                    html.Button(
                        "Previous page",
                        id=PREVIOUS_ID,
                        className="diagnostics-page-button",
                        disabled=view.page == 0,
                    ),
                    html.Button(
                        "Next page",
                        id=NEXT_ID,
                        className="diagnostics-page-button",
                        disabled=view.page >= view.pages - 1,
                    ),
                ],
            ),
            dcc.Store(id=PAGE_STORE_ID, data=view.page),
            html.Div(view.table, id=TABLE_ID),
            dcc.Interval(id=REFRESH_ID, interval=REFRESH_MS),
        ],
    )


def refreshed(
    context: HmiContext, domain: object, page: object, triggered: object
) -> tuple[Any, str, int, bool, bool]:
    """The refresh's outputs: the table, the summary, the page shown and whether the previous
    and next buttons are disabled. ``domain`` and ``page`` come from the browser: a forged
    domain shows every device, a forged page the first."""
    diagnostics = context.devices.diagnostics() if context.devices is not None else []
    chosen = domain if isinstance(domain, str) and domain in _domains(context, diagnostics) else ""
    number = page if isinstance(page, int) and not isinstance(page, bool) else 0
    if triggered == DOMAIN_ID:
        number = 0
    elif triggered == PREVIOUS_ID:
        number -= 1
    elif triggered == NEXT_ID:
        number += 1
    view = table_view(context, chosen, number, diagnostics)
    return view.table, view.summary, view.page, view.page == 0, view.page >= view.pages - 1


def register(app: dash.Dash, context: HmiContext) -> None:
    """Refresh the table every 5 s, when the domain changes and when the page is turned."""

    @app.callback(
        Output(TABLE_ID, "children"),
        Output(SUMMARY_ID, "children"),
        Output(PAGE_STORE_ID, "data"),
        Output(PREVIOUS_ID, "disabled"),
        Output(NEXT_ID, "disabled"),
        Input(REFRESH_ID, "n_intervals"),
        Input(DOMAIN_ID, "value"),
        Input(PREVIOUS_ID, "n_clicks"),
        Input(NEXT_ID, "n_clicks"),
        State(PAGE_STORE_ID, "data"),
        # The router has just drawn the table: redrawing it at once would double the cost of
        # opening the display.
        prevent_initial_call=True,
    )
    def refresh(
        _ticks: int | None,
        domain: object,
        _previous: int | None,
        _next: int | None,
        page: object,
    ) -> tuple[Any, str, int, bool, bool]:
        acting_user(Permission.VIEW_DIAGNOSTICS)
        return refreshed(context, domain, page, dash.ctx.triggered_id)


PAGE = Page(
    path="/diagnostics",
    title="Diagnostics",
    level=4,
    permission=Permission.VIEW_DIAGNOSTICS,
    render=render,
    nav_label="Diagnostics",
    register=register,
)
