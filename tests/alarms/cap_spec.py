"""CAP 1.2 conformance checks written from the OASIS standard (no tests of its own).

Section 3.2 of "Common Alerting Protocol Version 1.2" (OASIS Standard, 1 July 2010) gives, per
element, whether it is required, how often it may occur, its order (the schema is a sequence)
and its value list or format. ``problems(xml)`` returns every departure from those tables, so a
test can assert ``problems(doc) == []`` and a broken document names what is wrong.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

NS = "urn:oasis:names:tc:emergency:cap:1.2"

# (element, min, max) in schema order; max None = unbounded.
ALERT_CHILDREN: tuple[tuple[str, int, int | None], ...] = (
    ("identifier", 1, 1),
    ("sender", 1, 1),
    ("sent", 1, 1),
    ("status", 1, 1),
    ("msgType", 1, 1),
    ("source", 0, 1),
    ("scope", 1, 1),
    ("restriction", 0, 1),
    ("addresses", 0, 1),
    ("code", 0, None),
    ("note", 0, 1),
    ("references", 0, 1),
    ("incidents", 0, 1),
    ("info", 0, None),
)
INFO_CHILDREN: tuple[tuple[str, int, int | None], ...] = (
    ("language", 0, 1),
    ("category", 1, None),
    ("event", 1, 1),
    ("responseType", 0, None),
    ("urgency", 1, 1),
    ("severity", 1, 1),
    ("certainty", 1, 1),
    ("audience", 0, 1),
    ("eventCode", 0, None),
    ("effective", 0, 1),
    ("onset", 0, 1),
    ("expires", 0, 1),
    ("senderName", 0, 1),
    ("headline", 0, 1),
    ("description", 0, 1),
    ("instruction", 0, 1),
    ("web", 0, 1),
    ("contact", 0, 1),
    ("parameter", 0, None),
    ("resource", 0, None),
    ("area", 0, None),
)
AREA_CHILDREN: tuple[tuple[str, int, int | None], ...] = (
    ("areaDesc", 1, 1),
    ("polygon", 0, None),
    ("circle", 0, None),
    ("geocode", 0, None),
    ("altitude", 0, 1),
    ("ceiling", 0, 1),
)
PARAMETER_CHILDREN: tuple[tuple[str, int, int | None], ...] = (
    ("valueName", 1, 1),
    ("value", 1, 1),
)

VALUE_LISTS: dict[str, frozenset[str]] = {
    "status": frozenset({"Actual", "Exercise", "System", "Test", "Draft"}),
    "msgType": frozenset({"Alert", "Update", "Cancel", "Ack", "Error"}),
    "scope": frozenset({"Public", "Restricted", "Private"}),
    "category": frozenset(
        {
            "Geo",
            "Met",
            "Safety",
            "Security",
            "Rescue",
            "Fire",
            "Health",
            "Env",
            "Transport",
            "Infra",
            "CBRNE",
            "Other",
        }
    ),
    "responseType": frozenset(
        {
            "Shelter",
            "Evacuate",
            "Prepare",
            "Execute",
            "Avoid",
            "Monitor",
            "Assess",
            "AllClear",
            "None",
        }
    ),
    "urgency": frozenset({"Immediate", "Expected", "Future", "Past", "Unknown"}),
    "severity": frozenset({"Extreme", "Severe", "Moderate", "Minor", "Unknown"}),
    "certainty": frozenset({"Observed", "Likely", "Possible", "Unlikely", "Unknown"}),
}
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[-+]\d{2}:\d{2}$")
"""3.3.2: no fractional seconds, no alphabetic zone designator (never ``Z``)."""
TIMES = frozenset({"sent", "effective", "onset", "expires"})
NO_SPECIAL = re.compile(r"^[^\s,<&]+$")
"""identifier and sender: no spaces, commas or restricted characters (< and &)."""
_NUMBER = r"-?\d+(?:\.\d+)?"
PAIR = re.compile(rf"^({_NUMBER}),({_NUMBER})$")


def _local(element: ET.Element) -> str:
    tag = element.tag
    if not tag.startswith(f"{{{NS}}}"):
        return f"!{tag}"
    return tag[len(NS) + 2 :]


def _sequence(
    parent: ET.Element, table: tuple[tuple[str, int, int | None], ...], where: str
) -> list[str]:
    found: list[str] = []
    names = [_local(child) for child in parent]
    order = [name for name, _, _ in table]
    for name in names:
        if name.startswith("!"):
            found.append(f"{where}: element {name[1:]} is not in the CAP 1.2 namespace")
        elif name not in order:
            found.append(f"{where}: unknown element {name}")
    known = [name for name in names if name in order]
    positions = [order.index(name) for name in known]
    if positions != sorted(positions):
        found.append(f"{where}: elements out of the schema's order: {known}")
    for name, least, most in table:
        count = names.count(name)
        if count < least:
            found.append(f"{where}: required element {name} missing")
        if most is not None and count > most:
            found.append(f"{where}: {name} occurs {count} times (at most {most})")
    return found


def _pairs(text: str, where: str) -> tuple[list[tuple[float, float]], list[str]]:
    points: list[tuple[float, float]] = []
    found: list[str] = []
    for token in text.split():
        match = PAIR.match(token)
        if match is None:
            found.append(f"{where}: {token!r} is not a lat,lon pair")
            continue
        lat, lon = float(match.group(1)), float(match.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            found.append(f"{where}: {token!r} is outside WGS 84 ranges")
        points.append((lat, lon))
    return points, found


def _area(area: ET.Element, where: str) -> list[str]:
    found = _sequence(area, AREA_CHILDREN, where)
    for polygon in area.findall(f"{{{NS}}}polygon"):
        points, bad = _pairs(polygon.text or "", f"{where}/polygon")
        found += bad
        if len(points) < 4:
            found.append(f"{where}/polygon: fewer than 4 coordinate pairs")
        elif points[0] != points[-1]:
            found.append(f"{where}/polygon: first and last pairs differ")
    for circle in area.findall(f"{{{NS}}}circle"):
        parts = (circle.text or "").split()
        if len(parts) != 2:
            found.append(f"{where}/circle: not 'lat,lon radius'")
            continue
        found += _pairs(parts[0], f"{where}/circle")[1]
        try:
            if float(parts[1]) < 0:
                found.append(f"{where}/circle: negative radius")
        except ValueError:
            found.append(f"{where}/circle: radius {parts[1]!r} is not a number")
    if area.find(f"{{{NS}}}ceiling") is not None and area.find(f"{{{NS}}}altitude") is None:
        found.append(f"{where}: ceiling without altitude")
    return found


def _values(root: ET.Element) -> list[str]:
    found: list[str] = []
    for element in root.iter():
        name = _local(element)
        text = (element.text or "").strip()
        if name in VALUE_LISTS and text not in VALUE_LISTS[name]:
            found.append(f"{name}: {text!r} is not in CAP 1.2's value list")
        if name in TIMES and not DATE_TIME.match(text):
            found.append(f"{name}: {text!r} is not a CAP DateTime")
        if name in ("identifier", "sender") and not NO_SPECIAL.match(text):
            found.append(f"{name}: {text!r} has spaces, commas, < or &")
        if name == "references":
            for triple in text.split():
                parts = triple.split(",")
                if len(parts) != 3 or not DATE_TIME.match(parts[2]):
                    found.append(f"references: {triple!r} is not sender,identifier,sent")
    return found


def problems(document: bytes | ET.Element) -> list[str]:
    """Every departure of a CAP document (bytes or an ``alert`` element) from CAP 1.2."""
    root = ET.fromstring(document) if isinstance(document, bytes) else document
    if root.tag != f"{{{NS}}}alert":
        return [f"root element is {root.tag}, not the CAP 1.2 alert"]
    found = _sequence(root, ALERT_CHILDREN, "alert")
    found += _values(root)
    scope = (root.findtext(f"{{{NS}}}scope") or "").strip()
    if scope == "Restricted" and root.find(f"{{{NS}}}restriction") is None:
        found.append("alert: scope Restricted without restriction")
    if scope == "Private" and root.find(f"{{{NS}}}addresses") is None:
        found.append("alert: scope Private without addresses")
    for index, info in enumerate(root.findall(f"{{{NS}}}info")):
        where = f"info[{index}]"
        found += _sequence(info, INFO_CHILDREN, where)
        for pindex, parameter in enumerate(info.findall(f"{{{NS}}}parameter")):
            found += _sequence(parameter, PARAMETER_CHILDREN, f"{where}/parameter[{pindex}]")
        for aindex, area in enumerate(info.findall(f"{{{NS}}}area")):
            found += _area(area, f"{where}/area[{aindex}]")
    return found
