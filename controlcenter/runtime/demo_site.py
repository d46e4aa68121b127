"""Generate a site file from the simulated city's point list.

The demo city's devices and tags are never written by hand: they come from the same source the
simulator serves them from, so the two cannot disagree. The site's name, location, automation,
areas, interlocks, displays and alarm templates come from a hand-written overlay
(``sites/demo-overlay.yaml``); this module adds the ``devices`` and ``tags`` sections and, from
the simulator's geography (``plc_sim.geography``), the ``districts`` and ``assets`` sections:
every plant item with its type, place and what it feeds, at every scale. The overlay names
the demo's rule files relative to the site file (``demo-rules/*.yaml``): ``write_demo_site``
puts copies of them next to a site file it writes elsewhere. Tags are written one per line
(YAML flow mappings), so a site of twenty thousand points stays readable and every problem
still has its own line number.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from controlcenter.runtime.defaults import DEFAULT_BASE_PORT
from controlcenter.runtime.demo_lighting_rules import automated_cabinets, render_lighting_rules
from controlcenter.site.config import SiteInfo
from plc_sim.charging.points import ChargingPoint
from plc_sim.city import CHARGING_DEVICE, OCPP_PASSWORD_ENV, CityOptions, SimulatedCity
from plc_sim.domain import DOMAINS
from plc_sim.geography import CityGeography, District, PlacedAsset, city_geography
from plc_sim.points import SimPoint

SCAN_INTERVALS_S: Mapping[str, float] = {
    "water": 1.0,
    "lights": 1.0,
    "heat": 5.0,
    "bldg": 5.0,
    "mobility": 15.0,
}
"""Scan class per domain: water and lighting every second, slow thermal plant every 5 s, the
bus and bike feeds as often as their publishers rebuild them."""

MQTT_TIMESTAMP_POINTER = "/time"
"""Where the simulated sensors' uplinks carry their own time (ChirpStack's ``time``)."""

OCPP_HEARTBEAT_S = 60
"""Heartbeat interval the center's central system gives the simulated charge points."""

SitePoint = SimPoint | ChargingPoint
"""A generated tag: a point a simulated device serves, or a charge point's."""


@dataclass(frozen=True, slots=True)
class GeneratedDevice:
    """One device entry of a generated site file."""

    name: str
    protocol: str
    endpoint: str
    scan_interval_s: float
    unit_id: int | None = None
    device_instance: int | None = None
    extra: tuple[tuple[str, object], ...] = ()
    """Further fields of the entry, in order (an MQTT broker's topic prefix, the OCPP central
    system's charge points)."""


def city_devices(
    city: SimulatedCity, host: str | None = None, scan_interval_s: float | None = None
) -> list[GeneratedDevice]:
    """The device entries for a city, at the ports it listens on (planned ones if not running);
    ``scan_interval_s`` replaces every domain's scan class (e.g. for a fast simulated clock)."""
    result = []
    for name, (device_host, port) in city.endpoints().items():
        if port == 0:
            raise ValueError(
                f"device {name} has no port yet: start the city or give it a base port"
            )
        device = city.device(name)
        where = f"{host or device_host}:{port}"
        if device.protocol == "mqtt":
            result.append(_mqtt_device(city, name, where))
            continue
        if device.protocol in ("gtfs_realtime", "gbfs"):
            scan = scan_interval_s or SCAN_INTERVALS_S["mobility"]
            result.append(GeneratedDevice(name, device.protocol, f"http://{where}", scan))
            continue
        result.append(
            GeneratedDevice(
                name=name,
                protocol=device.protocol,
                endpoint=f"opc.tcp://{where}" if device.protocol == "opcua" else where,
                scan_interval_s=scan_interval_s or SCAN_INTERVALS_S.get(name.split(".", 1)[0], 1.0),
                unit_id=device.unit_id if device.protocol == "modbus" else None,
                device_instance=device.device_instance if device.protocol == "bacnet" else None,
            )
        )
    if city.charging is not None:
        result.append(_ocpp_device(city, host))
    return result


def _mqtt_device(city: SimulatedCity, name: str, where: str) -> GeneratedDevice:
    """A sensor network's broker connection: its sensors' longest interval is how often a
    point must hear from its sensor (Uncertain after one missed report, Bad after three)."""
    sensors = city.sensors(name)
    interval = max(sensor.interval_s for sensor in sensors)
    extra: tuple[tuple[str, object], ...] = (
        ("topic_prefix", city.options.mqtt_prefix),
        ("report_interval", interval),
        ("timestamp_pointer", MQTT_TIMESTAMP_POINTER),
    )
    return GeneratedDevice(name, "mqtt", where, interval, extra=extra)


def _ocpp_device(city: SimulatedCity, host: str | None) -> GeneratedDevice:
    """The center's central system, listening where the simulated charge points connect."""
    url = city.ocpp_url
    if url is None:
        raise ValueError("the charge points' central system has no port yet: start the city")
    netloc = url.split("//", 1)[1].split("/", 1)[0]
    listen_host, _, port = netloc.rpartition(":")
    points = [
        {"id": model.id, "password_env": OCPP_PASSWORD_ENV, "max_power_w": model.max_power_w}
        for model in city.charge_point_models()
    ]
    extra: tuple[tuple[str, object], ...] = (
        ("listen", f"{host or listen_host}:{port}"),
        ("charge_points", points),
        ("heartbeat_interval", OCPP_HEARTBEAT_S),
    )
    return GeneratedDevice(CHARGING_DEVICE, "ocpp", "", 10.0, extra=extra)


def render_site(
    overlay_text: str,
    devices: Iterable[GeneratedDevice],
    points: Iterable[SitePoint],
    geography: CityGeography | None = None,
) -> str:
    """A complete site file: the overlay's sections followed by generated devices and tags
    and, given the city's ``geography``, its districts and assets (every plant item with its
    type, place and what it feeds; the overlay's alarm templates apply by type)."""
    overlay = yaml.safe_load(overlay_text)
    if not isinstance(overlay, dict):
        raise ValueError("the site overlay must be a mapping")
    generated = {"devices", "tags"} | ({"districts", "assets"} if geography else set())
    clashing = sorted(generated & set(overlay))
    if clashing:
        raise ValueError(
            f"the site overlay must not define {', '.join(clashing)}: they are generated"
        )
    points = list(points)
    lines = [
        overlay_text.rstrip(),
        "",
        "# Generated from the simulated city's point list.",
        "devices:",
    ]
    for device in devices:
        lines.append(f"  - {_flow(_device_fields(device))}")
    lines.append("")
    lines.append("tags:")
    for point in points:
        lines.append(f"  - {_flow(_tag_fields(point))}")
    if geography is not None:
        lines.append("")
        lines.append("districts:")
        for district in geography.districts:
            lines.append(f"  - {_flow(_district_fields(district))}")
        lines.append("")
        lines.append("assets:")
        areas = _AssetAreas(overlay.get("areas") or [], [point.tag for point in points])
        for asset in geography.assets:
            lines.append(f"  - {_flow(_asset_fields(asset, areas.area_of(asset.name)))}")
    return "\n".join(lines) + "\n"


def _district_fields(district: District) -> dict[str, object]:
    return {
        "name": district.name,
        "label": district.label,
        "outline": [list(corner) for corner in district.outline],
    }


def _asset_fields(asset: PlacedAsset, area: str) -> dict[str, object]:
    fields: dict[str, object] = {"name": asset.name, "type": asset.type}
    if area and area != asset.name.split(".", 1)[0]:
        fields["area"] = area
    fields["label"] = asset.label
    fields["position"] = list(asset.position)
    fields["district"] = asset.district
    if asset.feeds:
        fields["feeds"] = list(asset.feeds)
    return fields


class _AssetAreas:
    """The overlay's area of an asset: the first area one of whose patterns matches one of the
    asset's tags (its alarms belong there), or "" for none."""

    def __init__(self, areas: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> None:
        self._areas = [(str(area["name"]), [str(p) for p in area["tags"]]) for area in areas]
        self._tags: dict[str, list[str]] = {}
        for tag in tags:
            parts = tag.split(".")
            for end in range(1, len(parts)):
                self._tags.setdefault(".".join(parts[:end]), []).append(tag)

    def area_of(self, asset: str) -> str:
        tags = self._tags.get(asset, [])
        for name, patterns in self._areas:
            if any(fnmatch.fnmatchcase(tag, pattern) for pattern in patterns for tag in tags):
                return name
        return ""


def _device_fields(device: GeneratedDevice) -> dict[str, object]:
    if device.protocol == "ocpp":
        # The central system listens rather than reaching out: no endpoint, no scan class.
        return {"name": device.name, "protocol": device.protocol, **dict(device.extra)}
    if device.protocol == "mqtt":
        # The broker pushes: how often sensors report stands in for a scan class.
        return {
            "name": device.name,
            "protocol": device.protocol,
            "endpoint": device.endpoint,
            **dict(device.extra),
        }
    fields: dict[str, object] = {
        "name": device.name,
        "protocol": device.protocol,
        "endpoint": device.endpoint,
        "scan_interval": device.scan_interval_s,
    }
    if device.unit_id is not None:
        fields["unit_id"] = device.unit_id
    if device.device_instance is not None:
        fields["device_instance"] = device.device_instance
    return fields


def _tag_fields(point: SitePoint) -> dict[str, object]:
    fields: dict[str, object] = {
        "name": point.tag,
        "device": point.device,
        "address": point.address,
        "data_type": point.data_type,
    }
    if point.unit:
        fields["unit"] = point.unit
    if point.low is not None and point.high is not None and point.low < point.high:
        fields["range"] = [point.low, point.high]
    if point.writable:
        fields["writable"] = True
    if point.description:
        fields["description"] = point.description
    return fields


def _flow(fields: Mapping[str, object]) -> str:
    """One YAML flow mapping; JSON scalars are valid YAML and quote whatever needs it."""
    return "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in fields.items()) + "}"


DEMO_RULES_DIRECTORY = "demo-rules"
"""The folder, next to the demo site file, of the demo's rule files."""
LIGHTING_RULE_FILE = "lighting.yaml"
"""The demo's rule file that names cabinets (``demo_lighting_rules``)."""


def demo_rule_files() -> dict[str, str]:
    """The demo's packaged rule files: file name to text."""
    folder = resources.files("controlcenter") / "sites" / DEMO_RULES_DIRECTORY
    return {
        entry.name: entry.read_text("utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml") and entry.is_file()
    }


def write_demo_site(path: Path, site_text: str) -> None:
    """Write a generated demo site file, and the demo's rule files into ``demo-rules/`` next to
    it, each written whole and then renamed (a watcher never reads half a file); the site file
    comes last, so that whoever waits for it finds its rule files there."""
    rules = path.parent / DEMO_RULES_DIRECTORY
    rules.mkdir(parents=True, exist_ok=True)
    texts = demo_rule_files()
    # The lighting rules name cabinets, which the city's seed deals: written for this site's.
    cabinets = automated_cabinets(site_text)
    if cabinets and LIGHTING_RULE_FILE in texts:
        texts[LIGHTING_RULE_FILE] = render_lighting_rules(cabinets)
    for name, text in texts.items():
        _write_whole(rules / name, text)
    _write_whole(path, site_text)


def _write_whole(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return  # e.g. the packaged file itself
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def demo_overlay_text() -> str:
    """The hand-written part of the demo site: site, automation, areas, interlocks, displays."""
    return (resources.files("controlcenter") / "sites" / "demo-overlay.yaml").read_text("utf-8")


def load_demo_overlay() -> SiteInfo:
    """Where the demo city is (name, location, time zone), from its hand-written overlay."""
    document = yaml.safe_load(demo_overlay_text())
    return SiteInfo.model_validate(document["site"])


def demo_city_options(
    scale: int = 1,
    seed: int = 1,
    host: str = "127.0.0.1",
    base_port: int = DEFAULT_BASE_PORT,
    domains: frozenset[str] = frozenset(DOMAINS),
) -> CityOptions:
    """The demo city at the overlay's location (sun, weather and time zone follow it)."""
    site = load_demo_overlay()
    return CityOptions(
        scale=scale,
        seed=seed,
        host=host,
        base_port=base_port,
        latitude=site.latitude,
        longitude=site.longitude,
        timezone=site.timezone,
        domains=domains,
    )


def render_demo_site(city: SimulatedCity, scan_interval_s: float | None = None) -> str:
    """The demo site file for ``city`` at the ports it listens on (planned ones if stopped)."""
    devices = city_devices(city, scan_interval_s=scan_interval_s)
    points: list[SitePoint] = [*city.points(), *city.charging_points()]
    domains = {point.tag.split(".", 1)[0] for point in points}
    return render_site(
        overlay_for_domains(demo_overlay_text(), domains), devices, points, city_geography(city)
    )


DEMO_RULE_FILE_DOMAINS = {
    "water.yaml": "water",
    "lighting.yaml": "lights",
    "heating.yaml": "heat",
    "buildings.yaml": "bldg",
}
"""Which domain of the simulated city each demo rule file automates."""


def overlay_for_domains(overlay_text: str, domains: set[str]) -> str:
    """The overlay for a city simulating only some domains: the others' rule files, areas,
    interlocks, featured tags, assets, alarms and open datasets left out (they would name tags
    the site does not have).
    The whole city's overlay is returned as written, comments and all."""
    overlay = yaml.safe_load(overlay_text)
    if not isinstance(overlay, dict):
        raise ValueError("the site overlay must be a mapping")
    if all(
        all(_domain(pattern) in domains for pattern in area["tags"])
        for area in overlay.get("areas", [])
    ):
        return overlay_text
    automation = overlay.get("automation", {})
    automation["rule_files"] = [
        name
        for name in automation.get("rule_files", [])
        if DEMO_RULE_FILE_DOMAINS.get(Path(name).name, "") in domains
    ]
    overlay["areas"] = [
        area
        for area in overlay.get("areas", [])
        if all(_domain(p) in domains for p in area["tags"])
    ]
    overlay["interlocks"] = [
        interlock
        for interlock in overlay.get("interlocks", [])
        if all(_domain(p) in domains for p in interlock["tags"])
        and _domain(str(interlock["block_when"])) in domains
    ]
    hmi = overlay.get("hmi", {})
    hmi["featured"] = [tag for tag in hmi.get("featured", []) if _domain(tag) in domains]
    kept_areas = {area["name"] for area in overlay["areas"]}
    if "assets" in overlay:
        overlay["assets"] = [a for a in overlay["assets"] if _domain(a["name"]) in domains]
    if "alarms" in overlay:
        overlay["alarms"] = [
            a for a in overlay["alarms"] if _domain(a.get("tag") or a["name"]) in domains
        ]
    if "alarm_suppression" in overlay:
        overlay["alarm_suppression"] = [
            s for s in overlay["alarm_suppression"] if s["area"] in kept_areas
        ]
    for route in overlay.get("notifications", {}).get("routes", []):
        route["areas"] = [area for area in route.get("areas", []) if area in kept_areas]
    open_data = overlay.get("open_data", {})
    if "datasets" in open_data:
        open_data["datasets"] = [
            dataset
            for dataset in open_data["datasets"]
            if all(_domain(pattern) in domains for pattern in dataset["tags"])
        ]
    kept = ", ".join(sorted(domains))
    header = f"# The demo city's settings for the simulated domains only ({kept}).\n"
    return header + yaml.safe_dump(overlay, sort_keys=False, allow_unicode=True)


def _domain(tag_or_pattern: str) -> str:
    return tag_or_pattern.strip().split(".", 1)[0]
