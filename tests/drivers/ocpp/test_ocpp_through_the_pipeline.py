"""A charge point started remotely through the center's one command pipeline reports energy.

The center is built from a site file whose OCPP device listens on a free port; a simulated
OCPP 1.6J charge point and an OCPP 2.0.1 shore-power point connect with their passwords from
the environment; an operator's select-before-operate start is confirmed by the transaction's
start and the session's energy arrives in the live values and the historian.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from controlcenter.model import CommandStatus, Role, User
from controlcenter.runtime.app import ControlCenter
from controlcenter.security.users import UserStore
from controlcenter.site.config import load_site
from drivers.ocpp.driver import OcppDriver
from historian.store import SqlHistorian
from plc_sim.charging.model import ChargePointModel, ev_charger, shore_power
from plc_sim.clock import SimClock
from plc_sim.servers.ocpp.client import OcppChargePointClient, OcppVersion
from tests.drivers.ocpp.ocpp_support import PASSWORDS

SITE = """\
site: {name: Harbour Town, latitude: 52.37, longitude: 4.90, timezone: Europe/Amsterdam}
devices:
  - name: charging.central
    protocol: ocpp
    listen: 127.0.0.1:0
    scan_interval: 1
    heartbeat_interval: 2
    timeout: 5
    charge_points:
      - {id: ev_16, password_env: ENV_EV, max_power_w: 22000}
      - {id: shore_201, password_env: ENV_SHORE, max_power_w: 7500000}
tags:
  - {name: charging.ev_16.c1.charge, device: charging.central, address: "cp:ev_16:1:charge",
     data_type: bool, writable: true}
  - {name: charging.ev_16.c1.status, device: charging.central, address: "cp:ev_16:1:status",
     data_type: string}
  - {name: charging.ev_16.c1.session_energy, device: charging.central,
     address: "cp:ev_16:1:session_energy_wh", unit: Wh}
  - {name: charging.shore_201.c1.limit, device: charging.central,
     address: "cp:shore_201:1:limit_w", unit: W, range: [0, 7500000], writable: true}
"""
ENERGY = "charging.ev_16.c1.session_energy"


@dataclass
class Harbour:
    """The center, its historian and the two simulated points."""

    center: ControlCenter
    store: SqlHistorian
    clients: dict[str, OcppChargePointClient]


@pytest_asyncio.fixture(loop_scope="session")
async def harbour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harbour]:
    monkeypatch.setenv("ENV_EV", PASSWORDS["ev_16"])
    monkeypatch.setenv("ENV_SHORE", PASSWORDS["shore_201"])
    site_path = tmp_path / "site.yaml"
    site_path.write_text(SITE, encoding="utf-8")
    site = await asyncio.to_thread(load_site, site_path)
    users = UserStore(tmp_path / "users.json")
    users.add_user("olga", "a long operator passphrase 1", Role.OPERATOR)
    store = await asyncio.to_thread(SqlHistorian, f"sqlite:///{tmp_path / 'center.db'}")
    clock = SimClock(speed=60.0)
    center = ControlCenter(site, store, clock, site_directory=tmp_path, users=users)
    stop = asyncio.Event()
    task = asyncio.create_task(center.run(stop))
    clients: dict[str, OcppChargePointClient] = {}
    physics: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(center.ready.wait(), 30)
        driver = center.drivers["charging.central"]
        assert isinstance(driver, OcppDriver)
        await _until("the central system listening", lambda: driver.listening)
        url = f"ws://127.0.0.1:{driver.port}/ocpp"
        ev = ev_charger("ev_16", connectors=1)
        quay = shore_power("shore_201")
        versions: tuple[tuple[ChargePointModel, OcppVersion], ...] = ((ev, "1.6"), (quay, "2.0.1"))
        for model, version in versions:
            model.arrivals_per_hour = 0.0
            client = OcppChargePointClient(
                model,
                url,
                PASSWORDS[model.id],
                clock,
                version=version,
                meter_interval_s=30.0,
            )
            clients[model.id] = client
            await client.start()
        physics = asyncio.create_task(_physics(clock, clients))
        for client in clients.values():
            await asyncio.wait_for(client.connected.wait(), 10)
        yield Harbour(center, store, clients)
    finally:
        if physics is not None:
            physics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await physics
        for client in clients.values():
            await client.stop()
        stop.set()
        await asyncio.wait_for(task, 30)
        await asyncio.to_thread(store.close)


async def _physics(clock: SimClock, clients: dict[str, OcppChargePointClient]) -> None:
    last = clock.now()
    while True:
        await asyncio.sleep(0.1)
        now = clock.now()
        for client in clients.values():
            client.model.step((now - last).total_seconds(), now)
            client.wake()
        last = now


async def _until(what: str, found: Callable[[], object], timeout_s: float = 20.0) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await asyncio.to_thread(found)
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_a_remote_start_through_the_pipeline_reports_energy(harbour: Harbour) -> None:
    center = harbour.center
    olga = User("olga", Role.OPERATOR)
    harbour.clients["ev_16"].model.plug_in(1, authorise=False, soc=0.3)
    harbour.clients["ev_16"].wake()
    await _until(
        "a vehicle waiting",
        lambda: center.live.latest("charging.ev_16.c1.status").value == "Preparing",
    )
    selection = await center.commands.select("charging.ev_16.c1.charge", olga)
    result = await center.commands.operate(selection.selection_id, olga, True, "remote start")
    assert result.status is CommandStatus.CONFIRMED, result.reason
    assert result.readback is True
    await _until(
        "the session's energy at the center",
        lambda: (
            (s := center.live.latest(ENERGY)).quality.is_good
            and isinstance(s.value, float)
            and s.value > 0
        ),
    )
    await _until(
        "the session's energy in the historian",
        lambda: any(
            isinstance(s.value, float) and s.value > 0 for s in harbour.store.read_raw(ENERGY)
        ),
    )
    # A limit on the OCPP 2.0.1 quay, through the same pipeline, reads back the schedule.
    selection = await center.commands.select("charging.shore_201.c1.limit", olga)
    result = await center.commands.operate(selection.selection_id, olga, 2.5e6, "grid limit")
    assert result.status is CommandStatus.CONFIRMED, result.reason
    assert harbour.clients["shore_201"].model.connector(1).limit_w == pytest.approx(2.5e6)
