"""A specific failure reason stays until the device reports again: silence never replaces it.

What the scan engine infers from silence (no answer for 3 scan periods, no update for 3
intervals) says less than a reason a device or driver gave (a refused login, a refused
connection, an illegal address), so it only degrades Good values or the absence of any value.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import DataType, Quality, Sample, ScanMode, Substatus, TagDef
from drivers.opcua.config import OpcUaDeviceConfig, SecurityMode, SecurityPolicy
from drivers.opcua.driver import OpcUaDriver
from plc_sim.device import PointBinding, PointSpec, SimDevice
from plc_sim.servers.opcua.security import (
    OpcUaServerSecurity,
    make_self_signed_certificate,
    server_application_uri,
)
from plc_sim.servers.opcua.server import OpcUaDeviceServer
from tests.controlcenter.acquisition.gated_driver import GatedDriver, points_of
from tests.controlcenter.acquisition.manual_time import ManualSimClock, ManualWallTime
from tests.controlcenter.acquisition.scan_support import Collector

INTERVAL_S = 0.1
PASSWORD_ENV = "CC_TEST_SCAN_REASONS_PASSWORD"


async def until(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    """Poll ``condition`` until true, failing after ``deadline_s`` wall seconds."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline_s, f"{what} not within {deadline_s} s"
        await asyncio.sleep(0.01)


def latest(collector: Collector, tag: str) -> Sample:
    """The last sample published for ``tag``."""
    return next(s for s in reversed(collector.samples) if s.tag == tag)


async def subscribe_and_stay_silent(driver: OpcUaDriver, points: tuple[TagDef, ...]) -> None:
    """Subscribe ``points`` through the engine, then let ten scan periods of silence pass:
    the reason the driver reported first must be the one that stands."""
    wall = ManualWallTime()
    collector = Collector()
    engine = ScanEngine(
        [DeviceScan(driver, points, INTERVAL_S, timeout_s=5.0)],
        collector,
        ManualSimClock(wall, 1.0),
        rng=random.Random(5),
        wall=wall,
    )
    task = asyncio.create_task(engine.run())
    try:
        await wall.advance(INTERVAL_S)  # past the staggered start
        await until(lambda: engine.diagnostics()[0].mode is ScanMode.SUBSCRIBE, 15, "subscribed")
        reported = {p.name: latest(collector, p.name).quality for p in points}
        assert all(q.substatus is Substatus.NOT_CONNECTED for q in reported.values()), reported
        await wall.advance(10 * INTERVAL_S)
        assert {p.name: latest(collector, p.name).quality for p in points} == reported
        waiting = Substatus.WAITING_FOR_INITIAL_DATA
        assert not [s for s in collector.samples if s.quality.substatus is waiting]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.close()


@pytest.fixture
async def secured_device(tmp_path: Path) -> AsyncIterator[OpcUaDeviceServer]:
    """A simulated OPC UA device with Basic256Sha256 and one user, ``operator``."""
    spec = PointSpec("secure.level", "float", unit="m", low=0.0, high=10.0)
    device = SimDevice("secure_plc", "opcua", [PointBinding(spec, lambda: 4.0)])
    certificate, key = make_self_signed_certificate(
        tmp_path / "server", server_application_uri(device.name)
    )
    security = OpcUaServerSecurity(certificate, key, users={"operator": "right password"})
    server = OpcUaDeviceServer(device, security=security)
    await server.start()
    yield server
    await server.stop()


@pytest.mark.timeout(60)
async def test_a_refused_login_stays_the_reason_while_the_device_is_silent(
    secured_device: OpcUaDeviceServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong password")
    config = OpcUaDeviceConfig(
        secured_device.url,
        security_policy=SecurityPolicy.BASIC256SHA256,
        security_mode=SecurityMode.SIGN_AND_ENCRYPT,
        certificate_dir=tmp_path / "client",
        username="operator",
        password_env=PASSWORD_ENV,
        timeout_s=2.0,
        reconnect_max_delay_s=5.0,
    )
    driver = OpcUaDriver("secure_plc", config, WallClock())
    address = secured_device.addresses()["secure.level"]
    points = (TagDef("secure.level", "secure_plc", address, DataType.FLOAT, unit="m"),)
    await subscribe_and_stay_silent(driver, points)


async def test_a_refused_connection_stays_the_reason_while_the_device_is_silent(
    closed_port: int,
) -> None:
    config = OpcUaDeviceConfig(
        f"opc.tcp://127.0.0.1:{closed_port}", timeout_s=1.0, reconnect_max_delay_s=5.0
    )
    driver = OpcUaDriver("gone_plc", config, WallClock())
    points = (TagDef("gone.level", "gone_plc", "ns=2;s=gone.level", DataType.FLOAT),)
    await subscribe_and_stay_silent(driver, points)


async def test_no_answer_for_three_periods_keeps_the_reasons_points_already_have() -> None:
    wall = ManualWallTime()
    driver = GatedDriver(wall)
    points = points_of("gated")
    illegal = Quality.bad(Substatus.CONFIG_ERROR, "illegal data address (exception 2)")
    driver.point_quality[points[1].name] = illegal
    collector = Collector()
    engine = ScanEngine(
        [DeviceScan(driver, points, 1.0, timeout_s=5.0)],
        collector,
        ManualSimClock(wall, 1.0),
        rng=random.Random(5),
        wall=wall,
    )
    task = asyncio.create_task(engine.run())
    try:
        await wall.advance(2.0)
        assert latest(collector, points[0].name).quality.is_good
        driver.hold()
        await wall.advance(3.5)  # 3 periods without an answer, before the 5 s timeout
        lost = latest(collector, points[0].name).quality
        assert lost.substatus is Substatus.COMM_FAILURE
        assert latest(collector, points[2].name).quality.substatus is Substatus.COMM_FAILURE
        assert latest(collector, points[1].name).quality == illegal
        await wall.advance(5.0)  # the read is abandoned: a reported fact for every point
        assert latest(collector, points[1].name).quality.substatus is Substatus.TIMEOUT
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
