"""Level 3 faceplates: one asset in detail, by its type.

A faceplate shows the asset's points (pumps of a booster station, a cabinet's lamps, a
building's zones), recent trends of its key tags (read once when drawn: the live values update,
the trends do not redraw every second), its alarms, its recent commands and the commands an
operator may give it (``hmi.command_panel``). Any asset type without a faceplate of its own gets
the generic one: all its tags.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from dash import dcc, html

from controlcenter.automation import AlarmDef, AlarmState, AssetDef
from controlcenter.model import CommandResult, DataType, TagDef, User, utc_now
from hmi.command_panel import command_panel
from hmi.context import HmiContext
from hmi.faceplates.parts import (
    alarm_limits,
    alarm_pairs,
    asset_alarms,
    children_of,
    find_asset,
    level_gauge,
    natural_key,
    tag_of,
    tags_under,
    unavailable,
)
from hmi.faceplates.parts import reading as _reading
from hmi.faceplates.parts import words as _words
from hmi.formatting import format_value
from hmi.live import data_attributes, live_state, live_value
from hmi.trend import TrendSeries, trend_figure

TREND_WINDOW = timedelta(hours=1)
TREND_POINTS = 300
"""Points per trend line: more than a small graph is wide only costs bandwidth."""
RECENT_COMMANDS = 10
MAX_OTHER_POINTS = 300
"""Points listed under "other points" (a generic asset with thousands of tags stays usable)."""

DOMAIN_DISPLAYS = {
    "water": "/water",
    "lights": "/lighting",
    "heat": "/heating",
    "bldg": "/buildings",
}


class _Plate:
    """Draws the parts of one faceplate and remembers which tags it has shown."""

    def __init__(self, context: HmiContext, asset: AssetDef) -> None:
        self.context = context
        self.asset = asset
        self.pairs = alarm_pairs(context)
        self.limits = alarm_limits(self.pairs)
        self.shown: set[str] = set()

    def name(self, suffix: str) -> str:
        """The full tag name of ``suffix`` under the asset."""
        return f"{self.asset.name}.{suffix}"

    def reading(self, suffix: str, label: str, *, bar: bool = True) -> Any:
        """A labelled value (with an analogue bar against its alarm limits)."""
        name = self.name(suffix)
        self.shown.add(name)
        return _reading(self.context, name, label, self.limits, bar=bar)

    def words(
        self, suffix: str, label: str, on: str, off: str, abnormal_when: bool | None = None
    ) -> Any:
        """A labelled boolean as words."""
        name = self.name(suffix)
        self.shown.add(name)
        return _words(self.context, name, label, on=on, off=off, abnormal_when=abnormal_when)

    def gauge(self, suffix: str) -> Any:
        """A vertical level bar."""
        name = self.name(suffix)
        self.shown.add(name)
        return level_gauge(self.context, name, self.limits)

    def has(self, suffix: str) -> bool:
        """Whether the asset has the tag ``suffix``."""
        return tag_of(self.context, self.name(suffix)) is not None

    def any_tag(self, tag: TagDef) -> Any:
        """Any tag: words for a boolean, a reading otherwise."""
        self.shown.add(tag.name)
        label = tag.name[len(self.asset.name) + 1 :]
        if tag.data_type is DataType.BOOL:
            return _words(self.context, tag.name, label)
        return _reading(self.context, tag.name, label, self.limits)


def _group(title: str, children: Sequence[Any], class_name: str = "") -> Any:
    return html.Div([html.H3(title), *children], className=f"fp-group {class_name}".strip())


# --- one layout per asset type -------------------------------------------------------------------


def _booster_station(plate: _Plate) -> list[Any]:
    station = _group(
        "Station",
        [
            plate.words("auto", "Control", "Auto (local level)", "Remote"),
            plate.reading("flow", "Station flow"),
            plate.reading("header_pressure", "Header pressure"),
            plate.reading("power", "Power"),
            plate.reading("energy", "Energy", bar=False),
        ],
    )
    pumps = [
        _group(
            f"Pump {pump.removeprefix('pump')}",
            [
                plate.words(f"{pump}.running", "State", "Running", "Stopped"),
                plate.words(f"{pump}.fault", "Drive", "TRIPPED", "OK", abnormal_when=True),
                plate.words(f"{pump}.run_cmd", "Command", "Run", "Stop"),
                plate.reading(f"{pump}.speed", "Speed setpoint"),
                plate.reading(f"{pump}.flow", "Flow"),
                plate.reading(f"{pump}.discharge_pressure", "Discharge pressure"),
                plate.reading(f"{pump}.current", "Motor current"),
            ],
            "fp-pump",
        )
        for pump in children_of(plate.context, plate.asset.name, r"pump\d+")
    ]
    return [station, *pumps]


def _reservoir(plate: _Plate) -> list[Any]:
    flows = [
        plate.reading("inflow", "Inflow"),
        plate.reading("outflow", "Outflow"),
    ]
    for suffix, label in (("inlet_valve", "Inlet valve"), ("spill", "Overflow")):
        if plate.has(suffix):
            flows.append(plate.reading(suffix, label))
    if plate.has("pump_running"):
        flows.append(plate.words("pump_running", "Feed pump", "Running", "Stopped"))
        flows.append(plate.words("pump_cmd", "Feed pump command", "Run", "Stop"))
    return [
        _group("Level", [plate.gauge("level")], "fp-level"),
        _group("Flows", flows),
    ]


def _metering_area(plate: _Plate) -> list[Any]:
    return [
        _group(
            "Supply",
            [
                plate.reading("inflow", "Inflow"),
                plate.reading("pressure", "Inlet pressure"),
                plate.reading("volume", "Meter total", bar=False),
            ],
        )
    ]


_MODES = "0 auto, 1 manual, 2 off"


def _lighting_cabinet(plate: _Plate) -> list[Any]:
    mode = tag_of(plate.context, plate.name("mode"))
    mode_text = mode.description.split(":", 1)[-1].strip() if mode and mode.description else _MODES
    cabinet = _group(
        "Cabinet",
        [
            html.Div(
                [plate.reading("mode", "Mode", bar=False), html.Span(mode_text, className="hint")]
            ),
            plate.reading("dim_setpoint", "Dim setpoint"),
            plate.reading("lamps_on", "Lamps on"),
            plate.reading("lamps_failed", "Lamps failed"),
            plate.reading("power", "Power"),
            plate.reading("energy", "Energy", bar=False),
            plate.reading("lux", "Ambient light"),
            plate.words("door_open", "Door", "OPEN", "Closed", abnormal_when=True),
        ],
    )
    lamps = children_of(plate.context, plate.asset.name, r"l\d+")
    rows = []
    for lamp in lamps:
        cells: list[Any] = [html.Td(lamp)]
        for suffix, kind in (
            ("on", "words"),
            ("failed", "fault"),
            ("dim", "value"),
            ("power", "value"),
        ):
            tag = tag_of(plate.context, plate.name(f"{lamp}.{suffix}"))
            plate.shown.add(plate.name(f"{lamp}.{suffix}"))
            if tag is None:
                cells.append(html.Td("—"))
            elif kind == "words":
                cells.append(html.Td(live_state(plate.context.live, tag, on="On", off="Off")))
            elif kind == "fault":
                cells.append(
                    html.Td(
                        live_state(
                            plate.context.live, tag, on="FAILED", off="OK", abnormal_when=True
                        )
                    )
                )
            else:
                cells.append(html.Td(live_value(plate.context.live, tag)))
        rows.append(html.Tr(cells))
    lamp_table = html.Details(
        [
            html.Summary(f"{len(lamps)} lamps"),
            html.Table(
                [
                    html.Thead(
                        html.Tr([html.Th(h) for h in ("Lamp", "Lit", "State", "Dim", "Power")])
                    ),
                    html.Tbody(rows),
                ],
                className="fp-table",
            ),
        ],
        className="fp-lamps",
    )
    return [cabinet, _group("Lamps", [lamp_table])]


def _substation(plate: _Plate) -> list[Any]:
    return [
        _group(
            "Primary (network)",
            [
                plate.reading("primary_supply_temp", "Supply"),
                plate.reading("primary_return_temp", "Return"),
                plate.reading("primary_flow", "Flow"),
                plate.reading("valve", "Control valve"),
                plate.words("valve_manual", "Valve control", "MANUAL", "Auto (loop)"),
            ],
        ),
        _group(
            "Secondary (customers)",
            [
                plate.reading("supply_temp", "Supply"),
                plate.reading("supply_setpoint", "Supply setpoint"),
                plate.words("setpoint_manual", "Setpoint", "MANUAL", "Outdoor reset"),
                plate.reading("return_temp", "Return"),
                plate.reading("heat_power", "Heat power"),
                plate.reading("heat_energy", "Heat energy", bar=False),
            ],
        ),
    ]


def _heating_plant(plate: _Plate) -> list[Any]:
    plant = _group(
        "Plant",
        [
            plate.reading("supply_temp", "Supply"),
            plate.reading("supply_setpoint", "Supply setpoint"),
            plate.reading("return_temp", "Return"),
            plate.reading("flow", "Flow"),
            plate.reading("heat_output", "Heat output"),
            plate.reading("heat_energy", "Heat energy", bar=False),
            plate.reading("outdoor_temp", "Outdoor"),
            plate.reading("diff_pressure", "Differential pressure"),
            plate.reading("dp_setpoint", "Differential pressure setpoint"),
            plate.words("at_capacity", "Capacity", "AT MAXIMUM", "Below maximum", True),
        ],
    )
    pumps = [
        _group(
            f"Circulation pump {pump.removeprefix('pump')}",
            [
                plate.words(f"{pump}.running", "State", "Running", "Stopped"),
                plate.words(f"{pump}.run_cmd", "Command", "Run", "Stop"),
                plate.reading(f"{pump}.speed", "Speed"),
            ],
            "fp-pump",
        )
        for pump in children_of(plate.context, plate.asset.name, r"pump\d+")
    ]
    return [plant, *pumps]


def _building(plate: _Plate) -> list[Any]:
    zones = children_of(plate.context, plate.asset.name, r"z\d+")
    rows = []
    for zone in zones:
        cells: list[Any] = [html.Td(zone)]
        for suffix in ("temp", "setpoint", "occupied", "co2", "valve", "damper"):
            name = plate.name(f"{zone}.{suffix}")
            plate.shown.add(name)
            tag = tag_of(plate.context, name)
            if tag is None:
                cells.append(html.Td("—"))
            elif tag.data_type is DataType.BOOL:
                cells.append(
                    html.Td(live_state(plate.context.live, tag, on="Occupied", off="Empty"))
                )
            else:
                cells.append(html.Td(live_value(plate.context.live, tag)))
        rows.append(html.Tr(cells))
    headings = ("Zone", "Temperature", "Setpoint", "Occupancy", "CO2", "Heating valve", "Damper")
    zone_table = html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in headings])), html.Tbody(rows)],
        className="fp-table fp-zones",
    )
    plant = _group(
        "Air handler and meters",
        [
            plate.words("ahu.fan", "Supply fan", "Running", "Stopped"),
            plate.reading("ahu.supply_air_temp", "Supply air"),
            plate.reading("elec.power", "Electric power"),
            plate.reading("elec.energy", "Electric energy", bar=False),
            plate.reading("heat.power", "Heat power"),
            plate.reading("heat.energy", "Heat energy", bar=False),
        ],
    )
    return [_group(f"Zones ({len(zones)})", [zone_table], "fp-zones-group"), plant]


def _generic(plate: _Plate) -> list[Any]:
    return []


LAYOUTS: dict[str, Callable[[_Plate], list[Any]]] = {
    "booster_station": _booster_station,
    "reservoir": _reservoir,
    "storage_tank": _reservoir,
    "metering_area": _metering_area,
    "lighting_cabinet": _lighting_cabinet,
    "substation": _substation,
    "heating_plant": _heating_plant,
    "building": _building,
}
"""The faceplate of each asset type; any other type gets the generic one (all its tags)."""

KEY_TAGS: dict[str, tuple[str, ...]] = {
    "booster_station": ("flow", "header_pressure", "pump1.flow", "pump2.flow"),
    "reservoir": ("level", "inflow", "outflow"),
    "storage_tank": ("level", "inflow", "outflow"),
    "metering_area": ("inflow", "pressure"),
    "treatment_plant": ("outflow", "chlorine", "turbidity"),
    "lighting_cabinet": ("power", "lamps_on", "lamps_failed"),
    "substation": ("supply_temp", "return_temp", "heat_power"),
    "heating_plant": ("supply_temp", "return_temp", "heat_output"),
    "building": ("elec.power", "heat.power", "z1.temp", "z2.temp"),
}
"""The tags whose recent trend each faceplate shows (and links to the trend display)."""


def key_tags(context: HmiContext, asset: AssetDef) -> list[TagDef]:
    """The asset's key tags: its type's list, else its first few numeric tags with a range."""
    named = [
        tag
        for suffix in KEY_TAGS.get(asset.type, ())
        if (tag := tag_of(context, f"{asset.name}.{suffix}")) is not None
    ]
    if named:
        return named
    numeric = [
        tag
        for tag in tags_under(context, asset.name)
        if tag.data_type in (DataType.FLOAT, DataType.INT) and tag.high is not None
    ]
    return numeric[:4]


# --- the parts every faceplate has ---------------------------------------------------------------


def _trends(context: HmiContext, tags: Sequence[TagDef]) -> Any:
    if not tags:
        return html.Section(
            [html.H2("Recent trends"), html.P("No numeric points.")], className="panel"
        )
    samples = [context.sample(tag.name) for tag in tags]
    latest = [s.server_time for s in samples if s is not None]
    # The last hour of data: the center's clock may differ from this machine's.
    end = max(latest) if latest else utc_now()
    start = end - TREND_WINDOW
    series: list[TrendSeries] = []
    problem = ""
    for tag in tags:
        try:
            points = context.history.read_trend(
                tag.name, start, end + timedelta(seconds=1), TREND_POINTS
            )
        except Exception as err:  # the historian may be away: the faceplate still draws
            problem = f"history not available: {err}"
            points = []
        series.append(TrendSeries(tag.name, tag.unit, points, tag.description))
    figure = trend_figure(
        series, start, end, timezone=context.timezone, message=problem, revision="faceplate"
    )
    figure.update_layout(height=260)
    graph = dcc.Graph(
        figure=figure,
        config={"displayModeBar": False, "displaylogo": False},
        className="fp-trend",
        id="fp-trend",
    )
    href = "/trends?tags=" + ",".join(quote(tag.name, safe="") for tag in tags)
    return html.Section(
        [
            html.H2("Recent trends (last hour)"),
            html.Div(graph, className="fp-trends"),
            dcc.Link("Open in trends", href=href, className="fp-trend-link", id="fp-trend-link"),
        ],
        className="panel",
    )


def _alarms(
    context: HmiContext, asset: AssetDef, pairs: Sequence[tuple[AlarmDef, AlarmState]]
) -> Any:
    own = asset_alarms(pairs, asset.name)
    shown = [(d, s) for d, s in own if s.active or s.latched or not s.acknowledged]
    rows = [
        html.Tr(
            [
                html.Td(d.priority.name.lower(), className=f"priority-{d.priority.name.lower()}"),
                html.Td(d.name),
                html.Td(s.message or d.message),
                html.Td(s.display.value.replace("_", " ")),
                html.Td(context.local_text(s.activated_at) if s.activated_at else ""),
            ],
            className=f"fp-alarm priority-{d.priority.name.lower()}",
        )
        for d, s in shown
    ]
    body: Any = (
        html.Table(
            [
                html.Thead(
                    html.Tr(
                        [html.Th(h) for h in ("Priority", "Alarm", "Message", "State", "Since")]
                    )
                ),
                html.Tbody(rows),
            ],
            className="fp-table",
        )
        if rows
        else html.P(f"No active alarms ({len(own)} configured).", className="fp-no-alarms")
    )
    return html.Section(
        [
            html.H2("Alarms"),
            body,
            dcc.Link(
                "Alarm list for this asset",
                href=f"/alarms?asset={quote(asset.name, safe='')}",
                className="fp-alarm-link",
                id="fp-alarm-link",
            ),
        ],
        className="panel fp-alarms",
        id="fp-alarms",
    )


def recent_commands(context: HmiContext, tags: Sequence[TagDef]) -> list[CommandResult]:
    """The newest commands to ``tags``, newest first."""
    if not tags:
        return []
    # One query for all of the asset's writable tags (a building has a score of them).
    results = context.history.read_commands(tags=[tag.name for tag in tags], limit=RECENT_COMMANDS)
    results.sort(key=lambda r: (r.command.issued_at, r.completed_at), reverse=True)
    return results[:RECENT_COMMANDS]


def _commands(context: HmiContext, writable: Sequence[TagDef]) -> Any:
    try:
        results = recent_commands(context, writable)
    except Exception as err:  # the historian may be away: the faceplate still draws
        return html.Section(
            [html.H2("Recent commands"), html.P(f"Not available: {err}")], className="panel"
        )
    if not results:
        body: Any = html.P("No commands journaled.", className="fp-no-commands")
    else:
        body = html.Table(
            [
                html.Thead(
                    html.Tr(
                        [
                            html.Th(h)
                            for h in (
                                "Time",
                                "Point",
                                "Value",
                                "By",
                                "Status",
                                "Read back",
                                "Reason",
                            )
                        ]
                    )
                ),
                html.Tbody(
                    [
                        html.Tr(
                            [
                                html.Td(context.local_text(r.command.issued_at)),
                                html.Td(r.command.tag),
                                html.Td(format_value(r.command.value)),
                                html.Td(r.command.requested_by),
                                html.Td(
                                    r.status.value, className="" if r.confirmed else "abnormal"
                                ),
                                html.Td(format_value(r.readback)),
                                html.Td(r.command.reason),
                            ],
                            className="fp-command",
                        )
                        for r in results
                    ]
                ),
            ],
            className="fp-table",
        )
    return html.Section(
        [html.H2("Recent commands"), body], className="panel fp-commands", id="fp-commands"
    )


def render_faceplate(context: HmiContext, user: User, name: str) -> Any:
    """The faceplate of asset ``name`` for ``user``; a clear panel for an unknown asset."""
    asset = find_asset(context, name)
    if asset is None:
        shown = name if len(name) <= 80 else name[:80] + "…"
        return html.Div(
            unavailable("No such asset", f"The site has no asset named '{shown}'."),
            id="fp-unknown",
        )
    plate = _Plate(context, asset)
    layout = LAYOUTS.get(asset.type, _generic)
    groups = layout(plate)
    tags = tags_under(context, asset.name)
    others = [tag for tag in tags if tag.name not in plate.shown and not tag.writable]
    if others:
        listed = [plate.any_tag(tag) for tag in others[:MAX_OTHER_POINTS]]
        more = len(others) - len(listed)
        if more > 0:
            listed.append(html.P(f"and {more} more points (see the tag display)"))
        if groups:
            groups.append(
                html.Details(
                    [html.Summary(f"Other points ({len(others)})"), *listed],
                    className="fp-group fp-others",
                )
            )
        else:
            groups.append(_group("Points", listed))
    writable = [tag for tag in tags if tag.writable]
    domain = name.split(".", 1)[0]
    back = DOMAIN_DISPLAYS.get(domain)
    facts = [asset.type.replace("_", " ")]
    if asset.area:
        facts.append(f"area {asset.area}")
    if asset.district:
        facts.append(f"district {asset.district}")
    header = html.Div(
        [
            html.H2(asset.title, id="fp-title"),
            html.Span(" · ".join(facts), className="fp-facts"),
            html.Code(asset.name, className="fp-name"),
            dcc.Link("Back to the network", href=back, className="fp-back") if back else None,
        ],
        className="fp-header",
    )
    return html.Div(
        [
            header,
            html.Section(groups, className="panel fp-points", id="fp-points"),
            command_panel(context, user, writable),
            _trends(context, key_tags(context, asset)),
            _alarms(context, asset, plate.pairs),
            _commands(context, writable),
        ],
        className=f"faceplate faceplate-{asset.type}",
        id="faceplate",
        **data_attributes({"data-asset": asset.name}),
    )


def sort_assets(assets: Sequence[AssetDef]) -> list[AssetDef]:
    """Assets in natural name order."""
    return sorted(assets, key=lambda asset: natural_key(asset.name))
