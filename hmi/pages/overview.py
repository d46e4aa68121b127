"""The city at a glance (ISA-101 level 1): per domain the few figures that matter, the alarms
by area and priority, the devices' health in one line per domain, and a small map.

Single values (the plant's outflow, the heat plant's temperatures) are live elements kept
current by the stream. Figures over many tags (the lowest reservoir, pumps running, lamps on,
zones in comfort) are computed on the server by the pure functions below from the live
snapshot, and refreshed every ``REFRESH_MS``: an aggregate over hundreds of tags need not move
every second, and computing it in the browser would mean streaming every tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dash
from dash import Input, Output, dcc, html

from controlcenter.automation import AlarmDef, AlarmKind, AlarmPriority, AlarmState, AssetDef
from controlcenter.model import Sample, ScanDiagnostics, Severity, User
from controlcenter.permissions import Permission, allows
from hmi.context import HmiContext
from hmi.guard import viewing_user
from hmi.live import data_attributes, live_value, numeric
from hmi.map_image import alt_text, compact_map_svg, svg_data_uri
from hmi.map_svg import marker_states
from hmi.page import Page, PageRequest

REFRESH_MS = 10_000
"""Aggregates move slowly; ten seconds keeps twenty open overviews cheap."""
COMFORT_BAND_K = 1.5
"""A zone is in comfort within this many kelvin of its setpoint."""
TICK_ID = "overview-tick"
MAP_ID = "overview-map"
ALARMS_ID = "overview-alarms"
HEALTH_ID = "overview-health"

DOMAINS: tuple[tuple[str, str, str], ...] = (
    ("water", "Water", "/water"),
    ("lights", "Streetlights", "/lighting"),
    ("heat", "Heating", "/heating"),
    ("bldg", "Buildings", "/buildings"),
)
"""(tag prefix, heading, level-2 display) of each domain, in the order shown."""

_PUMP_RUNNING = re.compile(r"\.pump\d*\.running$|\.pump_running$")
_PUMP_FAULT = re.compile(r"\.pump\d*\.fault$")
_ZONE_TEMP = re.compile(r"^(.*\.z\d+)\.temp$")
_PUMP_ENDINGS = ("running", ".fault")


# --- figures: pure functions of the snapshot ----------------------------------------------------


def good_number(snapshot: Mapping[str, Sample], tag: str) -> float | None:
    """The tag's value as a number when its quality is Good, else None."""
    sample = snapshot.get(tag)
    if sample is None or sample.quality.severity is not Severity.GOOD:
        return None
    return numeric(sample.value)


@dataclass(frozen=True, slots=True)
class PumpCounts:
    """Pumps of a domain: running, failed, and how many report (Good) a running state."""

    running: int
    failed: int
    reporting: int
    total: int


def pump_counts(snapshot: Mapping[str, Sample], domain: str = "water") -> PumpCounts:
    """Pumps running and failed (``*.pumpN.running`` / ``*.pump_running`` and
    ``*.pumpN.fault`` of the domain), counting Good values only."""
    running = failed = reporting = total = 0
    prefix = domain + "."
    for name in snapshot:
        # The cheap test first: a city has tens of thousands of tags and few pumps.
        if not name.endswith(_PUMP_ENDINGS) or not name.startswith(prefix):
            continue
        if _PUMP_RUNNING.search(name):
            total += 1
            value = good_number(snapshot, name)
            if value is not None:
                reporting += 1
                running += value > 0
        elif _PUMP_FAULT.search(name):
            value = good_number(snapshot, name)
            failed += value is not None and value > 0
    return PumpCounts(running, failed, reporting, total)


def lowest_level(
    assets: Sequence[AssetDef], snapshot: Mapping[str, Sample]
) -> tuple[AssetDef, float] | None:
    """The reservoir or storage tank with the lowest Good ``<asset>.level``, or None."""
    levels = [
        (asset, value)
        for asset in assets
        if asset.type in ("reservoir", "storage_tank")
        and (value := good_number(snapshot, f"{asset.name}.level")) is not None
    ]
    return min(levels, key=lambda pair: pair[1]) if levels else None


def suspected_leaks(pairs: Iterable[tuple[AlarmDef, AlarmState]]) -> list[AlarmDef]:
    """Active alarms that suggest a leak: night flow above its baseline, or named leak/burst."""
    return [
        definition
        for definition, state in pairs
        if state.active
        and (
            definition.kind is AlarmKind.NIGHT_FLOW
            or "leak" in definition.name.lower()
            or "burst" in definition.name.lower()
        )
    ]


@dataclass(frozen=True, slots=True)
class LightingFigures:
    """Lamps on and failed, and the power drawn, over the cabinets reporting Good values."""

    lamps_on: int
    lamps_failed: int
    power_kw: float
    cabinets: int
    reporting: int


def lighting_figures(assets: Sequence[AssetDef], snapshot: Mapping[str, Sample]) -> LightingFigures:
    """Sums over the lighting cabinets' ``lamps_on``, ``lamps_failed`` and ``power``."""
    cabinets = [asset for asset in assets if asset.type == "lighting_cabinet"]
    on = failed = reporting = 0
    power = 0.0
    for cabinet in cabinets:
        lamps_on = good_number(snapshot, f"{cabinet.name}.lamps_on")
        lamps_failed = good_number(snapshot, f"{cabinet.name}.lamps_failed")
        kw = good_number(snapshot, f"{cabinet.name}.power")
        if lamps_on is None or lamps_failed is None or kw is None:
            continue
        reporting += 1
        on += int(lamps_on)
        failed += int(lamps_failed)
        power += kw
    return LightingFigures(on, failed, power, len(cabinets), reporting)


@dataclass(frozen=True, slots=True)
class BuildingFigures:
    """Electricity and heat drawn by the buildings now, and their zones in comfort."""

    electricity_kw: float
    heat_kw: float
    zones_in_comfort: int
    zones: int
    """Zones with a Good temperature and setpoint."""

    @property
    def comfort_share(self) -> float | None:
        """Share of zones in comfort, 0-1 (None without zones)."""
        return self.zones_in_comfort / self.zones if self.zones else None


def building_figures(assets: Sequence[AssetDef], snapshot: Mapping[str, Sample]) -> BuildingFigures:
    """Sums of ``<building>.elec.power`` and ``.heat.power``; zones (``<building>.zN.temp``)
    within ``COMFORT_BAND_K`` of their ``setpoint``."""
    buildings = [asset.name for asset in assets if asset.type == "building"]
    electricity = heat = 0.0
    for name in buildings:
        electricity += good_number(snapshot, f"{name}.elec.power") or 0.0
        heat += good_number(snapshot, f"{name}.heat.power") or 0.0
    prefixes = tuple(name + "." for name in buildings)
    zones = in_comfort = 0
    for tag in snapshot:
        # The cheap test first: a city has tens of thousands of tags and few zones.
        if not tag.endswith(".temp") or not tag.startswith(prefixes):
            continue
        match = _ZONE_TEMP.match(tag)
        if match is None:
            continue
        temperature = good_number(snapshot, tag)
        setpoint = good_number(snapshot, f"{match.group(1)}.setpoint")
        if temperature is None or setpoint is None:
            continue
        zones += 1
        in_comfort += abs(temperature - setpoint) <= COMFORT_BAND_K
    return BuildingFigures(electricity, heat, in_comfort, zones)


def alarm_counts(
    pairs: Iterable[tuple[AlarmDef, AlarmState]],
) -> dict[str, dict[AlarmPriority, int]]:
    """Active (or latched) alarms per area and priority; areas in name order."""
    counts: dict[str, dict[AlarmPriority, int]] = {}
    for definition, state in pairs:
        if not (state.active or state.latched):
            continue
        area = definition.area or "other"
        row = counts.setdefault(area, dict.fromkeys(AlarmPriority, 0))
        row[definition.priority] += 1
    return dict(sorted(counts.items()))


def device_health(diagnostics: Iterable[ScanDiagnostics]) -> dict[str, tuple[int, int]]:
    """(connected, total) devices per domain (the first part of a device's name)."""
    health: dict[str, tuple[int, int]] = {}
    for entry in diagnostics:
        domain = entry.device.split(".", 1)[0]
        connected, total = health.get(domain, (0, 0))
        health[domain] = (connected + (entry.connected and entry.healthy), total + 1)
    return health


# --- the display ----------------------------------------------------------------------------------


_FIRST_PARTS: dict[int, tuple[int, frozenset[str]]] = {}


def _domains_present(context: HmiContext) -> list[tuple[str, str, str]]:
    names = context.tags_by_name()
    # The first parts of the tag names, kept per context: the site changes only when
    # calculated tags are deployed (the tag count changes then).
    cached = _FIRST_PARTS.get(id(context))
    if cached is None or cached[0] != len(names):
        cached = (len(names), frozenset(name.split(".", 1)[0] for name in names if "." in name))
        _FIRST_PARTS[id(context)] = cached
    return [domain for domain in DOMAINS if domain[0] in cached[1]]


def _figure(label: str, value: Any, *, figure_id: str = "") -> Any:
    children = [html.Span(label, className="ov-label"), html.Span(value, className="ov-value")]
    if figure_id:
        return html.Div(className="ov-figure", children=children, id=figure_id)
    return html.Div(className="ov-figure", children=children)


def _live_figure(context: HmiContext, label: str, tag: str) -> Any:
    try:
        definition = context.tag(tag)
    except KeyError:
        return None
    return _figure(label, live_value(context.live, definition))


def _live_part(context: HmiContext, domain: str) -> list[Any]:
    """The domain's single values, kept current by the live stream."""
    figures: list[Any] = []
    types = {"water": "treatment_plant", "heat": "heating_plant"}
    plants = [a for a in context.assets if a.type == types.get(domain)]
    if domain == "water":
        for plant in plants:
            figures.append(_live_figure(context, "Delivered flow", f"{plant.name}.outflow"))
    elif domain == "heat":
        for plant in plants:
            figures.append(_live_figure(context, "Supply", f"{plant.name}.supply_temp"))
            figures.append(_live_figure(context, "Return", f"{plant.name}.return_temp"))
            figures.append(_live_figure(context, "Heat delivered", f"{plant.name}.heat_output"))
    return [figure for figure in figures if figure is not None]


def domain_figures(
    context: HmiContext,
    domain: str,
    snapshot: Mapping[str, Sample],
    pairs: Sequence[tuple[AlarmDef, AlarmState]],
) -> list[Any]:
    """The domain's aggregate figures (refreshed by the slow tick)."""
    assets = context.assets
    if domain == "water":
        figures: list[Any] = []
        lowest = lowest_level(assets, snapshot)
        figures.append(
            _figure(
                "Lowest reservoir",
                "—"
                if lowest is None
                else dcc.Link(
                    f"{lowest[1]:.2f} m {lowest[0].title}", href=f"/asset/{lowest[0].name}"
                ),
                figure_id="ov-water-lowest",
            )
        )
        pumps = pump_counts(snapshot, "water")
        figures.append(
            _figure(
                "Pumps running",
                f"{pumps.running} of {pumps.total}",
                figure_id="ov-water-pumps",
            )
        )
        figures.append(
            _figure(
                "Pumps failed",
                html.Span(
                    f"{pumps.failed} FAILED" if pumps.failed else "0",
                    className="abnormal" if pumps.failed else "",
                ),
                figure_id="ov-water-failed",
            )
        )
        leaks = suspected_leaks(
            (d, s) for d, s in pairs if d.area == "water" or d.name.startswith("water.")
        )
        figures.append(
            _figure(
                "Suspected leaks",
                dcc.Link(
                    f"{len(leaks)} SUSPECTED" if leaks else "0",
                    href="/alarms?area=water",
                    className="abnormal" if leaks else "",
                ),
                figure_id="ov-water-leaks",
            )
        )
        return figures
    if domain == "lights":
        lights = lighting_figures(assets, snapshot)
        return [
            _figure("Lamps on", str(lights.lamps_on), figure_id="ov-lights-on"),
            _figure(
                "Lamps failed",
                html.Span(
                    str(lights.lamps_failed), className="abnormal" if lights.lamps_failed else ""
                ),
                figure_id="ov-lights-failed",
            ),
            _figure("Power", f"{lights.power_kw:.1f} kW", figure_id="ov-lights-power"),
            _figure(
                "Cabinets reporting",
                f"{lights.reporting} of {lights.cabinets}",
                figure_id="ov-lights-cabinets",
            ),
        ]
    if domain == "bldg":
        buildings = building_figures(assets, snapshot)
        share = buildings.comfort_share
        return [
            _figure("Electricity", f"{buildings.electricity_kw:.0f} kW", figure_id="ov-bldg-elec"),
            _figure("Heat", f"{buildings.heat_kw:.0f} kW", figure_id="ov-bldg-heat"),
            _figure(
                "Zones in comfort",
                "—"
                if share is None
                else f"{100 * share:.0f} % ({buildings.zones_in_comfort} of {buildings.zones})",
                figure_id="ov-bldg-comfort",
            ),
        ]
    return []


def alarms_panel(context: HmiContext, pairs: Sequence[tuple[AlarmDef, AlarmState]]) -> Any:
    """Active alarms by area (rows) and priority (columns), each count a link to the list."""
    if context.alarms is None:
        return html.P("Alarms: not available")
    counts = alarm_counts(pairs)
    header = html.Tr([html.Th("Area"), *[html.Th(p.name.lower()) for p in AlarmPriority]])
    rows = []
    for area, row in counts.items():
        cells = [html.Td(dcc.Link(area, href=f"/alarms?area={area}"))]
        for priority in AlarmPriority:
            number = row[priority]
            name = priority.name.lower()
            cells.append(
                html.Td(
                    dcc.Link(str(number), href=f"/alarms?area={area}&priority={name}"),
                    className=f"priority-{name} nonzero" if number else "",
                )
            )
        rows.append(html.Tr(cells, **data_attributes({"data-area": area})))
    if not rows:
        return html.P("No active alarms", className="ov-none")
    return html.Table([html.Thead(header), html.Tbody(rows)], className="ov-alarm-table")


def health_panel(context: HmiContext, user: User) -> Any:
    """One line per domain: devices connected of all."""
    if context.devices is None:
        return html.P("Device health: not available")
    health = device_health(context.devices.diagnostics())
    titles = {prefix: title for prefix, title, _ in DOMAINS}
    linked = allows(user, Permission.VIEW_DIAGNOSTICS)
    lines = []
    for domain, (connected, total) in sorted(health.items()):
        lost = total - connected
        text = f"{titles.get(domain, domain)}: {connected} of {total} devices connected"
        children: list[Any] = [
            dcc.Link(text, href=f"/diagnostics?domain={domain}") if linked else html.Span(text)
        ]
        if lost:
            children.append(html.Span(f" {lost} LOST", className="abnormal"))
        lines.append(html.Li(children, **data_attributes({"data-domain": domain})))
    return html.Ul(lines, className="ov-health")


def small_map_image(context: HmiContext) -> tuple[str, str]:
    """The small map's picture (a ``data:`` URI of its SVG) and its alternative text."""
    states = marker_states(context)
    return svg_data_uri(compact_map_svg(context, states)), alt_text(context, states)


def _small_map(context: HmiContext) -> Any:
    # A picture, not a plotly graph: the small map is neither zoomed nor hovered, and the
    # browser shows an image at once where plotly would lay out hundreds of markers.
    src, alt = small_map_image(context)
    return html.Img(id=MAP_ID, src=src, alt=alt, className="ov-map-image")


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The overview display."""
    snapshot = context.live.snapshot()
    pairs = context.alarms.states() if context.alarms is not None else []
    panels: list[Any] = []
    present = _domains_present(context)
    for domain, title, href in present:
        panels.append(
            html.Section(
                className="panel ov-domain",
                id=f"overview-{domain}",
                children=[
                    html.H2(dcc.Link(title, href=href)),
                    html.Div(_live_part(context, domain), className="ov-figures"),
                    html.Div(
                        domain_figures(context, domain, snapshot, pairs),
                        id=f"overview-{domain}-figures",
                        className="ov-figures",
                    ),
                ],
            )
        )
    # Every output of the refresh callback exists, shown or not: a domain the site does not
    # have keeps an empty hidden slot.
    panels.extend(
        html.Div(id=f"overview-{domain}-figures", hidden=True)
        for domain, _, _ in DOMAINS
        if (domain, _, _) not in present
    )
    has_map = any(asset.position is not None for asset in context.assets)
    side: list[Any] = [
        html.Section(
            className="panel ov-alarms",
            children=[
                html.H2(dcc.Link("Alarms", href="/alarms")),
                html.Div(alarms_panel(context, pairs), id=ALARMS_ID),
            ],
        ),
        html.Section(
            className="panel ov-health-panel",
            children=[
                html.H2("Device health"),
                html.Div(health_panel(context, user), id=HEALTH_ID),
            ],
        ),
    ]
    if has_map:
        side.append(
            html.Section(
                className="panel ov-map",
                children=[
                    html.H2(dcc.Link("Map", href="/map")),
                    dcc.Link(
                        _small_map(context),
                        href="/map",
                        className="ov-map-link",
                        title="Open the city map",
                    ),
                ],
            )
        )
    return html.Div(
        className="overview-display",
        children=[
            dcc.Interval(id=TICK_ID, interval=REFRESH_MS),
            html.Div(panels, className="ov-domains"),
            html.Div(side, className="ov-side"),
        ],
    )


def register(app: dash.Dash, context: HmiContext) -> None:
    """The slow refresh of the aggregates, alarm counts, device health and the small map."""
    outputs = [Output(f"overview-{domain}-figures", "children") for domain, _, _ in DOMAINS]

    @app.callback(
        *outputs,
        Output(ALARMS_ID, "children"),
        Output(HEALTH_ID, "children"),
        Input(TICK_ID, "n_intervals"),
        prevent_initial_call=True,
    )
    def refresh(_tick: int | None) -> tuple[Any, ...]:
        user = viewing_user()
        snapshot = context.live.snapshot()
        pairs = context.alarms.states() if context.alarms is not None else []
        present = {domain for domain, _, _ in _domains_present(context)}
        figures = [
            domain_figures(context, domain, snapshot, pairs)
            if domain in present
            else dash.no_update
            for domain, _, _ in DOMAINS
        ]
        return (*figures, alarms_panel(context, pairs), health_panel(context, user))

    # Its own callback: a site without positions has no small map, and then Dash leaves this
    # callback alone instead of the whole refresh.
    @app.callback(
        Output(MAP_ID, "src"),
        Output(MAP_ID, "alt"),
        Input(TICK_ID, "n_intervals"),
        prevent_initial_call=True,
    )
    def refresh_map(_tick: int | None) -> tuple[str, str]:
        viewing_user()
        return small_map_image(context)


PAGE = Page(
    path="/",
    title="City overview",
    level=1,
    permission=Permission.VIEW,
    render=render,
    nav_label="Overview",
    register=register,
)
