"""Public alerts as CAP 1.2 messages (OASIS Common Alerting Protocol, version 1.2, 2010).

Alarms chosen by the site's ``public_alerts`` rules (air quality, flood, storm) become CAP
messages: an ``Alert`` when the alarm activates, an ``Update`` with the response ``AllClear``
(referencing the alert) when it clears. A message is for the population (scope ``Public``:
published on the open-data feed) or for the emergency services (scope ``Restricted``: sent
only to the configured receivers). Every message is journaled before it is published, and
posted, signed, to the site's alert webhooks.

The element order, the value lists and the formats follow the standard's data dictionary
(section 3.2): times as ``YYYY-MM-DDThh:mm:ss±hh:mm`` with ``-00:00`` for UTC and never ``Z``;
polygons as at least four ``lat,lon`` pairs, first and last equal; circles as
``lat,lon radius`` in kilometres; identifiers and senders without spaces, commas, ``<`` or
``&``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import logging
import math
import re
import threading
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from alarms.notify.webhook import WebhookDeliveryError, WebhookSender
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmState,
    AlarmTransition,
    AssetDef,
    DistrictDef,
    WebhookSettings,
)
from controlcenter.model import Event, EventKind
from controlcenter.ports import Clock, EventJournal

log = logging.getLogger(__name__)

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
SOURCE = "public-alerts"
"""The journal's source of public-alert events."""
MAX_KEPT = 500
"""Messages kept for the feed (the journal keeps every one)."""
MAX_QUEUED = 1000
_UNSAFE_ID = re.compile(r"[\s,<&]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Status(StrEnum):
    """``status``: the appropriate handling of the message."""

    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(StrEnum):
    """``msgType``: the nature of the message."""

    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class Scope(StrEnum):
    """``scope``: who may receive the message."""

    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class Category(StrEnum):
    """``category``: the category of the subject event."""

    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    SECURITY = "Security"
    RESCUE = "Rescue"
    FIRE = "Fire"
    HEALTH = "Health"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    CBRNE = "CBRNE"
    OTHER = "Other"


class ResponseType(StrEnum):
    """``responseType``: the action recommended for the audience."""

    SHELTER = "Shelter"
    EVACUATE = "Evacuate"
    PREPARE = "Prepare"
    EXECUTE = "Execute"
    AVOID = "Avoid"
    MONITOR = "Monitor"
    ASSESS = "Assess"
    ALL_CLEAR = "AllClear"
    NONE = "None"


class Urgency(StrEnum):
    """``urgency``: the time available to prepare."""

    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class Severity(StrEnum):
    """``severity``: the threat to life or property."""

    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class Certainty(StrEnum):
    """``certainty``: how sure the sender is."""

    OBSERVED = "Observed"
    LIKELY = "Likely"
    POSSIBLE = "Possible"
    UNLIKELY = "Unlikely"
    UNKNOWN = "Unknown"


class Audience(StrEnum):
    """Whom a public-alert rule speaks to."""

    POPULATION = "population"
    """Scope Public: the open-data feed and the webhooks."""
    EMERGENCY_SERVICES = "emergency_services"
    """Scope Restricted: the webhooks only, never the open feed."""


@dataclass(frozen=True, slots=True)
class Circle:
    """A circle: centre (WGS 84) and radius in kilometres."""

    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class Area:
    """``area``: the affected area, described and drawn."""

    description: str
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    """Each a closed ring of (lat, lon), first point repeated last."""
    circles: tuple[Circle, ...] = ()


@dataclass(frozen=True, slots=True)
class Info:
    """``info``: the event and what to do about it, for one language."""

    categories: tuple[Category, ...]
    event: str
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    areas: tuple[Area, ...]
    response_types: tuple[ResponseType, ...] = ()
    audience: str = ""
    language: str = "en-US"
    effective: datetime | None = None
    expires: datetime | None = None
    sender_name: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    """``parameter`` value pairs (valueName, value)."""


@dataclass(frozen=True, slots=True)
class CapAlert:
    """``alert``: one CAP message."""

    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    info: tuple[Info, ...]
    restriction: str = ""
    """Required with scope Restricted."""
    addresses: str = ""
    """Required with scope Private."""
    note: str = ""
    references: tuple[CapAlert, ...] = ()
    """The earlier messages this one updates or cancels."""
    alarm: str = field(default="", compare=False)
    """The center's alarm that raised the message (not part of the CAP document)."""


def cap_time(moment: datetime) -> str:
    """A CAP ``DateTime``: seconds, explicit offset, ``-00:00`` for UTC (never ``Z``)."""
    if moment.tzinfo is None:
        raise ValueError("CAP times carry their offset: a naive datetime cannot be sent")
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def safe_identifier(text: str) -> str:
    """``text`` fit for ``identifier``/``sender``: no whitespace, comma, ``<`` or ``&``."""
    cleaned = _UNSAFE_ID.sub("-", text.strip())
    if not cleaned:
        raise ValueError("a CAP identifier cannot be empty")
    return cleaned


def _text(value: str) -> str:
    """Free text from configuration or the field, without characters XML 1.0 refuses."""
    return _CONTROL.sub(" ", value)


def _coordinate(lat: float, lon: float) -> str:
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise ValueError(f"not a WGS 84 position: {lat}, {lon}")
    return f"{lat:.6f},{lon:.6f}"


def polygon_text(ring: Sequence[tuple[float, float]]) -> str:
    """A CAP ``polygon``: the ring closed (first point repeated), at least four pairs."""
    points = list(ring)
    if points and points[0] != points[-1]:
        points.append(points[0])
    if len(points) < 4:
        raise ValueError("a CAP polygon needs at least three distinct corners")
    return " ".join(_coordinate(lat, lon) for lat, lon in points)


def circle_text(circle: Circle) -> str:
    """A CAP ``circle``: ``lat,lon radius`` with the radius in kilometres."""
    if not math.isfinite(circle.radius_km) or circle.radius_km < 0:
        raise ValueError(f"not a radius: {circle.radius_km}")
    return f"{_coordinate(circle.lat, circle.lon)} {circle.radius_km:.3f}"


def reference_text(alert: CapAlert) -> str:
    """One entry of ``references``: ``sender,identifier,sent``."""
    return f"{alert.sender},{alert.identifier},{cap_time(alert.sent)}"


def _sub(parent: ET.Element, name: str, text: str) -> ET.Element:
    child = ET.SubElement(parent, f"{{{CAP_NAMESPACE}}}{name}")
    child.text = text
    return child


def alert_element(alert: CapAlert) -> ET.Element:
    """The ``alert`` element, its children in the schema's order."""
    if alert.scope is Scope.RESTRICTED and not alert.restriction:
        raise ValueError("a Restricted message needs its restriction")
    if alert.scope is Scope.PRIVATE and not alert.addresses:
        raise ValueError("a Private message needs its addresses")
    root = ET.Element(f"{{{CAP_NAMESPACE}}}alert")
    _sub(root, "identifier", safe_identifier(alert.identifier))
    _sub(root, "sender", safe_identifier(alert.sender))
    _sub(root, "sent", cap_time(alert.sent))
    _sub(root, "status", alert.status.value)
    _sub(root, "msgType", alert.msg_type.value)
    _sub(root, "scope", alert.scope.value)
    if alert.restriction:
        _sub(root, "restriction", _text(alert.restriction))
    if alert.addresses:
        _sub(root, "addresses", _text(alert.addresses))
    if alert.note:
        _sub(root, "note", _text(alert.note))
    if alert.references:
        _sub(root, "references", " ".join(reference_text(r) for r in alert.references))
    for info in alert.info:
        _info_element(root, info)
    return root


def _info_element(root: ET.Element, info: Info) -> None:
    if not info.categories:
        raise ValueError("an info block needs at least one category")
    if not info.areas:
        raise ValueError("the center's alerts always say where: an info block needs an area")
    element = _sub(root, "info", "")
    element.text = None
    _sub(element, "language", info.language)
    for category in info.categories:
        _sub(element, "category", category.value)
    _sub(element, "event", _text(info.event))
    for response in info.response_types:
        _sub(element, "responseType", response.value)
    _sub(element, "urgency", info.urgency.value)
    _sub(element, "severity", info.severity.value)
    _sub(element, "certainty", info.certainty.value)
    if info.audience:
        _sub(element, "audience", _text(info.audience))
    if info.effective is not None:
        _sub(element, "effective", cap_time(info.effective))
    if info.expires is not None:
        _sub(element, "expires", cap_time(info.expires))
    if info.sender_name:
        _sub(element, "senderName", _text(info.sender_name))
    if info.headline:
        _sub(element, "headline", _text(info.headline))
    if info.description:
        _sub(element, "description", _text(info.description))
    if info.instruction:
        _sub(element, "instruction", _text(info.instruction))
    for name, value in info.parameters:
        parameter = _sub(element, "parameter", "")
        parameter.text = None
        _sub(parameter, "valueName", _text(name))
        _sub(parameter, "value", _text(value))
    for area in info.areas:
        area_element = _sub(element, "area", "")
        area_element.text = None
        _sub(area_element, "areaDesc", _text(area.description))
        for ring in area.polygons:
            _sub(area_element, "polygon", polygon_text(ring))
        for circle in area.circles:
            _sub(area_element, "circle", circle_text(circle))


def to_xml(alert: CapAlert) -> bytes:
    """The CAP 1.2 document of ``alert`` (UTF-8, with the XML declaration)."""
    ET.register_namespace("", CAP_NAMESPACE)
    document: bytes = ET.tostring(alert_element(alert), encoding="utf-8", xml_declaration=True)
    return document


def atom_feed(
    alerts: Sequence[CapAlert], *, feed_id: str, title: str, self_url: str, updated: datetime
) -> bytes:
    """An Atom feed (RFC 4287) with each CAP message embedded in its entry's ``content``, as
    alert aggregators read them."""
    ET.register_namespace("", ATOM_NAMESPACE)
    ET.register_namespace("cap", CAP_NAMESPACE)
    atom = f"{{{ATOM_NAMESPACE}}}"
    feed = ET.Element(f"{atom}feed")
    ET.SubElement(feed, f"{atom}id").text = feed_id
    ET.SubElement(feed, f"{atom}title").text = _text(title)
    ET.SubElement(feed, f"{atom}updated").text = updated.astimezone(UTC).isoformat()
    ET.SubElement(feed, f"{atom}link", rel="self", href=self_url)
    author = ET.SubElement(feed, f"{atom}author")
    ET.SubElement(author, f"{atom}name").text = _text(title)
    for alert in alerts:
        entry = ET.SubElement(feed, f"{atom}entry")
        ET.SubElement(entry, f"{atom}id").text = f"{feed_id}/{alert.identifier}"
        headline = next((i.headline or i.event for i in alert.info), alert.msg_type.value)
        ET.SubElement(entry, f"{atom}title").text = _text(headline)
        ET.SubElement(entry, f"{atom}updated").text = alert.sent.astimezone(UTC).isoformat()
        ET.SubElement(
            entry, f"{atom}link", rel="alternate", type=CAP_MEDIA_TYPE,
            href=f"{self_url}/{alert.identifier}",
        )  # fmt: skip
        content = ET.SubElement(entry, f"{atom}content", type=CAP_MEDIA_TYPE)
        content.append(alert_element(alert))
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document


# --- which alarms become public alerts -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicAlertRule:
    """Alarms whose names match ``alarms`` (shell patterns) raise this CAP alert."""

    name: str
    alarms: tuple[str, ...]
    audience: Audience
    category: Category
    event: str
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    response: ResponseType = ResponseType.MONITOR
    headline: str = ""
    """Default: the alarm's message."""
    instruction: str = ""
    radius_km: float = 2.0
    """The circle drawn around the alarm's asset."""
    expires_after_s: float = 6 * 3600.0

    def matches(self, alarm: str) -> bool:
        """Whether this rule speaks for ``alarm``."""
        return any(fnmatch.fnmatchcase(alarm, pattern) for pattern in self.alarms)


@dataclass(frozen=True, slots=True)
class _Delivery:
    alert: CapAlert
    body: bytes


class AlertDesk:
    """Turns alarm transitions into CAP messages (an AlarmListener): keeps the recent ones for
    the feeds, journals each and posts each to the alert webhooks."""

    def __init__(
        self,
        rules: Sequence[PublicAlertRule],
        *,
        sender: str,
        sender_name: str,
        assets: Sequence[AssetDef],
        districts: Sequence[DistrictDef],
        journal: EventJournal,
        clock: Clock,
        webhooks: Sequence[str] = (),
        webhook: WebhookSettings | None = None,
        status: Status = Status.ACTUAL,
    ) -> None:
        if webhooks and webhook is None:
            raise ValueError("alert webhooks need the notifications' webhook settings")
        self._rules = tuple(rules)
        self._sender = safe_identifier(sender)
        self._sender_name = sender_name
        self._assets = {asset.name: asset for asset in assets}
        self._districts = {district.name: district for district in districts}
        self._journal = journal
        self._clock = clock
        self._webhooks = tuple(webhooks)
        self._status = status
        self._sender_client = (
            WebhookSender(webhook, clock) if webhook is not None and webhooks else None
        )
        self._lock = threading.Lock()
        self._kept: deque[CapAlert] = deque(maxlen=MAX_KEPT)
        self._open: dict[str, CapAlert] = {}
        """Per alarm, the alert in force (cleared by its all-clear)."""
        self._outbox: deque[_Delivery] = deque(maxlen=MAX_QUEUED)
        self._serial = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.delivered = 0
        self.failed = 0

    def rule_for(self, alarm: str) -> PublicAlertRule | None:
        """The first rule speaking for ``alarm``."""
        return next((rule for rule in self._rules if rule.matches(alarm)), None)

    # --- the listener side: any thread, never blocks -----------------------------------------

    def on_transition(
        self, definition: AlarmDef, state: AlarmState, transition: AlarmTransition
    ) -> None:
        """Raise an alert when a chosen alarm activates, an all-clear when it clears."""
        rule = self.rule_for(definition.name)
        if rule is None:
            return
        if transition.action is AlarmAction.ACTIVATE:
            alert = self._alert(rule, definition, state, transition)
        elif transition.action is AlarmAction.CLEAR:
            with self._lock:
                earlier = self._open.get(definition.name)
            if earlier is None:
                return
            alert = self._all_clear(rule, earlier, transition.time)
        else:
            return
        self.publish(alert)

    def publish(self, alert: CapAlert) -> None:
        """Journal ``alert``, keep it for the feeds and queue it for the webhooks."""
        body = to_xml(alert)
        audience = "population" if alert.scope is Scope.PUBLIC else "emergency services"
        headline = next((i.headline or i.event for i in alert.info), "")
        # Journaled first: a message the feed or a receiver has seen is always on record.
        self._journal.record(
            Event(
                self._clock.now(),
                EventKind.ALARM,
                SOURCE,
                f"CAP {alert.msg_type.value} {alert.identifier} for the {audience}: {headline}"
                + (f" (alarm {alert.alarm})" if alert.alarm else ""),
                severity=2 if alert.msg_type is MsgType.ALERT else 0,
            )
        )
        with self._lock:
            self._kept.append(alert)
            if alert.msg_type is MsgType.ALERT and alert.alarm:
                self._open[alert.alarm] = alert
            elif alert.alarm:
                self._open.pop(alert.alarm, None)
            if self._sender_client is not None:
                self._outbox.append(_Delivery(alert, body))
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # --- the feeds -----------------------------------------------------------------------------

    def messages(self, scope: Scope | None = None) -> list[CapAlert]:
        """The kept messages, newest first (of one scope, or all)."""
        with self._lock:
            kept = list(self._kept)
        return [a for a in reversed(kept) if scope is None or a.scope is scope]

    def message(self, identifier: str, scope: Scope | None = None) -> CapAlert | None:
        """The kept message called ``identifier`` (of ``scope`` when given)."""
        return next((a for a in self.messages(scope) if a.identifier == identifier), None)

    def in_force(self) -> list[CapAlert]:
        """The alerts whose alarm has not cleared yet."""
        with self._lock:
            return list(self._open.values())

    # --- building messages ---------------------------------------------------------------------

    def _identifier(self, moment: datetime) -> str:
        return f"{self._sender}-{moment.astimezone(UTC):%Y%m%dT%H%M%S}-{next(self._serial):05d}"

    def _area(self, rule: PublicAlertRule, definition: AlarmDef) -> Area:
        asset = self._assets.get(definition.asset) or self._asset_of(definition)
        if asset is None:
            return Area(self._sender_name or "the city")
        district = self._districts.get(asset.district)
        circles = (
            (Circle(asset.position.latitude, asset.position.longitude, rule.radius_km),)
            if asset.position is not None
            else ()
        )
        polygons = (
            (tuple((corner.latitude, corner.longitude) for corner in district.outline),)
            if district is not None and len(district.outline) >= 3
            else ()
        )
        label = asset.label or asset.name
        description = f"{label}, {district.label}" if district is not None else label
        return Area(description, polygons, circles)

    def _asset_of(self, definition: AlarmDef) -> AssetDef | None:
        names = [n for n in self._assets if definition.name.startswith(n + ".")]
        return self._assets[max(names, key=len)] if names else None

    def _alert(
        self,
        rule: PublicAlertRule,
        definition: AlarmDef,
        state: AlarmState,
        transition: AlarmTransition,
    ) -> CapAlert:
        sent = transition.time
        restricted = rule.audience is Audience.EMERGENCY_SERVICES
        value = transition.value if transition.value is not None else state.value
        parameters: list[tuple[str, str]] = [("alarm", definition.name)]
        if definition.tag:
            parameters.append(("tag", definition.tag))
        if value is not None:
            parameters.append(("value", str(value)))
        if definition.limit is not None:
            parameters.append(("limit", f"{definition.limit:g}"))
        message = definition.message or state.message or definition.name
        info = Info(
            categories=(rule.category,),
            event=rule.event,
            urgency=rule.urgency,
            severity=rule.severity,
            certainty=rule.certainty,
            areas=(self._area(rule, definition),),
            response_types=(rule.response,),
            audience=rule.audience.value.replace("_", " "),
            effective=sent,
            expires=sent + timedelta(seconds=rule.expires_after_s),
            sender_name=self._sender_name,
            headline=rule.headline or message,
            description=_description(definition, message, value),
            instruction=rule.instruction,
            parameters=tuple(parameters),
        )
        return CapAlert(
            identifier=self._identifier(sent),
            sender=self._sender,
            sent=sent,
            status=self._status,
            msg_type=MsgType.ALERT,
            scope=Scope.RESTRICTED if restricted else Scope.PUBLIC,
            restriction="for emergency services only" if restricted else "",
            info=(info,),
            alarm=definition.name,
        )

    def _all_clear(self, rule: PublicAlertRule, earlier: CapAlert, moment: datetime) -> CapAlert:
        infos = tuple(
            replace(
                info,
                urgency=Urgency.PAST,
                severity=Severity.MINOR,
                certainty=Certainty.OBSERVED,
                response_types=(ResponseType.ALL_CLEAR,),
                effective=moment,
                expires=moment + timedelta(hours=1),
                headline=f"All clear: {info.headline}",
                instruction="The situation is back to normal.",
            )
            for info in earlier.info
        )
        return replace(
            earlier,
            identifier=self._identifier(moment),
            sent=moment,
            msg_type=MsgType.UPDATE,
            info=infos,
            references=(replace(earlier, references=()),),
        )

    # --- the running side ------------------------------------------------------------------

    async def run(self) -> None:
        """Post queued messages to the webhooks until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            while True:
                self._wake.clear()
                while True:
                    with self._lock:
                        delivery = self._outbox.popleft() if self._outbox else None
                    if delivery is None:
                        break
                    await self._deliver(delivery)
                await self._wake.wait()
        finally:
            self._loop = None
            self._wake = None
            if self._sender_client is not None:
                await self._sender_client.aclose()

    async def _deliver(self, delivery: _Delivery) -> None:
        client = self._sender_client
        if client is None:
            return
        for url in self._webhooks:
            try:
                await client.post_body(
                    url, delivery.body, CAP_MEDIA_TYPE, delivery.alert.identifier
                )
            except WebhookDeliveryError as err:
                self.failed += 1
                self._journal.record(
                    Event(
                        self._clock.now(),
                        EventKind.ALARM,
                        SOURCE,
                        f"CAP {delivery.alert.identifier} not delivered to a webhook: {err}",
                        severity=2,
                    )
                )
            else:
                self.delivered += 1

    def pending(self) -> int:
        """Messages waiting for the webhooks."""
        with self._lock:
            return len(self._outbox)


def _description(definition: AlarmDef, message: str, value: object) -> str:
    parts = [message.rstrip(".") + "."]
    if value is not None and definition.limit is not None:
        parts.append(f"Measured {value} against a threshold of {definition.limit:g}.")
    if definition.guidance.consequence:
        parts.append(definition.guidance.consequence.rstrip(".") + ".")
    return " ".join(parts)


def rules_by_name(rules: Sequence[PublicAlertRule]) -> Mapping[str, PublicAlertRule]:
    """The rules by name (refusing duplicates)."""
    named: dict[str, PublicAlertRule] = {}
    for rule in rules:
        if rule.name in named:
            raise ValueError(f"two public-alert rules are called {rule.name!r}")
        named[rule.name] = rule
    return named
