"""Commissioning against the simulated city: ``controlcenter discover`` for each protocol.

Each fragment printed is pasted under a minimal site header, checked by ``controlcenter check``,
loaded as a site file, and scanned through the center's own drivers next to the demo site's
tags for the same points: the values must agree. The city's clock runs at a crawl, so the
physics does not move between the two reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from typer.testing import CliRunner, Result

from controlcenter.cli.main import app
from controlcenter.model import TagDef, Value
from controlcenter.runtime.app import build_driver
from controlcenter.runtime.demo_site import render_demo_site, write_demo_site
from controlcenter.site.config import SiteConfig, load_site
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock

pytestmark = pytest.mark.e2e

HEADER = (
    "site: {name: Commissioning, latitude: 52.37, longitude: 4.9, timezone: Europe/Amsterdam}\n"
)


class City:
    """The running city and its generated demo site."""

    def __init__(self, city: SimulatedCity, demo: SiteConfig) -> None:
        self.city = city
        self.demo = demo

    def endpoint(self, device: str) -> str:
        """host:port of a device of the city."""
        host, port = self.city.endpoints()[device]
        return f"{host}:{port}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def city(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[City]:
    """Water, lighting and buildings on free ports, time crawling (0.001 x wall)."""
    simulated = SimulatedCity(
        SimClock(speed=0.001), CityOptions(seed=3, domains=frozenset({"water", "lights", "bldg"}))
    )
    await simulated.start()
    try:
        path = tmp_path_factory.mktemp("demo") / "city.yaml"
        await asyncio.to_thread(write_demo_site, path, render_demo_site(simulated))
        yield City(simulated, await asyncio.to_thread(load_site, path))
    finally:
        await simulated.stop()


async def invoke(*args: str) -> Result:
    """Run the command line in a worker thread (it runs its own event loop there)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def fragment_site(tmp_path: Path, fragment: str) -> SiteConfig:
    """The fragment under a minimal header: accepted by ``check``, then loaded."""
    path = tmp_path / "site.yaml"
    path.write_text(HEADER + "\n" + fragment, encoding="utf-8")
    checked = await invoke("check", "--site", str(path))
    assert checked.exit_code == 0, checked.output
    return await asyncio.to_thread(load_site, path)


async def read_all(site: SiteConfig, tags: list[TagDef], clock: SimClock) -> dict[str, Value]:
    """The Good values of ``tags`` read through their devices' drivers."""
    values: dict[str, Value] = {}
    for device in {tag.device for tag in tags}:
        driver = build_driver(site.device(device), clock)
        await driver.connect()
        try:
            samples = await driver.read([t for t in tags if t.device == device])
        finally:
            await driver.close()
        for sample in samples:
            assert sample.quality.is_good, f"{sample.tag}: {sample.quality}"
            assert sample.value is not None
            values[sample.tag] = sample.value
    return values


def assert_same(found: dict[str, Value], demo: dict[str, Value]) -> None:
    """Each point's value through the fragment equals its value through the demo site."""
    assert found.keys() == demo.keys()
    for name, value in demo.items():
        if isinstance(value, float):
            # Read a moment apart: a lamp's output level carries a little measurement noise
            # (hundredths of a percent); the addresses are compared exactly elsewhere.
            assert found[name] == pytest.approx(value, rel=1e-2, abs=0.05), name
        else:
            assert found[name] == value, name


@pytest.mark.timeout(120)
async def test_opcua_discovery_acquires_what_the_demo_site_does(city: City, tmp_path: Path) -> None:
    url = f"opc.tcp://{city.endpoint('lights.d1_ctrl')}"
    result = await invoke("discover", "opcua", url, "--device", "lights.d1_ctrl")
    assert result.exit_code == 0, result.output
    site = await fragment_site(tmp_path, result.stdout)
    found = site.tag_defs()
    demo = [t for t in city.demo.tag_defs() if t.device == "lights.d1_ctrl"]
    assert {t.name: t.address for t in found} == {t.name: t.address for t in demo}
    demo_by_name = {t.name: t for t in demo}
    for tag in found:
        assert tag.writable == demo_by_name[tag.name].writable, tag.name
        assert tag.unit == demo_by_name[tag.name].unit, tag.name
    setpoint = next(t for t in found if t.name == "lights.d1.c1.dim_setpoint")
    assert (setpoint.low, setpoint.high, setpoint.writable) == (0.0, 100.0, True)
    clock = SimClock()
    assert_same(await read_all(site, found, clock), await read_all(city.demo, demo, clock))


@pytest.mark.timeout(120)
async def test_bacnet_discovery_acquires_what_the_demo_site_does(
    city: City, tmp_path: Path
) -> None:
    result = await invoke(
        "discover", "bacnet", "--address", city.endpoint("bldg.school_bms"), "--timeout", "2"
    )
    assert result.exit_code == 0, result.output
    assert '{name: "bldg.school_bms", protocol: "bacnet"' in result.stdout
    site = await fragment_site(tmp_path, result.stdout)
    found = site.tag_defs()
    demo = [t for t in city.demo.tag_defs() if t.device == "bldg.school_bms"]
    assert {t.name: (t.address, t.unit, t.writable) for t in found} == {
        t.name: (t.address, t.unit, t.writable) for t in demo
    }
    clock = SimClock()
    assert_same(await read_all(site, found, clock), await read_all(city.demo, demo, clock))


@pytest.mark.timeout(120)
async def test_modbus_probe_finds_the_points_and_marks_its_guesses(
    city: City, tmp_path: Path
) -> None:
    result = await invoke(
        "discover", "modbus", city.endpoint("water.tank1_rtu"),
        "--range", "ir:0-20,co:0-3,di:0-3,hr:0-9", "--device", "water.new_rtu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    level_line = next(line for line in result.stdout.splitlines() if '"ir:0:float32"' in line)
    assert "# check: float32" in level_line
    site = await fragment_site(tmp_path, result.stdout)
    found = {t.address: t for t in site.tag_defs()}
    assert "coil:0" in found and found["coil:0"].writable
    # Addresses past the device's map (ir:8 onwards) answer "illegal address": skipped.
    assert not any(a.startswith("ir:") and int(a.split(":")[1]) >= 8 for a in found)
    demo = next(t for t in city.demo.tag_defs() if t.name == "water.tank1.level")
    clock = SimClock()
    probed = await read_all(site, [found["ir:0:float32"]], clock)
    expected = await read_all(city.demo, [demo], clock)
    assert probed["water.new_rtu.ir0"] == pytest.approx(expected[demo.name], rel=1e-3)


async def test_discovery_of_a_dead_endpoint_fails_in_one_line() -> None:
    result = await invoke("discover", "modbus", "127.0.0.1:1", "--timeout", "0.5")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "cannot connect" in result.output
    bad = await invoke("discover", "modbus", "127.0.0.1:502", "--range", "xx:0-5")
    assert bad.exit_code == 2
    assert "not a range" in bad.output
