"""An edge collector for the simulated city's water network, publishing to the machine's NATS
server, and a center taking the stream: delivery, commands through the edge, link cuts of two
seconds and of a minute and a center restart with nothing lost and nothing twice, and a command
to a stopped edge refused at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

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
from tests.nats_kit import (
    Relay,
    RunningCenter,
    delete_stream,
    nats_url,
    stored_once,
    unique_root,
    until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EDGE = "district-1"
RUN = "water.ps1.pump1.run_cmd"
SPEED = "water.ps1.pump1.speed"
# Raw (uncompressed) tags: every sample the edge publishes must be stored once.
WATCHED = ("water.ps1.pump1.running", "water.ps1.pump1.fault", "water.ps2.pump1.running")
LONG_CUT_S = 60.0
"""A long outage in real seconds: what it tests is the client's reconnect policy (a finite
number of reconnect attempts, ping and acknowledgement timeouts) and the spool's growth."""
LINK_LOSS_NOTICED_S = 35.0
"""A link that carries nothing is known to be down within this (the link's pings)."""


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
    _running: RunningCenter | None = None
    _edge_stop: asyncio.Event = field(default_factory=asyncio.Event)
    _edge_task: asyncio.Task[None] | None = None

    async def start_edge(self) -> None:
        """Start the edge collector (once per module)."""
        self._edge_task = asyncio.create_task(self.edge.run(self._edge_stop))
        await asyncio.wait_for(self.edge.ready.wait(), 30)

    async def stop_edge(self) -> None:
        """Stop the edge collector if it runs."""
        if self._edge_task is not None:
            self._edge_stop.set()
            await asyncio.wait_for(self._edge_task, 60)
            self._edge_task = None

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
        self._running = RunningCenter(center)
        self.center = await self._running.start()
        return center

    async def stop_center(self) -> None:
        """Stop the running center cleanly."""
        assert self._running is not None
        await self._running.stop()
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
        await state.start_edge()
        await state.start_center()
        try:
            yield state
        finally:
            if state.center is not None:
                await state.stop_center()
            await state.stop_edge()
            await asyncio.to_thread(store.close)
            await delete_stream(edge.subjects)
    finally:
        await relay.close()
        await city.stop()


async def _all_stored(kit: EdgeCity, timeout_s: float = 40.0) -> None:
    snapshot = list(kit.published)
    assert len(snapshot) > 10
    await until(
        "every published sample stored once",
        lambda: not stored_once(kit.store, WATCHED, snapshot) or None,
        timeout_s,
    )
    assert stored_once(kit.store, WATCHED, snapshot) == []


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
    # Refused before anything reached the device: rejected, as the center's own interlocks do.
    assert status == CommandStatus.REJECTED.value
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


@pytest.mark.timeout(150)
async def test_a_minute_long_link_cut_loses_nothing_and_stores_nothing_twice(
    kit: EdgeCity,
) -> None:
    publisher = kit.edge.publisher
    before = len(kit.published)
    # A dead route, not a reset: the edge hears nothing and must find out by itself.
    kit.relay.stall()
    cut_at = time.monotonic()
    await until("the edge spooling", lambda: publisher.metrics().spool_depth > 0)
    # The outage itself, a minute of real time: the edge keeps acquiring and its spool grows.
    noticed_after: float | None = None
    depths = []
    while (elapsed := time.monotonic() - cut_at) < LONG_CUT_S:
        if noticed_after is None and not kit.edge.link.connected:
            noticed_after = elapsed
        elif noticed_after is not None:
            assert not kit.edge.link.connected, "the edge reached NATS through a dead route"
        depths.append(publisher.metrics().spool_depth)
        await asyncio.sleep(1.0)
    assert noticed_after is not None, "the edge never noticed its dead link"
    assert noticed_after < LINK_LOSS_NOTICED_S, f"noticed after {noticed_after:.0f} s"
    during = len(kit.published) - before
    # Every watched tag is scanned every 0.5 s: three tags for a minute, all of it spooled.
    assert during > len(WATCHED) * LONG_CUT_S
    assert depths[-1] > depths[0] > 0
    assert publisher.metrics().memory_depth < 100, "memory is moved to the spool while cut"
    kit.relay.restore()
    await until("the edge reconnected", lambda: kit.edge.link.connected, 20.0)
    await until("the spool emptied", lambda: publisher.metrics().spool_depth == 0, 40.0)
    await _all_stored(kit)
    assert publisher.metrics().dropped == 0


async def test_a_command_to_a_stopped_edge_is_refused_fast_and_journaled(kit: EdgeCity) -> None:
    center = kit.center
    assert center is not None
    await kit.stop_edge()
    started = time.monotonic()
    status, reason = await _operate(center, SPEED, 17.0)
    elapsed = time.monotonic() - started
    assert status in {CommandStatus.REJECTED.value, CommandStatus.FAILED.value}
    assert "edge district-1 unreachable" in reason
    assert elapsed < 2.0, f"refused after {elapsed:.1f} s"
    journaled = [
        result for result in kit.store.read_commands(tag=SPEED) if result.command.value == 17.0
    ]
    assert [(r.status.value, r.reason) for r in journaled] == [(status, reason)]
