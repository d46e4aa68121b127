"""The city map: district outlines and asset markers, drawn as SVG by plotly in the browser.

No tiles, no map style, no web font: a plain cartesian plot whose y axis is scaled to the x
axis by the cosine of the site's latitude (an equirectangular view, exact enough for a city),
so the map renders with no request leaving the HMI's server. Districts are grey polygons with
their names; assets are grey markers, one symbol per asset type; the pipes between them (what
feeds what) are thin grey lines. Each asset type is a layer of the legend, grouped by domain
(water, lighting, heating, buildings, mobility, charging, environment, waste, cameras): a click
on a layer hides or shows it, a double-click shows it alone, and the choice holds across the
map's refreshes (each trace keeps its ``uid``; the layout keeps its ``uirevision``).

Colour is kept for the abnormal: an asset whose device has lost communication, one of whose tags
has Bad quality, or which has an active or unacknowledged alarm is drawn in the abnormal colour
AND labelled with its reason in text (ISA-101: never colour alone). ``marker_states`` decides
that from the center's ports; it is cheap enough to run every few seconds and whenever an alarm
changes.

A city has thousands of waste containers: past ``MAX_MARKERS_PER_DISTRICT`` assets of one type in
one district, the normal ones are drawn as one marker with their count, and the abnormal ones
one by one (or, past the limit too, one marker per reason with its count), so the figure stays
a few hundred points at any scale and nothing abnormal is hidden.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from controlcenter.automation import AssetDef
from controlcenter.model import Sample, Severity, TagDef
from controlcenter.ports import AlarmDisplayState
from hmi.context import HmiContext

ABNORMAL_COLOUR = "#a1008f"
"""The HMI's 'bad' colour (hmi.css ``--bad``)."""
MARKER_GREY = "#4a4a4a"
DISTRICT_FILL = "#e4e4e4"
DISTRICT_EDGE = "#a8a8a8"
PIPE_GREY = "#9a9a9a"
FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
"""System fonts only: plotly draws text with the browser's fonts, nothing is fetched."""

SYMBOLS: Mapping[str, str] = {
    "treatment_plant": "square",
    "storage_tank": "circle-open",
    "reservoir": "circle",
    "booster_station": "triangle-up",
    "metering_area": "diamond",
    "lighting_cabinet": "star",
    "heating_plant": "hexagon",
    "substation": "pentagon",
    "building": "square-open",
    "road_segment": "cross",
    "pricing_zone": "octagon-open",
    "parking_garage": "square-x",
    "parking_zone": "square-x-open",
    "bike_station": "circle-cross",
    "bus_stop": "circle-x",
    "charge_point": "diamond-tall",
    "shore_power": "diamond-wide",
    "air_quality_station": "asterisk-open",
    "river_gauge": "triangle-down",
    "waste_container": "hourglass",
    "camera": "triangle-right",
}
"""The marker symbol of each asset type (each its own); other types are drawn as an x."""
OTHER_SYMBOL = "x"

TYPE_NAMES: Mapping[str, str] = {
    "treatment_plant": "Treatment plant",
    "storage_tank": "Storage tank",
    "reservoir": "Reservoir",
    "booster_station": "Booster station",
    "metering_area": "Metering area",
    "lighting_cabinet": "Lighting cabinet",
    "heating_plant": "Heat plant",
    "substation": "Substation",
    "building": "Building",
    "road_segment": "Traffic detector",
    "pricing_zone": "Road-pricing zone",
    "parking_garage": "Parking garage",
    "parking_zone": "On-street parking",
    "bike_station": "Bike-share station",
    "bus_stop": "Bus stop",
    "charge_point": "EV charge point",
    "shore_power": "Shore power",
    "air_quality_station": "Air-quality station",
    "river_gauge": "River gauge",
    "waste_container": "Waste container",
    "camera": "Camera",
}

LAYERS: Mapping[str, str] = {
    "treatment_plant": "Water",
    "storage_tank": "Water",
    "reservoir": "Water",
    "booster_station": "Water",
    "metering_area": "Water",
    "lighting_cabinet": "Street lighting",
    "heating_plant": "District heating",
    "substation": "District heating",
    "building": "Buildings",
    "road_segment": "Mobility",
    "pricing_zone": "Mobility",
    "parking_garage": "Mobility",
    "parking_zone": "Mobility",
    "bike_station": "Mobility",
    "bus_stop": "Mobility",
    "charge_point": "Charging",
    "shore_power": "Charging",
    "air_quality_station": "Environment",
    "river_gauge": "Environment",
    "waste_container": "Waste",
    "camera": "Cameras",
}
"""The legend group (domain) of each asset type; other types are in ``OTHER_LAYER``."""
OTHER_LAYER = "Other"
LAYER_ORDER = (
    "Water",
    "Street lighting",
    "District heating",
    "Buildings",
    "Mobility",
    "Charging",
    "Environment",
    "Waste",
    "Cameras",
    OTHER_LAYER,
)
LEGEND_TITLE = "Layers: click one to hide or show it, double-click to show it alone"
MAX_MARKERS_PER_DISTRICT = 40
"""Assets of one type in one district drawn one by one; past it they are counted (see above)."""
SUMMARY_SIZE = 20
"""Marker size of a counted group (a single asset's is 13)."""

_SHOWN_ALARM_STATES = frozenset(
    {
        AlarmDisplayState.UNACKNOWLEDGED,
        AlarmDisplayState.ACKNOWLEDGED,
        AlarmDisplayState.RETURNED_UNACKNOWLEDGED,
        AlarmDisplayState.LATCHED,
    }
)
"""Alarm states that make a marker abnormal: active, unacknowledged or latched (not shelved,
suppressed or out of service: the operator decided about those)."""


def type_name(asset_type: str) -> str:
    """The legend's name of an asset type (``booster_station`` → ``Booster station``)."""
    return TYPE_NAMES.get(asset_type, asset_type.replace("_", " ").capitalize())


def layer_name(asset_type: str) -> str:
    """The legend group (domain) an asset type is shown in."""
    return LAYERS.get(asset_type, OTHER_LAYER)


def _layer_key(asset_type: str) -> tuple[int, str]:
    return LAYER_ORDER.index(layer_name(asset_type)), type_name(asset_type)


@dataclass(frozen=True, slots=True)
class MarkerState:
    """Why an asset is abnormal on the map (no reasons: normal)."""

    asset: str
    reasons: tuple[str, ...] = ()

    @property
    def abnormal(self) -> bool:
        """Whether the marker is drawn abnormal."""
        return bool(self.reasons)

    @property
    def text(self) -> str:
        """The reasons as one label (``COMM LOST, ALARM``), or "" when normal."""
        return ", ".join(self.reasons)


COMM_LOST = "COMM LOST"
BAD_QUALITY = "BAD DATA"
ALARM = "ALARM"


@dataclass(frozen=True, slots=True)
class AssetIndex:
    """Which tags and devices belong to which asset (built once per set of tags)."""

    tags: Mapping[str, tuple[str, ...]]
    """Asset name → its tags."""
    devices: Mapping[str, frozenset[str]]
    """Asset name → the devices its tags are read from."""
    owner: Mapping[str, str]
    """Tag name → the asset it belongs to (the longest asset name that prefixes it)."""


def index_assets(assets: Sequence[AssetDef], tags: Iterable[TagDef]) -> AssetIndex:
    """Map tags and devices to their assets (``water.ps1.pump1.running`` → ``water.ps1``)."""
    names = {asset.name for asset in assets}
    owned: dict[str, list[str]] = {asset.name: [] for asset in assets}
    devices: dict[str, set[str]] = {asset.name: set() for asset in assets}
    owner: dict[str, str] = {}
    for tag in tags:
        parts = tag.name.split(".")
        for end in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in names:
                owned[prefix].append(tag.name)
                devices[prefix].add(tag.device)
                owner[tag.name] = prefix
                break
    return AssetIndex(
        tags={name: tuple(found) for name, found in owned.items()},
        devices={name: frozenset(found) for name, found in devices.items()},
        owner=owner,
    )


_INDEX_CACHE: dict[int, tuple[int, AssetIndex]] = {}


def asset_index(context: HmiContext) -> AssetIndex:
    """The context's asset index, rebuilt when its tags change (calculated tags deployed)."""
    tags = context.live.tags()
    cached = _INDEX_CACHE.get(id(context))
    if cached is None or cached[0] != len(tags):
        cached = (len(tags), index_assets(context.assets, tags))
        _INDEX_CACHE[id(context)] = cached
    return cached[1]


def compute_marker_states(
    assets: Sequence[AssetDef],
    index: AssetIndex,
    snapshot: Mapping[str, Sample],
    lost_devices: Iterable[str],
    alarm_assets: Iterable[str],
) -> dict[str, MarkerState]:
    """Each asset's state: COMM LOST when one of its devices is lost, BAD DATA when one of its
    tags has Bad quality (not already explained by a lost device), ALARM when it has an alarm
    in ``alarm_assets``."""
    lost = frozenset(lost_devices)
    alarmed = frozenset(alarm_assets)
    states = {}
    for asset in assets:
        reasons = []
        if index.devices.get(asset.name, frozenset()) & lost:
            reasons.append(COMM_LOST)
        else:
            for tag in index.tags.get(asset.name, ()):
                sample = snapshot.get(tag)
                if sample is not None and sample.quality.severity is Severity.BAD:
                    reasons.append(BAD_QUALITY)
                    break
        if asset.name in alarmed:
            reasons.append(ALARM)
        states[asset.name] = MarkerState(asset.name, tuple(reasons))
    return states


def marker_states(context: HmiContext) -> dict[str, MarkerState]:
    """Every asset's marker state from the center's ports (devices, live values, alarms)."""
    index = asset_index(context)
    lost: set[str] = set()
    if context.devices is not None:
        lost = {d.device for d in context.devices.diagnostics() if not d.connected}
    alarmed: set[str] = set()
    if context.alarms is not None:
        known = set(index.tags)
        device_assets: dict[str, list[str]] = {}
        for name, devices in index.devices.items():
            for device in devices:
                device_assets.setdefault(device, []).append(name)
        for definition, state in context.alarms.states():
            if state.display not in _SHOWN_ALARM_STATES:
                continue
            if definition.asset in known:
                alarmed.add(definition.asset)
            elif definition.tag in index.owner:
                alarmed.add(index.owner[definition.tag])
            elif definition.device:
                # A communication alarm names its device: every asset read from it.
                alarmed.update(device_assets.get(definition.device, ()))
    return compute_marker_states(context.assets, index, context.live.snapshot(), lost, alarmed)


def map_figure(context: HmiContext, states: Mapping[str, MarkerState]) -> go.Figure:
    """The city map of the context's districts and placed assets, with their supply lines and
    a legend of layers (the overview's small map is a picture: ``hmi.map_image``)."""
    figure = go.Figure()
    latitudes: list[float] = []
    # Every district in one filled trace (polygons apart by None) and every label in one
    # layout update: a trace and an annotation per district cost plotly a validation pass
    # over all earlier ones each (seconds at a city of eighty districts).
    outline_x: list[float | None] = []
    outline_y: list[float | None] = []
    labels: list[dict[str, Any]] = []
    for district in context.districts:
        lats = [corner.latitude for corner in district.outline]
        lons = [corner.longitude for corner in district.outline]
        latitudes.extend(lats)
        outline_x += [*lons, lons[0], None]
        outline_y += [*lats, lats[0], None]
        labels.append(
            {
                "x": sum(lons) / len(lons),
                "y": max(lats) - (max(lats) - min(lats)) * 0.08,
                "text": district.label,
                "showarrow": False,
                "font": {"size": 12, "color": "#6a6a6a", "family": FONT},
            }
        )
    if outline_x:
        figure.add_trace(
            go.Scatter(
                x=outline_x,
                y=outline_y,
                mode="lines",
                fill="toself",
                fillcolor=DISTRICT_FILL,
                line={"color": DISTRICT_EDGE, "width": 1},
                hoverinfo="skip",
                showlegend=False,
                name="Districts",
                uid="districts",
            )
        )
    placed = [asset for asset in context.assets if asset.position is not None]
    by_name = {asset.name: asset for asset in placed}
    pipe_x: list[float | None] = []
    pipe_y: list[float | None] = []
    for asset in placed:
        for fed in asset.feeds:
            target = by_name.get(fed)
            if asset.position is None or target is None or target.position is None:
                continue
            pipe_x += [asset.position.longitude, target.position.longitude, None]
            pipe_y += [asset.position.latitude, target.position.latitude, None]
    if pipe_x:
        figure.add_trace(
            go.Scatter(
                x=pipe_x,
                y=pipe_y,
                mode="lines",
                line={"color": PIPE_GREY, "width": 1, "dash": "dot"},
                hoverinfo="skip",
                name="Supplies",
                showlegend=True,
                legendgroup="Supplies",
                uid="supplies",
            )
        )
    district_labels = {district.name: district.label for district in context.districts}
    by_type: dict[str, list[AssetDef]] = {}
    for asset in placed:
        by_type.setdefault(asset.type, []).append(asset)
    for asset_type in sorted(by_type, key=_layer_key):
        points = marker_points(by_type[asset_type], states, district_labels)
        figure.add_trace(_markers(points, asset_type))
    latitudes.extend(asset.position.latitude for asset in placed if asset.position)
    middle = (
        (min(latitudes) + max(latitudes)) / 2.0
        if latitudes
        else (context.location.latitude if context.location else 0.0)
    )
    ratio = 1.0 / max(math.cos(math.radians(middle)), 0.01)
    figure.update_layout(
        annotations=labels,
        margin={"l": 4, "r": 4, "t": 4, "b": 4},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"family": FONT, "color": "#2b2b2b"},
        showlegend=True,
        legend={
            "orientation": "h",
            "y": -0.02,
            "yanchor": "top",
            "font": {"size": 12},
            "title": {"text": LEGEND_TITLE, "side": "top", "font": {"size": 12}},
            "traceorder": "grouped",
            # A click hides or shows one type, not its whole domain.
            "groupclick": "toggleitem",
        },
        hovermode="closest",
        dragmode="pan",
        # Keep the operator's zoom, pan and hidden layers across refreshes of the markers
        # (plotly matches each trace by its uid).
        uirevision="city-map",
        height=640,
    )
    figure.update_xaxes(visible=False, showgrid=False, zeroline=False)
    figure.update_yaxes(
        visible=False, showgrid=False, zeroline=False, scaleanchor="x", scaleratio=ratio
    )
    return figure


@dataclass(frozen=True, slots=True)
class MapPoint:
    """One marker of the map: an asset, or a counted group of one type in one district."""

    longitude: float
    latitude: float
    abnormal: bool
    label: str
    """Text beside the marker: the reasons of an abnormal one, the count of a group."""
    hover: str
    asset: str = ""
    """The asset a click opens ("" for a group)."""
    count: int = 1


def marker_points(
    members: Sequence[AssetDef],
    states: Mapping[str, MarkerState],
    district_labels: Mapping[str, str],
    limit: int = MAX_MARKERS_PER_DISTRICT,
) -> list[MapPoint]:
    """The markers of one asset type's placed ``members``: one per asset, except that past
    ``limit`` in one district the normal ones are one counted marker, and the abnormal ones
    too when they alone are past it (one counted marker per reason)."""
    by_district: dict[str, list[AssetDef]] = {}
    for asset in members:
        if asset.position is not None:
            by_district.setdefault(asset.district, []).append(asset)
    points: list[MapPoint] = []
    for district, group in by_district.items():
        if len(group) <= limit:
            points += [_single(asset, states) for asset in group]
            continue
        where = district_labels.get(district, district) or "the city"
        by_reason: dict[str, list[AssetDef]] = {}
        normal: list[AssetDef] = []
        for asset in group:
            state = states.get(asset.name, MarkerState(asset.name))
            if state.abnormal:
                by_reason.setdefault(state.text, []).append(asset)
            else:
                normal.append(asset)
        if sum(len(found) for found in by_reason.values()) <= limit:
            points += [_single(asset, states) for found in by_reason.values() for asset in found]
        else:
            points += [_group(found, reason, where) for reason, found in by_reason.items()]
        if normal:
            points.append(_group(normal, "", where))
    # The abnormal last: drawn on top, and the legend shows a type by its first (normal) marker.
    return sorted(points, key=lambda point: point.abnormal)


def _single(asset: AssetDef, states: Mapping[str, MarkerState]) -> MapPoint:
    state = states.get(asset.name, MarkerState(asset.name))
    assert asset.position is not None
    return MapPoint(
        asset.position.longitude,
        asset.position.latitude,
        state.abnormal,
        f"{asset.title}: {state.text}" if state.abnormal else "",
        f"{asset.title} ({asset.name})<br>{type_name(asset.type)} · {state.text or 'normal'}",
        asset.name,
    )


def _group(assets: Sequence[AssetDef], reason: str, where: str) -> MapPoint:
    """One marker for ``assets`` (one type, one district, one state), at their centre."""
    positions = [asset.position for asset in assets if asset.position is not None]
    count = len(assets)
    kind = type_name(assets[0].type)
    return MapPoint(
        sum(p.longitude for p in positions) / len(positions),
        sum(p.latitude for p in positions) / len(positions),
        bool(reason),
        f"{kind} ({count}): {reason}" if reason else f"{count}",
        f"{kind}: {count} in {where}<br>{reason or 'all normal'} (counted: too many to draw)",
        count=count,
    )


def _markers(points: Sequence[MapPoint], asset_type: str) -> go.Scatter:
    size = 13
    return go.Scatter(
        x=[point.longitude for point in points],
        y=[point.latitude for point in points],
        mode="markers+text",
        name=type_name(asset_type),
        # Plotly puts the uid into CSS selectors (its colour bars): letters, digits, - and _.
        uid=f"type-{asset_type}",
        legendgroup=layer_name(asset_type),
        legendgrouptitle={"text": layer_name(asset_type)},
        marker={
            "symbol": SYMBOLS.get(asset_type, OTHER_SYMBOL),
            "size": [size if point.count == 1 else SUMMARY_SIZE for point in points],
            "color": [ABNORMAL_COLOUR if point.abnormal else MARKER_GREY for point in points],
            "line": {
                "color": [ABNORMAL_COLOUR if point.abnormal else "#2b2b2b" for point in points],
                "width": 1,
            },
        },
        text=[point.label for point in points],
        textposition="top center",
        textfont={
            "color": [ABNORMAL_COLOUR if point.abnormal else MARKER_GREY for point in points],
            "size": 12,
            "family": FONT,
        },
        customdata=[point.asset for point in points],
        hovertext=[point.hover for point in points],
        hoverinfo="text",
    )


def clicked_asset(context: HmiContext, click: object) -> str | None:
    """The asset a map click (Dash ``clickData``) names, or None for anything else: the
    browser sends it, so it is checked against the site's assets."""
    if not isinstance(click, dict):
        return None
    points = click.get("points")
    if not isinstance(points, list) or not points or not isinstance(points[0], dict):
        return None
    name = points[0].get("customdata")
    if not isinstance(name, str) or len(name) > 200:
        return None
    known = {asset.name for asset in context.assets}
    return name if name in known else None


def abnormal_assets(
    context: HmiContext, states: Mapping[str, MarkerState]
) -> list[tuple[AssetDef, MarkerState]]:
    """The assets drawn abnormal, in the site's order (for the list beside the map)."""
    return [
        (asset, states[asset.name])
        for asset in context.assets
        if asset.name in states and states[asset.name].abnormal
    ]


def figure_dict(figure: go.Figure) -> dict[str, Any]:
    """The figure as the plain dict Dash sends."""
    result: dict[str, Any] = figure.to_plotly_json()
    return result
