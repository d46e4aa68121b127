"""An edge collector for the simulated city's water network and a center, both on a three-node
NATS cluster (every node's URL, as ``--nats`` takes them), the site's stream kept in three
replicas: delivery, the stream's leader node killed under flow, then the node and the center
restarted, with every published sample stored once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from controlcenter.clock import WallClock
from controlcenter.model import Sample
from controlcenter.runtime.app import ControlCenter
from controlcenter.runtime.center_transport import TransportOptions
from controlcenter.runtime.demo_site import render_demo_site, write_demo_site
from controlcenter.runtime.edge import EdgeCollector
from controlcenter.site.config import SiteConfig, load_site
from historian.store import SqlHistorian
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from tests.nats_cluster import (
    NatsCluster,
    NatsNode,
    nats_cluster,
    stream_info,
    stream_leader,
    wait_replicas_current,
)
from tests.nats_kit import RunningCenter, stored_once, unique_root, until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

EDGE = "district-1"
# Raw (uncompressed) tags: every sample the edge publishes must be stored once.
WATCHED = ("water.ps1.pump1.running", "water.ps1.pump1.fault", "water.ps2.pump1.running")


@dataclass
class ClusterCity:
    """The city, one edge owning its water network and a center, on a three-node cluster."""

    cluster: NatsCluster
    site: SiteConfig
    options: TransportOptions
    edge: EdgeCollector
    store: SqlHistorian
    tmp: Path
    published: list[Sample] = field(default_factory=list)
    center: ControlCenter | None = None
    _running: RunningCenter | None = None

    @property
    def stream(self) -> str:
        """The site's stream."""
        return self.edge.subjects.stream

    async def start_center(self) -> ControlCenter:
        """Start a center on the shared historian and consumer."""
        center = ControlCenter(
            self.site,
            self.store,
            WallClock(),
            site_directory=self.tmp / "site",
            nats_url=self.cluster.url,
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

    async def publishing_on(self, samples: int, timeout_s: float = 30.0) -> None:
        """Wait until the edge has published ``samples`` more watched samples."""
        target = len(self.published) + samples
        await until(f"{samples} more samples published", lambda: len(self.published) >= target)
        await until(
            "the edge's queue and spool emptied",
            lambda: self.edge.publisher.metrics().spool_depth == 0,
            timeout_s,
        )

    async def all_stored(self, timeout_s: float = 40.0) -> None:
        """Wait until every watched sample published so far is stored exactly once."""
        snapshot = list(self.published)
        assert len(snapshot) > 10
        await until(
            "every published sample stored once",
            lambda: not stored_once(self.store, WATCHED, snapshot) or None,
            timeout_s,
        )
        assert stored_once(self.store, WATCHED, snapshot) == []
        assert self.edge.publisher.metrics().dropped == 0


def _edge_site(site: SiteConfig) -> SiteConfig:
    """The site with its water devices owned by the edge."""
    devices = [device.model_copy(update={"edge": EDGE}) for device in site.devices]
    return site.model_copy(update={"devices": devices})


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClusterCity]:
    tmp = tmp_path_factory.mktemp("edge-cluster")
    clock = SimClock(speed=1.0, start=datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    city = SimulatedCity(clock, CityOptions(seed=11, domains=frozenset({"water"})))
    await city.start()
    try:
        async with nats_cluster(tmp / "nats") as cluster:
            site_path = tmp / "site" / "site.yaml"
            site_path.parent.mkdir(parents=True)
            write_demo_site(site_path, render_demo_site(city, scan_interval_s=0.5))
            site = _edge_site(await asyncio.to_thread(load_site, site_path))
            # What ``--nats`` with the three nodes' URLs gives the edge and the center.
            options = TransportOptions.for_nats(cluster.url, root=unique_root())
            edge = EdgeCollector(
                site, EDGE, cluster.url, WallClock(), spool_dir=tmp / "spool", options=options
            )
            store = await asyncio.to_thread(SqlHistorian, f"sqlite:///{tmp / 'center.db'}")
            state = ClusterCity(cluster, site, options, edge, store, tmp)
            watched = set(WATCHED)
            edge.bus.subscribe(
                "test recorder",
                lambda samples: state.published.extend(s for s in samples if s.tag in watched),
            )
            edge_stop = asyncio.Event()
            edge_task = asyncio.create_task(edge.run(edge_stop))
            try:
                await asyncio.wait_for(edge.ready.wait(), 30)
                await state.start_center()
                yield state
            finally:
                if state.center is not None:
                    await state.stop_center()
                edge_stop.set()
                await asyncio.wait_for(edge_task, 60)
                await asyncio.to_thread(store.close)
    finally:
        await city.stop()


def test_several_servers_in_nats_mean_a_stream_of_three_replicas() -> None:
    cluster = "nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://10.0.0.3:4222"
    assert TransportOptions.for_nats(cluster).stream.replicas == 3
    assert TransportOptions.for_nats("nats://10.0.0.1:4222").stream.replicas == 1
    assert TransportOptions.for_nats(None).stream.replicas == 1
    assert TransportOptions.for_nats(cluster, replicas=5).stream.replicas == 5
    with pytest.raises(ValueError, match="1 to 5 replicas"):
        TransportOptions.for_nats(cluster, replicas=0)


async def test_samples_reach_the_historian_through_a_stream_of_three_replicas(
    kit: ClusterCity,
) -> None:
    assert kit.options.stream.replicas == 3
    await until("tank levels in the historian", lambda: kit.store.read_raw("water.tank1.level"))
    info = await wait_replicas_current(kit.cluster, kit.stream, 3)
    assert info.config.num_replicas == 3
    assert info.state.messages > 0
    await kit.publishing_on(20)
    await kit.all_stored()


async def _killed_leader(kit: ClusterCity) -> NatsNode:
    """Kill the stream's leader node under flow and wait for the flow to go on without it."""
    await kit.publishing_on(10)
    victim = await stream_leader(kit.cluster, kit.stream)
    await kit.cluster.kill(victim)
    assert not victim.running
    successor = await stream_leader(kit.cluster, kit.stream)
    assert successor is not victim
    return victim


async def test_killing_the_stream_leader_under_flow_loses_and_repeats_nothing(
    kit: ClusterCity,
) -> None:
    victim = await _killed_leader(kit)
    # Publishing goes on on the two nodes left: samples made after the kill are stored too.
    await kit.publishing_on(30)
    await kit.all_stored()
    info = await stream_info(kit.cluster, kit.stream)
    assert info.config.num_replicas == 3
    assert info.cluster is not None and info.cluster.leader != victim.name


async def test_the_node_and_the_center_restarted_lose_nothing(kit: ClusterCity) -> None:
    down = [node for node in kit.cluster.nodes if not node.running]
    victim = down[0] if down else await _killed_leader(kit)
    await kit.stop_center()
    await kit.cluster.restart(victim)
    await kit.publishing_on(20)
    await kit.start_center()
    await kit.all_stored()
    # The restarted node caught up: three copies again, every one current.
    await wait_replicas_current(kit.cluster, kit.stream, 3)
