"""A central system on a free port and simulated charge points that connect to it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from controlcenter.model import DataType, Sample, TagDef
from drivers.ocpp.address import Quantity, parse_address
from drivers.ocpp.config import ChargePointConfig, OcppCentralSystemConfig
from drivers.ocpp.driver import OcppDriver
from plc_sim.charging.model import ChargePointModel, ev_charger, shore_power
from plc_sim.clock import SimClock
from plc_sim.servers.ocpp.client import OcppChargePointClient, OcppVersion

DEVICE = "charging.central"
PASSWORDS = {"ev_16": "pw-ev16-Xq3", "ev_201": "pw-ev201-Zr8", "shore_201": "pw-shore-K9m"}
"""Charge point -> password; each is put in its own environment variable by ``central``."""


def env_name(charge_point: str) -> str:
    """The environment variable holding a charge point's password in these tests."""
    return f"CC_TEST_OCPP_PW_{charge_point.upper()}"


def tag(charge_point: str, connector: int, quantity: str) -> TagDef:
    """A tag of one quantity of one connector."""
    address = f"cp:{charge_point}:{connector}:{quantity}"
    kind = {
        Quantity.STATUS: DataType.STRING,
        Quantity.CONNECTED: DataType.BOOL,
        Quantity.SESSION_ACTIVE: DataType.BOOL,
        Quantity.CHARGE: DataType.BOOL,
    }.get(parse_address(address).quantity, DataType.FLOAT)
    return TagDef(
        name=f"charging.{charge_point}.c{connector}.{quantity}",
        device=DEVICE,
        address=address,
        data_type=kind,
        writable=quantity in ("charge", "limit_w"),
    )


@dataclass
class Site:
    """The central system, its clock, and the charge points connected to it."""

    driver: OcppDriver
    clock: SimClock
    models: dict[str, ChargePointModel] = field(default_factory=dict)
    clients: dict[str, OcppChargePointClient] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Where the charge points connect."""
        return f"ws://127.0.0.1:{self.driver.port}/ocpp"


def config(**overrides: object) -> OcppCentralSystemConfig:
    """The central system of these tests: three charge points, a 1 s heartbeat."""
    points = (
        ChargePointConfig("ev_16", env_name("ev_16"), 22_000.0),
        ChargePointConfig("ev_201", env_name("ev_201"), 150_000.0),
        ChargePointConfig("shore_201", env_name("shore_201"), 7.5e6),
    )
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "charge_points": points,
        "heartbeat_interval_s": 1,
        "silence_factor": 2.0,
        "timeout_s": 3.0,
    }
    settings.update(overrides)
    return OcppCentralSystemConfig(**settings)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def central(**overrides: object) -> AsyncIterator[Site]:
    """A listening central system on a free port (passwords in the environment)."""
    for charge_point, password in PASSWORDS.items():
        os.environ[env_name(charge_point)] = password
    clock = SimClock(speed=60.0)
    driver = OcppDriver(DEVICE, config(**overrides), clock)
    await driver.connect()
    site = Site(driver, clock)
    physics = asyncio.create_task(_physics(site))
    try:
        yield site
    finally:
        physics.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await physics
        for client in site.clients.values():
            await client.stop()
        await driver.close()


async def _physics(site: Site) -> None:
    """Step every model in simulated time (0.1 s wall = 6 s simulated at speed 60)."""
    last = site.clock.now()
    while True:
        await asyncio.sleep(0.1)
        now = site.clock.now()
        for charge_point, model in site.models.items():
            model.step((now - last).total_seconds(), now)
            site.clients[charge_point].wake()
        last = now


async def connect_point(
    site: Site, charge_point: str, version: OcppVersion, *, password: str | None = None
) -> OcppChargePointClient:
    """Connect a simulated charge point (no random arrivals) and wait until it booted."""
    model = (
        shore_power(charge_point)
        if charge_point.startswith("shore")
        else ev_charger(charge_point, power_w=22_000.0 if charge_point == "ev_16" else 150_000.0)
    )
    model.arrivals_per_hour = 0.0
    client = OcppChargePointClient(
        model,
        site.url,
        PASSWORDS[charge_point] if password is None else password,
        site.clock,
        version=version,
        meter_interval_s=30.0,
    )
    site.models[charge_point] = model
    site.clients[charge_point] = client
    await client.start()
    if password is None:
        await asyncio.wait_for(client.connected.wait(), 5.0)
        await until(lambda: _heard(site, charge_point), "status after boot")
    return client


def _heard(site: Site, charge_point: str) -> bool:
    station = site.driver.station(charge_point)
    return station is not None and station.connected and bool(station.connectors)


async def until(condition: Callable[[], object], what: str, timeout_s: float = 8.0) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout_s} s"
        await asyncio.sleep(0.02)


async def read_one(site: Site, point: TagDef) -> Sample:
    """One point's current sample."""
    (sample,) = await site.driver.read([point])
    return sample
