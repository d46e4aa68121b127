"""The city's further domains reach a center built from the generated site, over their own
protocols: sensor networks as JSON uplinks through the machine's Mosquitto (MQTT), buses as a
GTFS-Realtime feed, bike share as a GBFS feed, and charge points that connect to the center's
OCPP central system. Scenarios in the simulator end where the demo site's alarms and public
alerts take them: a waste container past 80 % is on the next collection list (and off it once
emptied); an ozone episode raises the ozone alarm and a CAP 1.2 message on the open alert feed;
a river flood raises the flood warning and its CAP message; a charge point started remotely
through the command pipeline reports energy."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import httpx
import pytest
import pytest_asyncio

from alarms.cap import CAP_MEDIA_TYPE, CAP_NAMESPACE, SOURCE, CapAlert, MsgType
from alarms.collection import distance_m
from controlcenter.automation import AlarmPriority, GeoPoint
from controlcenter.model import CommandStatus, Role, User
from controlcenter.runtime.app import ControlCenter, HmiOptions
from controlcenter.runtime.demo_site import render_demo_site, write_demo_site
from controlcenter.security.users import UserStore
from controlcenter.site.config import SiteConfig, load_site
from historian.store import SqlHistorian
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.domain import MORE_DOMAINS
from tests.alarms import cap_spec

SPEED = 480.0
"""Eight simulated minutes per second: a waste sensor's hour passes in 7.5 s, and the flood
wave (three simulated hours to its crest) lifts the river past its alert level in about 8 s."""
SCAN_S = 60.0
OLGA = User("olga", Role.OPERATOR)
BROKER = urlparse(os.environ.get("CC_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"))
CAP = f"{{{CAP_NAMESPACE}}}"
ATOM = "{http://www.w3.org/2005/Atom}"


@dataclass
class Running:
    """The city with every further domain and a center watching it."""

    city: SimulatedCity
    center: ControlCenter
    site: SiteConfig
    store: SqlHistorian


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp_path = tmp_path_factory.mktemp("new-domains")
    clock = SimClock(speed=SPEED, start=datetime(2026, 6, 23, 9, 0, tzinfo=UTC))
    options = CityOptions(
        seed=3,
        domains=frozenset(MORE_DOMAINS),
        mqtt_host=BROKER.hostname or "127.0.0.1",
        mqtt_port=BROKER.port or 1883,
        mqtt_prefix=f"test-{uuid.uuid4().hex[:12]}",
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CC_SIM_OCPP_PASSWORD", "a test charge point secret")
        city = SimulatedCity(clock, options)
        for point in city.charge_point_models():
            point.arrivals_per_hour = 0.0  # only the test's vehicles
        await city.start()
        try:
            site_path = tmp_path / "site" / "site.yaml"
            site_path.parent.mkdir(parents=True)
            write_demo_site(site_path, render_demo_site(city, scan_interval_s=SCAN_S))
            site = await asyncio.to_thread(load_site, site_path)
            users = UserStore(tmp_path / "users.json")
            users.add_user("olga", "a long operator passphrase 1", Role.OPERATOR)
            store = await asyncio.to_thread(SqlHistorian, f"sqlite:///{tmp_path / 'center.db'}")
            # The web server too: the open-data app serves the public CAP feed.
            center = ControlCenter(
                site,
                store,
                clock,
                hmi=HmiOptions(users_path=tmp_path / "users.json", port=0),
                site_directory=site_path.parent,
                users=users,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(center.run(stop))
            try:
                await asyncio.wait_for(center.ready.wait(), 60)
                yield Running(city, center, site, store)
            finally:
                stop.set()
                await asyncio.wait_for(task, 60)
                await asyncio.to_thread(store.close)
        finally:
            await city.stop()


async def _until(what: str, condition: Callable[[], bool], timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _good_number(running: Running, tag: str) -> float | None:
    sample = running.center.live.latest(tag)
    if not sample.quality.is_good or isinstance(sample.value, bool):
        return None
    return float(sample.value) if isinstance(sample.value, int | float) else None


def _active(running: Running, alarm: str) -> bool:
    return running.center.alarms.state(alarm).active


def _alert_for(running: Running, alarm: str) -> CapAlert | None:
    """The CAP Alert the center's alert desk raised for ``alarm``, if any yet."""
    desk = running.center.alert_desk
    assert desk is not None, "the demo site raises public alerts"
    return next(
        (m for m in desk.messages() if m.alarm == alarm and m.msg_type is MsgType.ALERT), None
    )


async def _published(running: Running, alert: CapAlert) -> ET.Element:
    """The alert as the center publishes it: journaled, on the open Atom feed and fetchable
    as one CAP 1.2 document over HTTP; returns that document's root, checked against CAP 1.2."""
    events = await asyncio.to_thread(running.store.read_events, source=SOURCE)
    assert any(alert.identifier in event.message for event in events), [e.message for e in events]
    async with httpx.AsyncClient(base_url=running.center.hmi_url, timeout=20) as client:
        feed = await client.get("/open/v1/alerts")
        assert feed.status_code == 200, feed.text
        entries = ET.fromstring(feed.content).findall(f"{ATOM}entry")
        embedded = [
            document
            for entry in entries
            for content in entry.findall(f"{ATOM}content")
            for document in content
            if document.findtext(f"{CAP}identifier") == alert.identifier
        ]
        assert len(embedded) == 1, f"{alert.identifier} not on the feed"
        assert cap_spec.problems(embedded[0]) == []
        one = await client.get(f"/open/v1/alerts/{alert.identifier}")
    assert one.status_code == 200 and one.headers["content-type"].startswith(CAP_MEDIA_TYPE)
    assert cap_spec.problems(one.content) == []
    return ET.fromstring(one.content)


def _check_alert(
    root: ET.Element, running: Running, alarm: str, asset: str, expected: dict[str, str]
) -> ET.Element:
    """The message's header and its one info block (returned): an actual alert for the
    public, about ``alarm``, with ``expected`` info fields, drawn around ``asset``."""
    assert root.findtext(f"{CAP}identifier")
    assert root.findtext(f"{CAP}sender") == "demo-city.controlcenter"
    sent = datetime.fromisoformat(root.findtext(f"{CAP}sent") or "")
    assert abs(sent - running.center.clock.now()) < timedelta(hours=6)
    assert root.findtext(f"{CAP}status") == "Actual"
    assert root.findtext(f"{CAP}msgType") == "Alert"
    assert root.findtext(f"{CAP}scope") == "Public"
    [info] = root.findall(f"{CAP}info")
    for field, value in expected.items():
        assert info.findtext(f"{CAP}{field}") == value, field
    parameters = {
        p.findtext(f"{CAP}valueName"): p.findtext(f"{CAP}value")
        for p in info.findall(f"{CAP}parameter")
    }
    assert parameters["alarm"] == alarm
    [area] = info.findall(f"{CAP}area")
    place = next(a for a in running.site.asset_defs() if a.name == asset)
    assert place.position is not None
    assert (area.findtext(f"{CAP}areaDesc") or "").startswith(place.label)
    centre, _radius = (area.findtext(f"{CAP}circle") or "").split(" ")
    lat, lon = (float(x) for x in centre.split(","))
    assert distance_m(GeoPoint(lat, lon), place.position) < 1.0
    assert area.findall(f"{CAP}polygon"), "the asset's district is drawn"
    return info


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_every_further_domain_reaches_the_center_over_its_protocol(
    running: Running,
) -> None:
    protocols = {device.name: device.protocol for device in running.site.devices}
    assert protocols["waste.sensors"] == "mqtt"
    assert protocols["mobility.bus_feed"] == "gtfs_realtime"
    assert protocols["mobility.bike_feed"] == "gbfs"
    assert protocols["charging.central"] == "ocpp"
    wanted = {
        "traffic.seg1.speed": "mqtt",
        "traffic.zone1.entry_rate": "mqtt",
        "parking.g1.free": "mqtt",
        "waste.c001.fill": "mqtt",
        "env.air1.no2": "mqtt",
        "env.river1.level": "mqtt",
        "mobility.line.l1.on_time_share": "gtfs_realtime",
        "mobility.bikes.s1.bikes": "gbfs",
    }
    await _until(
        "a good value of every domain's tag",
        lambda: all(_good_number(running, tag) is not None for tag in wanted),
    )
    # What the center holds is what the simulator measured (the parking garage's free spaces).
    garage = running.city.parking
    assert garage is not None
    free = garage.facility("parking.g1").free
    assert (
        0
        <= (_good_number(running, "parking.g1.free") or -1)
        <= garage.facility("parking.g1").capacity
    )
    assert abs((_good_number(running, "parking.g1.free") or -1000) - free) < 60
    camera = running.center.live.latest("cameras.cam01.online")
    await _until(
        "camera health", lambda: running.center.live.latest("cameras.cam01.online").quality.is_good
    )
    assert camera.value in (True, False)
    await _until(
        "the charge points connected",
        lambda: running.center.live.latest("charging.cp01.c0.connected").value is True,
    )


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_container_past_80_percent_is_on_the_next_collection_list(
    running: Running,
) -> None:
    waste = running.city.waste
    assert waste is not None
    planner = running.center.collection
    alarm = "waste.c002.fill.high"

    def listed() -> list[str]:
        return [stop.asset for stop in planner.next_collection()]

    assert not _active(running, alarm)
    waste.fill("waste.c002", 86.0)
    await _until(
        "the container's fill level above 80 % at the center",
        lambda: (_good_number(running, "waste.c002.fill") or 0.0) > 80.0,
    )
    await _until("waste.c002 on the next collection list", lambda: "waste.c002" in listed())
    stops = planner.next_collection()
    assert [stop.order for stop in stops] == list(range(1, len(stops) + 1))
    assert all(stop.fill_pct > 80.0 for stop in stops)
    [stop] = [s for s in stops if s.asset == "waste.c002"]
    place = next(a for a in running.site.asset_defs() if a.name == "waste.c002")
    assert place.position == GeoPoint(stop.latitude, stop.longitude)
    assert stop.label == place.label and 86.0 <= stop.fill_pct <= 100.0
    await _until("the container's full alarm", lambda: _active(running, alarm))
    assert running.center.alarms.definition(alarm).priority is AlarmPriority.LOW

    waste.collect("waste.c002")
    await _until(
        "the emptied container at the center",
        lambda: (_good_number(running, "waste.c002.fill") or 100.0) < 20.0,
    )
    assert "waste.c002" not in listed()
    await _until("the full alarm cleared", lambda: not _active(running, alarm))


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_an_ozone_episode_raises_the_alarm_and_a_public_alert(running: Running) -> None:
    environment = running.city.environment
    assert environment is not None
    alarm = "env.air1.o3.information"
    assert not _active(running, alarm)
    environment.start_ozone_episode()
    try:
        await _until(
            "ozone above the information threshold at the center",
            lambda: (_good_number(running, "env.air1.o3") or 0.0) > 180.0,
            timeout_s=80.0,
        )
        # The threshold applies to the 1-hour mean, which follows the readings up.
        await _until("the ozone information alarm", lambda: _active(running, alarm))
        assert running.center.alarms.definition(alarm).priority is AlarmPriority.MEDIUM
        await _until("its public alert", lambda: _alert_for(running, alarm) is not None)
    finally:
        environment.end_ozone_episode()
    alert = _alert_for(running, alarm)
    assert alert is not None
    root = await _published(running, alert)
    info = _check_alert(
        root,
        running,
        alarm,
        "env.air1",
        {
            "category": "Env",
            "event": "Ozone",
            "responseType": "Avoid",
            "urgency": "Expected",
            "severity": "Moderate",
            "certainty": "Observed",
            "audience": "population",
        },
    )
    assert "180" in (info.findtext(f"{CAP}headline") or "") + (
        info.findtext(f"{CAP}description") or ""
    )
    assert "asthma" in (info.findtext(f"{CAP}instruction") or "")


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_flood_raises_the_flood_warning_and_a_public_alert(running: Running) -> None:
    environment = running.city.environment
    assert environment is not None
    alarm = "env.river1.level.flood_warning"
    # A Good reading first: on a busy machine the gauge's last report may be between reports.
    await _until(
        "a Good river level", lambda: _good_number(running, "env.river1.level") is not None
    )
    before = _good_number(running, "env.river1.level")
    assert before is not None and before < 2.0
    assert not _active(running, alarm) and _alert_for(running, alarm) is None
    environment.start_flood()
    try:
        await _until(
            "the river above its alert level at the center",
            lambda: (_good_number(running, "env.river1.level") or 0.0) > 2.5,
            timeout_s=80.0,
        )
        await _until("the flood warning", lambda: _active(running, alarm), timeout_s=80.0)
        assert running.center.alarms.definition(alarm).priority is AlarmPriority.HIGH
        assert (_good_number(running, "env.river1.level") or 0.0) > 3.5
        await _until("its public alert", lambda: _alert_for(running, alarm) is not None)
    finally:
        environment.end_flood()
    alert = _alert_for(running, alarm)
    assert alert is not None
    root = await _published(running, alert)
    info = _check_alert(
        root,
        running,
        alarm,
        "env.river1",
        {
            "category": "Met",
            "event": "Flood warning",
            "responseType": "Prepare",
            "urgency": "Expected",
            "severity": "Severe",
            "certainty": "Observed",
        },
    )
    parameters = {
        p.findtext(f"{CAP}valueName"): p.findtext(f"{CAP}value")
        for p in info.findall(f"{CAP}parameter")
    }
    assert parameters["tag"] == "env.river1.level" and parameters["limit"] == "3.5"
    assert float(parameters["value"] or 0.0) > 3.5


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_charge_point_started_through_the_pipeline_reports_energy(
    running: Running,
) -> None:
    center = running.center
    point = next(p for p in running.city.charge_point_models() if p.id == "cp01")
    await _until(
        "cp01 connected", lambda: center.live.latest("charging.cp01.c0.connected").value is True
    )
    point.plug_in(1, authorise=False, soc=0.3)
    await _until(
        "a vehicle waiting at cp01",
        lambda: center.live.latest("charging.cp01.c1.status").value == "Preparing",
    )
    selection = await center.commands.select("charging.cp01.c1.charge", OLGA)
    result = await center.commands.operate(selection.selection_id, OLGA, True, "remote start")
    assert result.status is CommandStatus.CONFIRMED, result.reason
    await _until(
        "the session's energy at the center",
        lambda: (_good_number(running, "charging.cp01.c1.session_energy") or 0.0) > 0.0,
    )
