"""Level 4, diagnostics: one line per field device, the abnormal ones first.

Each line says whether the device is reached and healthy (a device down is one line with its
reason, not one line per point), when it was last scanned well and how long ago, its latency,
its errors by kind, its reconnects and outages, the share of scans on time, and the share of
its points per quality. The table is cheap to draw and refreshes every 5 s; it is filtered by
domain (the first part of a device's name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import dash
from dash import Input, Output, dcc, html

from controlcenter.model import Sample, ScanDiagnostics, Severity, User, utc_now
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.guard import acting_user
from hmi.page import Page, PageRequest

TABLE_ID = "diagnostics-table"
DOMAIN_ID = "diagnostics-domain"
REFRESH_ID = "diagnostics-refresh"
SUMMARY_ID = "diagnostics-summary"
REFRESH_MS = 5_000
"""The table is cheap (one snapshot, one list of devices): every 5 s is enough for level 4."""
ALL_DOMAINS = ""


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


def device_rows(
    context: HmiContext,
    diagnostics: Sequence[ScanDiagnostics],
    snapshot: Mapping[str, Sample],
    *,
    domain: str = ALL_DOMAINS,
    now: datetime | None = None,
) -> list[DeviceRow]:
    """The table's lines for ``domain`` (all when empty), abnormal devices first."""
    tags_by_device: dict[str, list[str]] = {}
    for tag in context.tags_by_name().values():
        tags_by_device.setdefault(tag.device, []).append(tag.name)
    # Ages are counted on the center's clock (simulated in the demo), which the samples carry.
    if now is None:
        now = max((s.server_time for s in snapshot.values()), default=utc_now())
    rows = []
    for entry in diagnostics:
        if domain and domain_of(entry.device) != domain:
            continue
        names = tags_by_device.get(entry.device, [])
        counts = {Severity.GOOD: 0, Severity.UNCERTAIN: 0, Severity.BAD: 0}
        for name in names:
            sample = snapshot.get(name)
            severity = sample.quality.severity if sample is not None else Severity.BAD
            counts[severity] += 1
        rows.append(_row(context, entry, names, counts, now))
    rows.sort(key=lambda row: (not row.abnormal, row.state != "Down", row.device))
    return rows


_ASSET_NAMES: dict[int, frozenset[str]] = {}


def _asset_names(context: HmiContext) -> frozenset[str]:
    """The names of the site's assets (kept per context: the site does not change)."""
    names = _ASSET_NAMES.get(id(context))
    if names is None:
        names = _ASSET_NAMES[id(context)] = frozenset(asset.name for asset in context.assets)
    return names


def _row(
    context: HmiContext,
    entry: ScanDiagnostics,
    names: Sequence[str],
    counts: Mapping[Severity, int],
    now: datetime,
) -> DeviceRow:
    if not entry.healthy:
        state = "Down" if not entry.connected else "Failing"
    elif entry.stale_points:
        state = "Stale points"
    else:
        state = "OK"
    not_good = counts[Severity.UNCERTAIN] + counts[Severity.BAD]
    prefixes = {name.rsplit(".", 1)[0] for name in names}
    asset_names = _asset_names(context)
    found: set[str] = set()
    for prefix in prefixes:
        # The asset of a tag is the asset whose name is a dotted prefix of the tag's name.
        part = prefix
        while part:
            if part in asset_names:
                found.add(part)
            part = part.rpartition(".")[0]
    assets = tuple(asset.name for asset in context.assets if asset.name in found)
    age = (now - entry.last_good_scan).total_seconds() if entry.last_good_scan else None
    return DeviceRow(
        device=entry.device,
        domain=domain_of(entry.device),
        state=state,
        abnormal=state != "OK" or not_good > 0,
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
        points=len(names),
        good=counts[Severity.GOOD],
        uncertain=counts[Severity.UNCERTAIN],
        bad=counts[Severity.BAD],
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
    parts = []
    for label, count, css in (
        ("Good", row.good, "q-good"),
        ("Uncertain", row.uncertain, "q-uncertain"),
        ("Bad", row.bad, "q-bad"),
    ):
        if count or label == "Good":
            parts.append(
                html.Span(
                    f"{label} {row.share(count):.0f}%",
                    className=f"diagnostics-share {css}",
                    title=f"{count} of {row.points} points",
                )
            )
    return parts


def render_table(context: HmiContext, rows: Sequence[DeviceRow]) -> Any:
    """The diagnostics table for ``rows``."""
    header = html.Tr(
        [
            html.Th(text)
            for text in (
                "Device",
                "State",
                "Scan",
                "Last good scan",
                "Latency mean / p95",
                "Errors",
                "Reconnects",
                "Outages",
                "On time",
                "Points by quality",
                "Assets",
            )
        ]
    )
    body = []
    for row in rows:
        last_good = (
            f"{context.local_text(row.last_good)} ({_age(row.age_s)})"
            if row.last_good is not None
            else "never"
        )
        state_text = f"{row.state}: {row.reason}" if row.reason else row.state
        body.append(
            html.Tr(
                className="diagnostics-row abnormal" if row.abnormal else "diagnostics-row",
                id={"type": "diagnostics-device", "device": row.device},
                children=[
                    html.Td(row.device, className="diagnostics-device"),
                    html.Td(state_text, className="diagnostics-state"),
                    html.Td(row.mode),
                    html.Td(last_good),
                    html.Td(f"{row.latency_mean_ms:.0f} / {row.latency_p95_ms:.0f} ms"),
                    html.Td(
                        f"{row.failed_scans} failed" + (f" ({row.errors})" if row.errors else "")
                    ),
                    html.Td(str(row.reconnects), className="diagnostics-reconnects"),
                    html.Td(str(row.outages)),
                    html.Td(f"{row.on_time_pct:.1f}%"),
                    html.Td(_quality_cell(row), className="diagnostics-quality"),
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
        body = [html.Tr(html.Td("No devices.", colSpan=11))]
    return html.Table(
        className="diagnostics-table", children=[html.Thead(header), html.Tbody(body)]
    )


MAX_ROWS = 100
"""Devices listed at most (abnormal first); the summary counts them all."""


def _summary(rows: Sequence[DeviceRow]) -> str:
    down = sum(1 for row in rows if row.state == "Down")
    abnormal = sum(1 for row in rows if row.abnormal)
    return f"{len(rows)} devices, {abnormal} abnormal, {down} down"


def _table_and_summary(context: HmiContext, domain: str) -> tuple[Any, str]:
    if context.devices is None:
        return html.P("This center reports no device diagnostics."), ""
    rows = device_rows(
        context, context.devices.diagnostics(), context.live.snapshot(), domain=domain
    )
    # Abnormal devices come first; a city of hundreds of devices shows the first MAX_ROWS
    # (redrawing every row every few seconds in every browser would cost more than it tells).
    shown = rows[:MAX_ROWS]
    table = render_table(context, shown)
    if len(rows) > len(shown):
        rest = rows[len(shown) :]
        abnormal = sum(1 for row in rest if row.abnormal)
        table = html.Div(
            [
                table,
                html.P(
                    f"{len(rest)} more devices ({abnormal} abnormal): choose a domain to see them.",
                    className="diagnostics-more",
                    id="diagnostics-more",
                ),
            ]
        )
    return table, _summary(rows)


def _domains(context: HmiContext) -> list[str]:
    names = {domain_of(tag.device) for tag in context.tags_by_name().values()}
    if context.devices is not None:
        names |= {domain_of(entry.device) for entry in context.devices.diagnostics()}
    return sorted(names)


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The diagnostics display (``?domain=water`` filters it)."""
    domains = _domains(context)
    wanted = request.query.get("domain", ALL_DOMAINS)
    domain = wanted if wanted in domains else ALL_DOMAINS
    table, summary = _table_and_summary(context, domain)
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
                    html.Span(summary, id=SUMMARY_ID, className="diagnostics-summary"),
                ],
            ),
            html.Div(table, id=TABLE_ID),
            dcc.Interval(id=REFRESH_ID, interval=REFRESH_MS),
        ],
    )


def register(app: dash.Dash, context: HmiContext) -> None:
    """Refresh the table every 5 s and when the domain changes."""

    @app.callback(
        Output(TABLE_ID, "children"),
        Output(SUMMARY_ID, "children"),
        Input(REFRESH_ID, "n_intervals"),
        Input(DOMAIN_ID, "value"),
    )
    def refresh(_ticks: int | None, domain: object) -> tuple[Any, str]:
        acting_user(Permission.VIEW_DIAGNOSTICS)
        chosen = domain if isinstance(domain, str) and domain in _domains(context) else ""
        return _table_and_summary(context, chosen)


PAGE = Page(
    path="/diagnostics",
    title="Diagnostics",
    level=4,
    permission=Permission.VIEW_DIAGNOSTICS,
    render=render,
    nav_label="Diagnostics",
    register=register,
)
