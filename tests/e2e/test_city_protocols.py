"""The whole simulated city on free ports, commanded through the center's own drivers.

Per domain: read points over the real protocol, write a command, and see the physics answer it.
The city runs 600 times faster than the wall, so minutes of plant response take a fraction of a
second; every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from controlcenter.model import TagDef, Value
from controlcenter.runtime.app import build_driver
from controlcenter.runtime.demo_site import render_demo_site, write_demo_site
from controlcenter.site.config import SiteConfig, load_site
from drivers.base import Driver
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock

pytestmark = pytest.mark.e2e

SPEED = 600.0


class RunningCity:
    """The city, the site file generated for it, and one connected driver per device used."""

    def __init__(self, city: SimulatedCity, site: SiteConfig) -> None:
        self.city = city
        self.site = site
        self.tags = {tag.name: tag for tag in site.tag_defs()}
        self._drivers: dict[str, Driver] = {}

    async def driver(self, device: str) -> Driver:
        """A connected driver for ``device`` (one per device, reused)."""
        if device not in self._drivers:
            driver = build_driver(self.site.device(device), self.city.clock)  # type: ignore[arg-type]
            await driver.connect()
            self._drivers[device] = driver
        return self._drivers[device]

    async def read(self, tag: str) -> Value:
        """The tag's value over its device's protocol (a Good sample, or the test fails)."""
        definition = self.tags[tag]
        driver = await self.driver(definition.device)
        [sample] = await driver.read([definition])
        assert sample.quality.is_good, f"{tag}: {sample.quality}"
        assert sample.value is not None
        return sample.value

    async def number(self, tag: str) -> float:
        """The tag's value as a float."""
        value = await self.read(tag)
        assert isinstance(value, int | float), f"{tag}: {value!r} is no number"
        return float(value)

    async def write(self, tag: str, value: Value) -> Value:
        """Write over the tag's protocol and return the readback."""
        definition: TagDef = self.tags[tag]
        driver = await self.driver(definition.device)
        return await driver.write(definition, value)

    async def close(self) -> None:
        """Close every driver."""
        for driver in self._drivers.values():
            await driver.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running_city(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCity]:
    """The full city at scale 1 on free ports, with its generated site file loaded."""
    city = SimulatedCity(SimClock(speed=SPEED), CityOptions(seed=5))
    await city.start()
    try:
        site_path: Path = tmp_path_factory.mktemp("site") / "city.yaml"
        await asyncio.to_thread(write_demo_site, site_path, render_demo_site(city))
        running = RunningCity(city, await asyncio.to_thread(load_site, site_path))
        try:
            yield running
        finally:
            await running.close()
    finally:
        await city.stop()


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``probe`` until it holds, failing after ``timeout_s`` of wall time."""
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s} s")
        await asyncio.sleep(0.05)


async def test_every_device_listens_on_its_own_port(running_city: RunningCity) -> None:
    endpoints = running_city.city.endpoints()
    protocols = {running_city.city.device(name).protocol for name in endpoints}
    assert protocols == {"modbus", "opcua", "bacnet"}
    tcp_ports = [
        port
        for name, (_, port) in endpoints.items()
        if running_city.city.device(name).protocol != "bacnet"
    ]
    assert len(set(tcp_ports)) == len(tcp_ports)
    assert all(port > 0 for _, port in endpoints.values())
    assert len(running_city.site.tags) == len(running_city.city.points()) >= 1000


async def test_water_pump_on_fills_the_tank(running_city: RunningCity) -> None:
    await running_city.write("water.tank1.pump_cmd", False)
    before = await running_city.number("water.tank1.level")
    assert await running_city.write("water.tank1.pump_cmd", True) is True

    async def running_and_rising() -> bool:
        running = await running_city.read("water.tank1.pump_running")
        return running is True and await running_city.number("water.tank1.level") > before + 0.05

    await eventually(running_and_rising, what="tank 1 filling")
    await running_city.write("water.tank1.pump_cmd", False)


async def test_dimming_a_cabinet_to_half_about_halves_its_power(
    running_city: RunningCity,
) -> None:
    cabinet = "lights.d1.c1"
    await running_city.write(f"{cabinet}.mode", 1)  # manual
    await running_city.write(f"{cabinet}.dim_setpoint", 100.0)

    readings: list[tuple[float, float]] = []

    async def steady_full_power() -> bool:
        # The dim level ramps: wait until readings 1.5 s apart agree within 1 % (two polls in
        # a row may read the same scan's value halfway up the ramp).
        now = time.monotonic()
        readings.append((now, await running_city.number(f"{cabinet}.power")))
        earlier = [value for at, value in readings if now - at >= 1.5]
        latest = readings[-1][1]
        return bool(earlier) and latest > 0.5 and abs(earlier[-1] - latest) <= 0.01 * latest

    await eventually(steady_full_power, what="cabinet at steady full power")
    full = readings[-1][1]
    await running_city.write(f"{cabinet}.dim_setpoint", 50.0)

    async def about_half() -> bool:
        return 0.45 * full < await running_city.number(f"{cabinet}.power") < 0.65 * full

    await eventually(about_half, what="cabinet power about halved")


async def test_zone_setpoint_up_opens_the_valve_and_warms_the_zone(
    running_city: RunningCity,
) -> None:
    zone = "bldg.office.z1"
    start_temp = await running_city.number(f"{zone}.temp")
    start_valve = await running_city.number(f"{zone}.valve")
    target = min(28.0, max(start_temp + 4.0, 24.0))
    await running_city.write(f"{zone}.setpoint", target)

    async def valve_opened() -> bool:
        return await running_city.number(f"{zone}.valve") > max(start_valve + 10.0, 20.0)

    await eventually(valve_opened, what="heating valve opening")

    async def warmer() -> bool:
        return await running_city.number(f"{zone}.temp") > start_temp + 0.5

    await eventually(warmer, timeout_s=40.0, what="zone warming")


async def test_plant_supply_setpoint_reaches_substations_after_the_transport_delay(
    running_city: RunningCity,
) -> None:
    heating = running_city.city.heating
    assert heating is not None
    farthest = max(range(1, 7), key=heating.transport_delay_s)
    delay_s = heating.transport_delay_s(farthest)
    clock = running_city.city.clock
    before = await running_city.number(f"heat.ss{farthest}.primary_supply_temp")
    setpoint = await running_city.number("heat.plant.supply_setpoint")
    written_at = clock.monotonic()
    await running_city.write("heat.plant.supply_setpoint", min(120.0, setpoint + 15.0))

    async def warmer() -> bool:
        return await running_city.number(f"heat.ss{farthest}.primary_supply_temp") > before + 3.0

    await eventually(warmer, timeout_s=60.0, what="substation supply following the plant")
    arrived_after_s = clock.monotonic() - written_at
    # The hot front travels the pipe: nothing arrives much before the transport delay.
    assert arrived_after_s > 0.7 * delay_s, (arrived_after_s, delay_s)
