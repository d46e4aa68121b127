"""The overview's small city map as one SVG image, drawn on the server.

The small map is a picture: it is not zoomed, panned or hovered, and a click anywhere opens the
city map (``/map``). Drawn by plotly in the browser it cost the overview most of its opening
time (the plotting library lays out and draws hundreds of markers on every visit); as an image
(``<img src="data:image/svg+xml,…">``) the browser decodes it at once, and nothing of it enters
the page's component tree.

It shows what the plotly map shows (``hmi.map_svg``): the districts as grey polygons with their
names, every placed asset as a grey marker of its type's symbol (past ``MAX_MARKERS_PER_DISTRICT``
of one type in one district, one counted marker), and the abnormal assets in the abnormal colour
AND labelled with their reason (ISA-101: never colour alone). The picture's alternative text
names the abnormal assets, for those who do not see it.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from html import escape

from controlcenter.automation import AssetDef
from hmi.context import HmiContext
from hmi.map_svg import (
    ABNORMAL_COLOUR,
    DISTRICT_EDGE,
    DISTRICT_FILL,
    FONT,
    MARKER_GREY,
    OTHER_SYMBOL,
    SYMBOLS,
    MarkerState,
    marker_points,
)

HEIGHT_PX = 260
"""The picture's height (the plotly small map's)."""
MARKER_PX = 8.0
GROUP_PX = 14.0
"""A counted marker is drawn larger than an asset's."""
LABEL_PX = 10.0
DISTRICT_LABEL_PX = 9.0
MARGIN = 0.03
"""Share of the map's extent left free around it."""
MAX_ALT_ASSETS = 20
"""Abnormal assets named in the alternative text (the rest are counted)."""

_POLYGONS: Mapping[str, tuple[int, float]] = {
    "triangle-up": (3, -90.0),
    "triangle-down": (3, 90.0),
    "triangle-right": (3, 0.0),
    "square": (4, 45.0),
    "diamond": (4, 0.0),
    "pentagon": (5, -90.0),
    "hexagon": (6, 0.0),
    "octagon": (8, 22.5),
}
"""Regular polygons: (corners, angle of the first corner in degrees, y down)."""


def _polygon(corners: int, start: float, x: float, y: float, rx: float, ry: float) -> str:
    points = []
    for number in range(corners):
        angle = math.radians(start + 360.0 * number / corners)
        points.append(f"{x + rx * math.cos(angle):.1f},{y + ry * math.sin(angle):.1f}")
    return " ".join(points)


def _star(x: float, y: float, r: float) -> str:
    points = []
    for number in range(10):
        radius = r if number % 2 == 0 else r * 0.45
        angle = math.radians(-90.0 + 36.0 * number)
        points.append(f"{x + radius * math.cos(angle):.1f},{y + radius * math.sin(angle):.1f}")
    return " ".join(points)


def symbol_svg(symbol: str, x: float, y: float, size: float, colour: str) -> str:
    """One marker of a plotly symbol name (``circle``, ``square-open``, ``diamond-tall``, …)
    at (x, y), ``size`` across, in SVG; a name not known here is drawn as an x."""
    base = symbol.removesuffix("-open")
    filled = base == symbol
    overlay = ""
    for mark in ("-x", "-cross"):
        if base.endswith(mark):
            base, overlay = base.removesuffix(mark), mark[1:]
    r = size / 2.0
    rx, ry = r, r
    if base in ("diamond-tall", "diamond-wide"):
        rx, ry = (r * 0.7, r * 1.2) if base == "diamond-tall" else (r * 1.2, r * 0.7)
        base = "diamond"
    paint = (
        f'fill="{colour}" stroke="#2b2b2b" stroke-width="0.8"'
        if filled
        else f'fill="none" stroke="{colour}" stroke-width="1.5"'
    )
    line = f'stroke="{colour if not filled else "#ffffff"}" stroke-width="1.2" fill="none"'
    if base == "circle":
        shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" {paint}/>'
    elif base == "star":
        shape = f'<polygon points="{_star(x, y, r * 1.2)}" {paint}/>'
    elif base in _POLYGONS:
        corners, start = _POLYGONS[base]
        grow = 1.3 if corners == 4 and base == "square" else 1.0
        points = _polygon(corners, start, x, y, rx * grow, ry * grow)
        shape = f'<polygon points="{points}" {paint}/>'
    elif base in ("cross", "asterisk", "hourglass"):
        shape = _strokes(base, x, y, r, colour)
    else:
        # ``x`` and any symbol not drawn here: a cross turned by 45 degrees.
        shape = _strokes("x", x, y, r, colour)
    if overlay:
        shape += _strokes(overlay, x, y, r * 0.7, colour, line)
    return shape


def _strokes(kind: str, x: float, y: float, r: float, colour: str, paint: str = "") -> str:
    paint = paint or f'stroke="{colour}" stroke-width="2" fill="none"'
    if kind == "cross":
        d = f"M{x - r:.1f},{y:.1f}H{x + r:.1f}M{x:.1f},{y - r:.1f}V{y + r:.1f}"
    elif kind == "hourglass":
        d = f"M{x - r:.1f},{y - r:.1f}H{x + r:.1f}L{x - r:.1f},{y + r:.1f}H{x + r:.1f}Z"
    elif kind == "asterisk":
        d = (
            f"M{x - r:.1f},{y:.1f}H{x + r:.1f}M{x:.1f},{y - r:.1f}V{y + r:.1f}"
            f"M{x - r * 0.7:.1f},{y - r * 0.7:.1f}L{x + r * 0.7:.1f},{y + r * 0.7:.1f}"
            f"M{x - r * 0.7:.1f},{y + r * 0.7:.1f}L{x + r * 0.7:.1f},{y - r * 0.7:.1f}"
        )
    else:
        d = (
            f"M{x - r:.1f},{y - r:.1f}L{x + r:.1f},{y + r:.1f}"
            f"M{x - r:.1f},{y + r:.1f}L{x + r:.1f},{y - r:.1f}"
        )
    return f'<path d="{d}" {paint}/>'


def compact_map_svg(context: HmiContext, states: Mapping[str, MarkerState]) -> str:
    """The small map of the context's districts and placed assets as an SVG document."""
    placed = [asset for asset in context.assets if asset.position is not None]
    latitudes = [corner.latitude for d in context.districts for corner in d.outline]
    latitudes += [asset.position.latitude for asset in placed if asset.position is not None]
    longitudes = [corner.longitude for d in context.districts for corner in d.outline]
    longitudes += [asset.position.longitude for asset in placed if asset.position is not None]
    if not latitudes:
        return _document(HEIGHT_PX, [])
    middle = (min(latitudes) + max(latitudes)) / 2.0
    # Equirectangular, as the plotly map: a degree of latitude is 1/cos(latitude) degrees of
    # longitude long. Drawn in pixels of the picture (short numbers), y downwards.
    ratio = 1.0 / max(math.cos(math.radians(middle)), 0.01)
    span_x = max(max(longitudes) - min(longitudes), 1e-9)
    span_y = max((max(latitudes) - min(latitudes)) * ratio, 1e-9)
    inner = HEIGHT_PX * (1.0 - 2.0 * MARGIN)
    scale = inner / max(span_y, span_x * inner / (HEIGHT_PX * 4.0))
    pad = HEIGHT_PX * MARGIN
    west, north = min(longitudes), max(latitudes)

    def at(longitude: float, latitude: float) -> tuple[float, float]:
        return pad + (longitude - west) * scale, pad + (north - latitude) * ratio * scale

    width = 2.0 * pad + span_x * scale
    parts: list[str] = []
    for district in context.districts:
        corners = [at(corner.longitude, corner.latitude) for corner in district.outline]
        outline = " ".join(f"{x:.1f},{y:.1f}" for x, y in corners)
        parts.append(
            f'<polygon points="{outline}" fill="{DISTRICT_FILL}" stroke="{DISTRICT_EDGE}" '
            'stroke-width="1"/>'
        )
    for district in context.districts:
        if not district.outline:
            continue
        lats = [corner.latitude for corner in district.outline]
        lons = [corner.longitude for corner in district.outline]
        x, y = at(sum(lons) / len(lons), max(lats) - (max(lats) - min(lats)) * 0.08)
        parts.append(_text(district.label, x, y + DISTRICT_LABEL_PX, DISTRICT_LABEL_PX, "#6a6a6a"))
    district_labels = {district.name: district.label for district in context.districts}
    by_type: dict[str, list[AssetDef]] = {}
    for asset in placed:
        by_type.setdefault(asset.type, []).append(asset)
    markers = [
        (SYMBOLS.get(asset_type, OTHER_SYMBOL), point)
        for asset_type in sorted(by_type)
        for point in marker_points(by_type[asset_type], states, district_labels)
    ]
    # Each kind of marker is drawn once (``<defs>``) and placed by reference: a city's
    # hundreds of markers cost a few bytes each. The abnormal are placed last, over the normal.
    kinds: dict[tuple[str, bool, bool], str] = {}
    placed_markers: list[str] = []
    labels: dict[bool, list[str]] = {False: [], True: []}
    for abnormal in (False, True):
        for symbol, point in markers:
            if point.abnormal is not abnormal:
                continue
            kind = (symbol, abnormal, point.count > 1)
            name = kinds.setdefault(kind, f"m{len(kinds)}")
            x, y = at(point.longitude, point.latitude)
            placed_markers.append(f'<use href="#{name}" x="{x:.1f}" y="{y:.1f}"/>')
            if point.label:
                size = GROUP_PX if point.count > 1 else MARKER_PX
                labels[abnormal].append(
                    f'<text x="{x:.1f}" y="{y - size * 0.8:.1f}">{escape(point.label)}</text>'
                )
    definitions = "".join(
        f'<g id="{name}">'
        + symbol_svg(
            symbol,
            0.0,
            0.0,
            GROUP_PX if group else MARKER_PX,
            ABNORMAL_COLOUR if abnormal else MARKER_GREY,
        )
        + "</g>"
        for (symbol, abnormal, group), name in kinds.items()
    )
    parts.append(f"<defs>{definitions}</defs>")
    parts.extend(placed_markers)
    for abnormal, texts in labels.items():
        colour = ABNORMAL_COLOUR if abnormal else MARKER_GREY
        parts.append(
            f'<g text-anchor="middle" font-size="{LABEL_PX:g}" fill="{colour}">{"".join(texts)}</g>'
        )
    return _document(width, parts)


def _text(text: str, x: float, y: float, size: float, colour: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" fill="{colour}" '
        f'text-anchor="middle">{escape(text)}</text>'
    )


def _document(width: float, parts: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{HEIGHT_PX}" '
        f'viewBox="0 0 {width:.1f} {HEIGHT_PX}" font-family="{escape(FONT)}">'
        f"{''.join(parts)}</svg>"
    )


def svg_data_uri(svg: str) -> str:
    """An SVG document as a ``data:`` URI for an ``<img>`` (the HMI's CSP allows them)."""
    # Base64: encoded in C, where percent-encoding a city's map takes milliseconds.
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def alt_text(context: HmiContext, states: Mapping[str, MarkerState]) -> str:
    """What the small map tells, in words: the abnormal assets and their reasons."""
    placed = [asset for asset in context.assets if asset.position is not None]
    abnormal = [
        (asset, states[asset.name])
        for asset in placed
        if asset.name in states and states[asset.name].abnormal
    ]
    if not abnormal:
        return f"City map: {len(placed)} assets, none abnormal."
    named = "; ".join(f"{asset.title}: {state.text}" for asset, state in abnormal[:MAX_ALT_ASSETS])
    more = len(abnormal) - MAX_ALT_ASSETS
    rest = f"; and {more} more" if more > 0 else ""
    return f"City map: {len(placed)} assets, {len(abnormal)} abnormal: {named}{rest}."
