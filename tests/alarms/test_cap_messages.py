"""CAP 1.2 public alerts: documents checked against the standard's tables, alarms raising and
clearing alerts, the two audiences, and signed delivery to a real webhook receiver."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alarms.cap import (
    CAP_MEDIA_TYPE,
    CAP_NAMESPACE,
    AlertDesk,
    Area,
    Audience,
    CapAlert,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    PublicAlertRule,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    atom_feed,
    cap_time,
    polygon_text,
    to_xml,
)
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmGuidance,
    AlarmKind,
    AlarmPriority,
    AssetDef,
    DistrictDef,
    GeoPoint,
    WebhookSettings,
)
from tests.alarms import cap_spec
from tests.alarms.notify_testkit import (
    SECRET,
    SECRET_ENV,
    T0,
    FakeClock,
    ListJournal,
    WebhookReceiver,
    activation,
    follow_up,
    webhook_receiver,
)

__all__ = ["webhook_receiver"]

N = f"{{{CAP_NAMESPACE}}}"
OZONE = AlarmDef(
    "air.s1.o3.information",
    AlarmKind.HIGH,
    AlarmPriority.HIGH,
    tag="air.s1.o3",
    limit=180.0,
    area="environment",
    asset="air.s1",
    message="Ozone above the EU information threshold",
    guidance=AlarmGuidance(consequence="Sensitive people may suffer"),
)
FLOOD = AlarmDef(
    "river.g1.level.flood_warning",
    AlarmKind.HIGH_HIGH,
    AlarmPriority.CRITICAL,
    tag="river.g1.level",
    limit=4.5,
    area="environment",
    asset="river.g1",
    message="River above the flood warning level",
)
ASSETS = (
    AssetDef("air.s1", "air_quality_station", "environment", "Air station Centre",
             GeoPoint(52.37, 4.90), "d1"),
    AssetDef("river.g1", "river_gauge", "environment", "Gauge North", GeoPoint(52.40, 4.91)),
)  # fmt: skip
DISTRICTS = (
    DistrictDef(
        "d1",
        "Centre",
        (GeoPoint(52.36, 4.88), GeoPoint(52.38, 4.88), GeoPoint(52.38, 4.92),
         GeoPoint(52.36, 4.92)),
    ),
)  # fmt: skip
OZONE_RULE = PublicAlertRule(
    "ozone",
    ("air.*.o3.*",),
    Audience.POPULATION,
    Category.HEALTH,
    "Ozone",
    Urgency.IMMEDIATE,
    Severity.MODERATE,
    Certainty.OBSERVED,
    ResponseType.AVOID,
    instruction="Avoid strenuous activity outdoors in the afternoon",
)
FLOOD_RULE = PublicAlertRule(
    "flood-services",
    ("river.*.flood_*",),
    Audience.EMERGENCY_SERVICES,
    Category.GEO,
    "Flood",
    Urgency.EXPECTED,
    Severity.SEVERE,
    Certainty.LIKELY,
    ResponseType.PREPARE,
)


def _desk(journal: ListJournal, clock: FakeClock, **options: object) -> AlertDesk:
    return AlertDesk(
        [OZONE_RULE, FLOOD_RULE],
        sender="demo-city.controlcenter",
        sender_name="Demo City control center",
        assets=ASSETS,
        districts=DISTRICTS,
        journal=journal,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


def _sample_alert(**changes: object) -> CapAlert:
    info = Info(
        categories=(Category.MET,),
        event="Storm",
        urgency=Urgency.EXPECTED,
        severity=Severity.SEVERE,
        certainty=Certainty.LIKELY,
        areas=(Area("City", ((((52.0, 4.0), (52.1, 4.0), (52.1, 4.1)),)), (Circle(52, 4, 3),)),),
        response_types=(ResponseType.SHELTER,),
        effective=T0,
        expires=T0 + timedelta(hours=3),
        headline="Storm <warning> & gusts",
        parameters=(("gust", "30 m/s"),),
    )
    fields: dict[str, object] = {
        "identifier": "id-1",
        "sender": "demo-city",
        "sent": T0,
        "status": Status.ACTUAL,
        "msg_type": MsgType.ALERT,
        "scope": Scope.PUBLIC,
        "info": (info,),
    }
    fields.update(changes)
    return CapAlert(**fields)  # type: ignore[arg-type]


def test_a_built_document_meets_cap_1_2() -> None:
    """Every element in the namespace, in order, with values from the lists; text escaped."""
    document = to_xml(_sample_alert())
    assert cap_spec.problems(document) == []
    root = ET.fromstring(document)
    assert root.tag == f"{N}alert"
    assert root.findtext(f"{N}sent") == "2026-01-15T10:00:00-00:00"
    assert root.findtext(f"{N}info/{N}headline") == "Storm <warning> & gusts"
    polygon = root.findtext(f"{N}info/{N}area/{N}polygon") or ""
    assert polygon.split()[0] == polygon.split()[-1] and len(polygon.split()) == 4
    assert root.findtext(f"{N}info/{N}area/{N}circle") == "52.000000,4.000000 3.000"


def test_the_checker_catches_what_the_standard_forbids() -> None:
    """The conformance checks fail on documents that break CAP 1.2 (so they prove something)."""
    good = ET.fromstring(to_xml(_sample_alert()))
    broken = ET.fromstring(to_xml(_sample_alert()))
    broken.remove(broken.find(f"{N}scope"))  # type: ignore[arg-type]
    assert "alert: required element scope missing" in cap_spec.problems(broken)
    wrong = ET.fromstring(to_xml(_sample_alert()))
    wrong.find(f"{N}info/{N}urgency").text = "Soon"  # type: ignore[union-attr]
    wrong.find(f"{N}sent").text = "2026-01-15T10:00:00Z"  # type: ignore[union-attr]
    found = cap_spec.problems(wrong)
    assert any("'Soon'" in p for p in found) and any("DateTime" in p for p in found)
    swapped = ET.fromstring(to_xml(_sample_alert()))
    status, sender = swapped[3], swapped[1]
    swapped[1], swapped[3] = status, sender
    assert any("order" in p for p in cap_spec.problems(swapped))
    assert cap_spec.problems(good) == []


def test_formats_and_conditions_of_the_standard() -> None:
    """UTC as -00:00, offsets kept, no naive times; a ring is closed; scope conditions hold."""
    assert cap_time(datetime(2030, 6, 1, 12, 0, 0, 500, tzinfo=UTC)) == "2030-06-01T12:00:00-00:00"
    cest = timezone(timedelta(hours=2))
    assert cap_time(datetime(2030, 6, 1, 14, 0, tzinfo=cest)) == "2030-06-01T14:00:00+02:00"
    with pytest.raises(ValueError, match="naive"):
        cap_time(datetime(2030, 6, 1))
    assert polygon_text([(1, 1), (1, 2), (2, 2)]).count(" ") == 3
    with pytest.raises(ValueError):
        polygon_text([(1, 1), (1, 2)])
    with pytest.raises(ValueError):
        polygon_text([(1, 1), (1, 2), (95, 2)])
    with pytest.raises(ValueError, match="restriction"):
        to_xml(_sample_alert(scope=Scope.RESTRICTED))
    with pytest.raises(ValueError, match="addresses"):
        to_xml(_sample_alert(scope=Scope.PRIVATE))
    hostile = to_xml(_sample_alert(identifier="a b,c<d&e", sender="x y"))
    assert cap_spec.problems(hostile) == []


def test_an_ozone_alarm_raises_a_public_alert_and_its_all_clear() -> None:
    """Activation: an Alert for the population over the station's district; clearing: an
    Update with AllClear that references it. Both journaled, both valid CAP."""
    journal, clock = ListJournal(), FakeClock()
    desk = _desk(journal, clock)
    definition, state, transition = activation(OZONE, T0, value=212.0)
    desk.on_transition(definition, state, transition)
    [alert] = desk.messages(Scope.PUBLIC)
    document = to_xml(alert)
    assert cap_spec.problems(document) == []
    root = ET.fromstring(document)
    assert root.findtext(f"{N}msgType") == "Alert"
    assert root.findtext(f"{N}scope") == "Public"
    assert root.findtext(f"{N}info/{N}category") == "Health"
    assert root.findtext(f"{N}info/{N}responseType") == "Avoid"
    assert root.findtext(f"{N}info/{N}area/{N}areaDesc") == "Air station Centre, Centre"
    assert root.find(f"{N}info/{N}area/{N}polygon") is not None
    assert "212.0" in (root.findtext(f"{N}info/{N}description") or "")
    assert desk.in_force() == [alert]

    cleared = follow_up(state, definition, AlarmAction.CLEAR, T0 + timedelta(hours=2), active=False)
    desk.on_transition(*cleared)
    update, original = desk.messages(Scope.PUBLIC)
    root = ET.fromstring(to_xml(update))
    assert cap_spec.problems(root) == []
    assert root.findtext(f"{N}msgType") == "Update"
    assert root.findtext(f"{N}info/{N}responseType") == "AllClear"
    assert root.findtext(f"{N}references") == (
        f"demo-city.controlcenter,{original.identifier},{cap_time(original.sent)}"
    )
    assert desk.in_force() == []
    assert journal.messages("CAP ")[0].startswith("CAP Alert ")
    assert len(journal.messages("CAP ")) == 2


def test_emergency_service_alerts_stay_off_the_public_feed() -> None:
    """A flood warning for the services is Restricted, with its restriction; unrelated alarms
    and other actions raise nothing; a clear without an alert raises nothing."""
    journal, clock = ListJournal(), FakeClock()
    desk = _desk(journal, clock)
    desk.on_transition(*activation(FLOOD, T0, value=4.7))
    other = AlarmDef("water.tank1.level.high", AlarmKind.HIGH, tag="water.tank1.level")
    desk.on_transition(*activation(other, T0))
    definition, state, _ = activation(OZONE, T0)
    desk.on_transition(*follow_up(state, definition, AlarmAction.ACKNOWLEDGE, T0))
    desk.on_transition(*follow_up(state, definition, AlarmAction.CLEAR, T0, active=False))
    assert desk.messages(Scope.PUBLIC) == []
    [restricted] = desk.messages()
    root = ET.fromstring(to_xml(restricted))
    assert cap_spec.problems(root) == []
    assert root.findtext(f"{N}scope") == "Restricted"
    assert root.findtext(f"{N}restriction")
    assert root.findtext(f"{N}info/{N}area/{N}circle", "").endswith(" 2.000")


def test_the_atom_feed_embeds_valid_cap_messages() -> None:
    """Each entry's content is a CAP 1.2 alert in its namespace."""
    journal, clock = ListJournal(), FakeClock()
    desk = _desk(journal, clock)
    desk.on_transition(*activation(OZONE, T0, value=250.0))
    feed = atom_feed(
        desk.messages(Scope.PUBLIC),
        feed_id="urn:demo:alerts",
        title="Demo City public alerts",
        self_url="http://127.0.0.1/open/v1/alerts",
        updated=T0,
    )
    root = ET.fromstring(feed)
    atom = "{http://www.w3.org/2005/Atom}"
    [entry] = root.findall(f"{atom}entry")
    content = entry.find(f"{atom}content")
    assert content is not None and content.get("type") == CAP_MEDIA_TYPE
    [alert] = list(content)
    assert cap_spec.problems(alert) == []


@pytest.mark.asyncio
async def test_alerts_are_posted_signed_to_the_webhooks(
    webhook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each message reaches the receiver as signed CAP XML; a refusing receiver is journaled."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    journal, clock = ListJournal(), FakeClock()
    webhook_receiver.statuses = [200, 400]
    desk = _desk(
        journal,
        clock,
        webhooks=(webhook_receiver.url(),),
        webhook=WebhookSettings(secret_env=SECRET_ENV, timeout_s=5.0, attempts=1),
    )
    runner = asyncio.create_task(desk.run())
    try:
        desk.on_transition(*activation(OZONE, T0, value=250.0))
        desk.on_transition(*activation(FLOOD, T0, value=4.9))
        deadline = asyncio.get_running_loop().time() + 10
        while desk.delivered + desk.failed < 2:
            assert asyncio.get_running_loop().time() < deadline, "webhooks not posted"
            await asyncio.sleep(0.01)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    first, second = webhook_receiver.requests
    assert first.headers["content-type"] == CAP_MEDIA_TYPE
    assert first.signature_valid()
    assert cap_spec.problems(first.body) == []
    assert ET.fromstring(second.body).findtext(f"{N}scope") == "Restricted"
    assert any("not delivered" in m for m in journal.messages("CAP "))


def test_webhooks_without_settings_are_refused() -> None:
    """Never post unsigned alerts."""
    with pytest.raises(ValueError, match="webhook settings"):
        _desk(ListJournal(), FakeClock(), webhooks=("http://127.0.0.1:9/x",))
