"""The city's further domains reach a center built from the generated site, over their own
protocols: sensor networks as JSON uplinks through the machine's Mosquitto (MQTT), buses as a
GTFS-Realtime feed, bike share as a GBFS feed, and charge points that connect to the center's
OCPP central system. Scenarios in the simulator show up in the center's tags: a waste container
past 80 %, an ozone episode, a river flood; a charge point started remotely through the command
pipeline reports energy."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest
import pytest_asyncio

from controlcenter.model import CommandStatus, Role, User
from controlcenter.runtime.app import ControlCenter
from controlcenter.runtime.demo_site import render_demo_site, write_demo_site
from controlcenter.security.users import UserStore
from controlcenter.site.config import SiteConfig, load_site
from historian.store import SqlHistorian
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.domain import MORE_DOMAINS

SPEED = 240.0
"""Four simulated minutes per second: a waste sensor's hour passes in 15 s."""
SCAN_S = 60.0
OLGA = User("olga", Role.OPERATOR)
BROKER = urlparse(os.environ.get("CC_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"))


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
            center = ControlCenter(site, store, clock, site_directory=site_path.parent, users=users)
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
async def test_a_container_past_80_percent_shows_in_its_tag(running: Running) -> None:
    waste = running.city.waste
    assert waste is not None
    waste.fill("waste.c002", 86.0)
    await _until(
        "the container's fill level above 80 % at the center",
        lambda: (_good_number(running, "waste.c002.fill") or 0.0) > 80.0,
    )
    waste.collect("waste.c002")
    await _until(
        "the emptied container at the center",
        lambda: (_good_number(running, "waste.c002.fill") or 100.0) < 20.0,
    )


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_an_ozone_episode_raises_the_o3_tag(running: Running) -> None:
    environment = running.city.environment
    assert environment is not None
    environment.start_ozone_episode()
    try:
        await _until(
            "ozone above the information threshold at the center",
            lambda: (_good_number(running, "env.air1.o3") or 0.0) > 180.0,
            timeout_s=80.0,
        )
    finally:
        environment.end_ozone_episode()


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_flood_raises_the_river_level(running: Running) -> None:
    environment = running.city.environment
    assert environment is not None
    before = _good_number(running, "env.river1.level")
    assert before is not None and before < 2.0
    environment.start_flood()
    try:
        await _until(
            "the river above its alert level at the center",
            lambda: (_good_number(running, "env.river1.level") or 0.0) > 2.5,
            timeout_s=80.0,
        )
    finally:
        environment.end_flood()


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
