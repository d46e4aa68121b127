"""Building blocks shared by the domain displays (level 2) and the faceplates (level 3).

Assets come from the site file; where a site names no asset for a group of tags that plainly
belongs to one (``water.plant.*``, ``water.tank1.*``), an asset is derived from the tag names so
that every part of a network has a box and a faceplate. Limit marks of analogue indicators come
from the alarm definitions of their tag: the operator sees the value against the limits that
will alarm.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dash import dcc, html

from controlcenter.automation import AlarmDef, AlarmKind, AlarmState, AssetDef
from controlcenter.model import DataType, TagDef
from hmi.context import HmiContext
from hmi.live import live_bar, live_state, live_value

ASSET_PATH = "/asset/"

_LIMIT_KINDS = {
    AlarmKind.HIGH_HIGH: "high_high",
    AlarmKind.HIGH: "high",
    AlarmKind.LOW: "low",
    AlarmKind.LOW_LOW: "low_low",
}

_DERIVED_TYPES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^water\.plant$"), "treatment_plant", "water"),
    (re.compile(r"^water\.ps\d+$"), "booster_station", "water"),
    (re.compile(r"^water\.tank\d+$"), "reservoir", "water"),
    (re.compile(r"^water\.dma\d+$"), "metering_area", "water"),
    (re.compile(r"^heat\.plant$"), "heating_plant", "heating"),
    (re.compile(r"^heat\.ss\d+$"), "substation", "heating"),
    (re.compile(r"^bldg\.[a-z0-9_]+$"), "building", "buildings"),
    (re.compile(r"^lights\.d\d+\.c\d+$"), "lighting_cabinet", "lighting"),
)
"""Asset types recognised from tag-name prefixes (the demo city's naming), for sites that do
not list every asset."""


@dataclass(frozen=True, slots=True)
class _SiteIndex:
    """Per context: tag names in order, and every asset (listed and derived) by name."""

    tag_count: int
    names: tuple[str, ...]
    assets: tuple[AssetDef, ...]
    by_name: Mapping[str, AssetDef]


_INDEX: dict[int, _SiteIndex] = {}


def _index(context: HmiContext) -> _SiteIndex:
    tags = context.tags_by_name()
    cached = _INDEX.get(id(context))
    if cached is not None and cached.tag_count == len(tags):
        return cached
    names = tuple(sorted(tags))
    listed = {asset.name: asset for asset in context.assets}
    derived: dict[str, AssetDef] = {}
    seen: set[str] = set()
    for name in names:
        parts = name.split(".")
        for depth in (2, 3):
            if len(parts) <= depth:
                continue
            prefix = ".".join(parts[:depth])
            if prefix in seen:
                continue
            seen.add(prefix)
            if prefix in listed:
                continue
            for pattern, kind, area in _DERIVED_TYPES:
                if pattern.match(prefix):
                    derived[prefix] = AssetDef(name=prefix, type=kind, area=area)
                    break
    assets = tuple(listed.values()) + tuple(derived[key] for key in sorted(derived))
    index = _SiteIndex(len(tags), names, assets, {asset.name: asset for asset in assets})
    _INDEX[id(context)] = index
    return index


def site_assets(context: HmiContext) -> tuple[AssetDef, ...]:
    """Every asset of the site: those listed, then those derived from tag names."""
    return _index(context).assets


def find_asset(context: HmiContext, name: str) -> AssetDef | None:
    """The asset ``name`` (listed or derived), or None."""
    return _index(context).by_name.get(name)


def assets_of(context: HmiContext, *types: str) -> list[AssetDef]:
    """The assets of the given types, in name order (``ps2`` before ``ps10``)."""
    wanted = set(types)
    return sorted(
        (asset for asset in site_assets(context) if asset.type in wanted),
        key=lambda asset: natural_key(asset.name),
    )


def tags_under(context: HmiContext, prefix: str) -> list[TagDef]:
    """The tags named ``<prefix>.…``, in name order (a binary search, not a scan)."""
    index = _index(context)
    start = prefix + "."
    first = bisect.bisect_left(index.names, start)
    last = bisect.bisect_left(index.names, prefix + "/")  # "/" sorts right after "."
    tags = context.tags_by_name()
    return [tags[name] for name in index.names[first:last]]


def children_of(context: HmiContext, prefix: str, pattern: str) -> list[str]:
    """The distinct next name parts under ``prefix`` that match ``pattern`` (``pump\\d+``)."""
    compiled = re.compile(pattern)
    found: dict[str, None] = {}
    for tag in tags_under(context, prefix):
        part = tag.name[len(prefix) + 1 :].split(".", 1)[0]
        if compiled.fullmatch(part):
            found[part] = None
    return sorted(found, key=natural_key)


def natural_key(text: str) -> tuple[tuple[int, str], ...]:
    """Sort key that orders embedded numbers by value (``c2`` before ``c10``)."""
    return tuple(
        (int(part), "") if part.isdigit() else (0, part) for part in re.split(r"(\d+)", text)
    )


def tag_of(context: HmiContext, name: str) -> TagDef | None:
    """The tag ``name``, or None when the site has none."""
    return context.tags_by_name().get(name)


def alarm_pairs(context: HmiContext) -> list[tuple[AlarmDef, AlarmState]]:
    """Every alarm with its state (empty when the center has no alarm service)."""
    return context.alarms.states() if context.alarms is not None else []


def alarm_limits(
    pairs: Iterable[tuple[AlarmDef, AlarmState]],
) -> dict[str, list[tuple[str, float]]]:
    """The limit marks per tag from limit alarms (``high 4.8``), for analogue indicators."""
    limits: dict[str, list[tuple[str, float]]] = {}
    for definition, _ in pairs:
        name = _LIMIT_KINDS.get(definition.kind)
        if name is not None and definition.limit is not None and definition.tag:
            limits.setdefault(definition.tag, []).append((name, definition.limit))
    return limits


def asset_alarms(
    pairs: Iterable[tuple[AlarmDef, AlarmState]], asset: str
) -> list[tuple[AlarmDef, AlarmState]]:
    """The alarms of ``asset``: its own, or on one of its tags or devices."""
    prefix = asset + "."
    return [
        (definition, state)
        for definition, state in pairs
        if definition.asset == asset
        or definition.name.startswith(prefix)
        or definition.tag.startswith(prefix)
    ]


def asset_href(name: str) -> str:
    """The URL of an asset's faceplate."""
    return ASSET_PATH + name


def asset_link(asset: AssetDef, class_name: str = "asset-link") -> Any:
    """A link to the asset's faceplate, labelled with its title."""
    return dcc.Link(asset.title, href=asset_href(asset.name), className=class_name)


def reading(
    context: HmiContext,
    name: str,
    label: str,
    limits: Mapping[str, Sequence[tuple[str, float]]],
    *,
    bar: bool = True,
) -> Any:
    """One labelled value: a horizontal analogue bar against its limits (for a numeric tag
    with a range) and its value; a dash where the site has no such tag."""
    tag = tag_of(context, name)
    if tag is None:
        return html.Div(
            [html.Span(label, className="reading-label"), html.Span("—", className="missing")],
            className="reading",
        )
    parts: list[Any] = [html.Span(label, className="reading-label")]
    numeric = tag.data_type in (DataType.FLOAT, DataType.INT)
    if bar and numeric and tag.low is not None and tag.high is not None and tag.high > tag.low:
        parts.append(live_bar(context.live, tag, limits=limits.get(name, ()), vertical=False))
    parts.append(live_value(context.live, tag))
    return html.Div(parts, className="reading", title=tag.description or tag.name)


def words(
    context: HmiContext,
    name: str,
    label: str,
    *,
    on: str = "ON",
    off: str = "OFF",
    abnormal_when: bool | None = None,
) -> Any:
    """One labelled boolean as words (``Running``/``Stopped``); a dash where there is none."""
    tag = tag_of(context, name)
    body: Any = (
        html.Span("—", className="missing")
        if tag is None
        else live_state(context.live, tag, on=on, off=off, abnormal_when=abnormal_when)
    )
    return html.Div([html.Span(label, className="reading-label"), body], className="reading")


def level_gauge(
    context: HmiContext, name: str, limits: Mapping[str, Sequence[tuple[str, float]]]
) -> Any:
    """A vertical bar for a level (a reservoir), with its limits; nothing without the tag."""
    tag = tag_of(context, name)
    if tag is None:
        return html.Span()
    return html.Div(
        [live_bar(context.live, tag, limits=limits.get(name, ())), live_value(context.live, tag)],
        className="level-gauge",
    )


def asset_box(asset: AssetDef, children: Sequence[Any], *, class_name: str = "") -> Any:
    """An asset's box on a schematic: its title linking to its faceplate, then its values."""
    return html.Div(
        [html.Div(asset_link(asset), className="asset-box-title"), *children],
        className=f"asset-box asset-{asset.type} {class_name}".strip(),
        id=f"box-{asset.name.replace('.', '-')}",
    )


def unavailable(title: str, text: str) -> Any:
    """A panel saying what is missing (never a traceback)."""
    return html.Section(className="panel message", children=[html.H2(title), html.P(text)])


MAX_ASSETS_AT_ONCE = 40
"""A domain display with more assets than this shows one district at a time (a city twenty
times the demo's has hundreds: drawn at once, the display would take seconds to open)."""
NO_DISTRICT = "-"


def district_name(asset: AssetDef) -> str:
    """The asset's district: the site's, else the part of its name that names one
    (``d1`` of ``lights.d1.c1``), else ``-``."""
    if asset.district:
        return asset.district
    parts = asset.name.split(".")
    if len(parts) > 2 and re.fullmatch(r"d\d+", parts[1]):
        return parts[1]
    return NO_DISTRICT


def district_page(
    context: HmiContext, path: str, assets: Sequence[AssetDef], query: Mapping[str, str]
) -> tuple[list[AssetDef], Any]:
    """The assets to draw and, for a large site, the district links above them.

    A small site is drawn whole (no links). A large one shows the district named by
    ``?district=`` (the first when none or an unknown one is asked for) and links to the others,
    each with its number of assets. Assets without a district are always drawn."""
    if len(assets) <= MAX_ASSETS_AT_ONCE:
        return list(assets), None
    counts: dict[str, int] = {}
    for asset in assets:
        counts[district_name(asset)] = counts.get(district_name(asset), 0) + 1
    names = sorted((name for name in counts if name != NO_DISTRICT), key=natural_key)
    if not names:
        return list(assets), None
    asked = query.get("district", "")
    chosen = asked if asked in counts else names[0]
    labels = {district.name: district.label for district in context.districts}
    links = [
        dcc.Link(
            f"{labels.get(name) or name} ({counts[name]})",
            href=f"{path}?district={name}",
            className="district-link" + (" current" if name == chosen else ""),
        )
        for name in names
    ]
    note: list[Any] = []
    if asked and asked not in counts:
        note = [html.Span(f"No district '{asked[:40]}'.", className="hint")]
    nav = html.Nav(
        [html.Span("District: ", className="reading-label"), *note, *links],
        className="district-nav",
    )
    shown = [a for a in assets if district_name(a) in (chosen, NO_DISTRICT)]
    return shown, nav
