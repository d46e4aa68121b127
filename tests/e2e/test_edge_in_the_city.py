"""An edge collector for the simulated city's water network, publishing to the machine's NATS
server, and a center taking the stream: delivery, commands through the edge, a link cut and a
center restart with nothing lost and nothing twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from controlcenter.clock import WallClock
from controlcenter.model import CommandStatus, Role, Sample, User
from controlcenter.runtime.app import ControlCenter
from controlcenter.runtime.center_transport import TransportOptions
from controlcenter.runtime.demo_site import render_demo_site, write_demo_site
from controlcenter.runtime.edge import EdgeCollector
from controlcenter.security.users import UserStore
from controlcenter.site.config import InterlockConfig, SiteConfig, load_site
from historian.store import SqlHistorian
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from tests.nats_kit import Relay, delete_stream, nats_url, unique_root

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EDGE = "district-1"
RUN = "water.ps1.pump1.run_cmd"
SPEED = "water.ps1.pump1.speed"
# Raw (uncompressed) tags: every sample the edge publishes must be stored once.
WATCHED = ("water.ps1.pump1.running", "water.ps1.pump1.fault", "water.ps2.pump1.running")
_T = TypeVar("_T")


async def until(what: str, probe: Callable[[], _T | None], timeout_s: float = 30.0) -> _T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@dataclass
class EdgeCity:
    """The city, one edge owning its water network, and a center on NATS."""

    city: SimulatedCity
    site: SiteConfig
    options: TransportOptions
    relay: Relay
    edge: EdgeCollector
    store: SqlHistorian
    users: UserStore
    tmp: Path
    published: list[Sample] = field(default_factory=list)
    center: ControlCenter | None = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    async def start_center(self) -> ControlCenter:
        """Start a center on the shared historian and consumer."""
        center = ControlCenter(
            self.site,
            self.store,
            WallClock(),
            site_directory=self.tmp / "site",
            users=self.users,
            nats_url=nats_url(),
            transport=self.options,
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(center.run(self._stop))
        await asyncio.wait_for(center.ready.wait(), 60)
        assert center.transport is not None and center.transport.ingest is not None
        await asyncio.wait_for(center.transport.ingest.ready.wait(), 30)
        self.center = center
        return center

    async def stop_center(self) -> None:
        """Stop the running center cleanly."""
        assert self._stop is not None and self._task is not None
        self._stop.set()
        await asyncio.wait_for(self._task, 60)
        self.center = None


def _edge_site(site: SiteConfig) -> SiteConfig:
    """The site with its water devices owned by the edge."""
    devices = [device.model_copy(update={"edge": EDGE}) for device in site.devices]
    return site.model_copy(update={"devices": devices})


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EdgeCity]:
    tmp = tmp_path_factory.mktemp("edge-city")
    clock = SimClock(speed=1.0, start=datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    city = SimulatedCity(clock, CityOptions(seed=7, domains=frozenset({"water"})))
    await city.start()
    relay = Relay(nats_url())
    await relay.start()
    options = TransportOptions(root=unique_root())
    try:
        site_path = tmp / "site" / "site.yaml"
        site_path.parent.mkdir(parents=True)
        write_demo_site(site_path, render_demo_site(city, scan_interval_s=0.5))
        site = _edge_site(await asyncio.to_thread(load_site, site_path))
        # The edge has one interlock more than the center: it refuses on its own.
        edge_site = site.model_copy(
            update={
                "interlocks": [
                    *site.interlocks,
                    InterlockConfig(
                        name="water.ps1.local_permissive",
                        tags=[SPEED],
                        block_when=f"{SPEED} > 0.0 && {SPEED} < 0.0",
                        message="never blocks: proves the edge evaluates its own",
                    ),
                    InterlockConfig(
                        name="water.ps1.maintenance_lock",
                        tags=[RUN],
                        block_when="water.ps1.pump1.fault == false",
                        applies_to="false",
                        message="pump 1 may not be stopped from the center while healthy",
                    ),
                ]
            }
        )
        edge = EdgeCollector(
            edge_site, EDGE, relay.url, WallClock(), spool_dir=tmp / "spool", options=options
        )
        store = await asyncio.to_thread(SqlHistorian, f"sqlite:///{tmp / 'center.db'}")
        users = UserStore(tmp / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
        users.add_user("olga", "a long test passphrase 1", Role.OPERATOR)
        state = EdgeCity(city, site, options, relay, edge, store, users, tmp)
        watched = set(WATCHED)
        edge.bus.subscribe(
            "test recorder",
            lambda samples: state.published.extend(s for s in samples if s.tag in watched),
        )
        edge_stop = asyncio.Event()
        edge_task = asyncio.create_task(edge.run(edge_stop))
        await asyncio.wait_for(edge.ready.wait(), 30)
        await state.start_center()
        try:
            yield state
        finally:
            if state.center is not None:
                await state.stop_center()
            edge_stop.set()
            await asyncio.wait_for(edge_task, 60)
            await asyncio.to_thread(store.close)
            await delete_stream(edge.subjects)
    finally:
        await relay.close()
        await city.stop()


def _stored_once(kit: EdgeCity, samples: Sequence[Sample]) -> list[str]:
    """What is wrong with the historian's copy of ``samples``: missing or extra rows."""
    problems = []
    for tag in WATCHED:
        sent = sorted({s.server_time for s in samples if s.tag == tag})
        stored = [s.server_time for s in kit.store.read_raw(tag)]
        if len(stored) != len(set(stored)):
            problems.append(f"{tag}: stored twice")
        missing = set(sent) - set(stored)
        if missing:
            problems.append(f"{tag}: {len(missing)} of {len(sent)} missing")
    return problems


async def _all_stored(kit: EdgeCity, timeout_s: float = 40.0) -> None:
    snapshot = list(kit.published)
    assert len(snapshot) > 10
    await until(
        "every published sample stored once",
        lambda: not _stored_once(kit, snapshot) or None,
        timeout_s,
    )
    assert _stored_once(kit, snapshot) == []


async def test_values_reach_the_center_and_its_historian(kit: EdgeCity) -> None:
    center = kit.center
    assert center is not None
    # The center polls nothing of the edge's devices: every value comes from the stream.
    assert center.scan_engine.scans == ()

    def good_level() -> Sample | None:
        latest = center.live.latest("water.tank1.level")
        return latest if latest.quality.is_good else None

    sample = await until("a Good tank level at the center", good_level)
    assert isinstance(sample.value, float)
    await until("tank levels in the historian", lambda: kit.store.read_raw("water.tank1.level"))
    await until("the edge's diagnostics", center.devices.diagnostics)
    names = {d.device for d in center.devices.diagnostics()}
    assert "water.ps1_rtu" in names
    await until(
        "the edge's start in the journal",
        lambda: [e for e in kit.store.read_events() if "edge district-1 started" in e.message],
    )


async def _operate(center: ControlCenter, tag: str, value: bool | float) -> tuple[str, str]:
    olga = User("olga", Role.OPERATOR)
    selection = await center.commands.select(tag, olga)
    result = await center.commands.operate(selection.selection_id, olga, value, "edge e2e")
    return result.status.value, result.reason


async def test_a_command_goes_through_the_edge_and_is_read_back(kit: EdgeCity) -> None:
    center = kit.center
    assert center is not None
    started = time.monotonic()
    status, reason = await _operate(center, SPEED, 42.0)
    assert (status, reason) == (CommandStatus.CONFIRMED.value, "readback matches")
    assert time.monotonic() - started < 2.0
    await until(
        "the new speed back at the center",
        lambda: center.live.latest(SPEED).value == pytest.approx(42.0),
    )
    status, reason = await _operate(center, RUN, True)
    assert status == CommandStatus.CONFIRMED.value, reason


async def test_an_edge_interlock_refuses_what_the_center_let_through(kit: EdgeCity) -> None:
    center = kit.center
    assert center is not None
    # The center's own interlocks do not cover stopping the pump; the edge's does.
    assert center.interlocks.blocking(RUN, False) is None
    status, reason = await _operate(center, RUN, False)
    assert status == CommandStatus.FAILED.value
    assert "interlock at edge district-1: water.ps1.maintenance_lock" in reason
    # The edge journals its refusal; it reaches the center's journal through the stream.
    await until(
        "the edge's refusal in the center's journal",
        lambda: [
            e
            for e in kit.store.read_events()
            if "at edge district-1: rejected" in e.message and "maintenance_lock" in e.message
        ],
    )


async def test_a_link_cut_loses_nothing_and_stores_nothing_twice(kit: EdgeCity) -> None:
    kit.relay.cut()
    await until("the edge spooling", lambda: kit.edge.publisher.metrics().spool_depth > 0)
    await asyncio.sleep(2.0)  # the outage itself: the edge keeps polling meanwhile
    spooled = kit.edge.publisher.metrics().spool_depth
    assert spooled > 0
    kit.relay.restore()
    await until("the spool emptied", lambda: kit.edge.publisher.metrics().spool_depth == 0)
    await _all_stored(kit)
    assert kit.edge.publisher.metrics().dropped == 0


async def test_a_center_restart_loses_nothing(kit: EdgeCity) -> None:
    await kit.stop_center()
    before = len(kit.published)
    await until("the edge publishing on", lambda: len(kit.published) > before + 20)
    await kit.start_center()
    await _all_stored(kit)
