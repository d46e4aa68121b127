"""The three-node NATS cluster the scale-out tests stand on: a replicated stream keeps every
message, once, through the crash of its leader and the node's return."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
import pytest_asyncio
from nats.aio.client import Client

from tests.nats_cluster import NatsCluster, NatsClusterError, nats_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

PUBLISH_DEADLINE_S = 30.0


@pytest_asyncio.fixture(loop_scope="session")
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    """A started three-node cluster, stopped after the test."""
    async with nats_cluster(tmp_path / "nats") as started:
        yield started


async def _quiet(_error: Exception) -> None:
    """Connection errors are expected while a node is down: the client fails over."""


async def _client(cluster: NatsCluster) -> Client:
    return await nats.connect(
        cluster.urls, reconnect_time_wait=0.2, max_reconnect_attempts=-1, error_cb=_quiet
    )


async def _publish_until_acked(client: Client, subject: str, index: int) -> None:
    """Publish one message with its id, retrying until a stream leader acknowledges it."""
    stream = client.jetstream()
    deadline = time.monotonic() + PUBLISH_DEADLINE_S
    while True:
        try:
            await stream.publish(
                subject, str(index).encode(), timeout=1.0, headers={"Nats-Msg-Id": str(index)}
            )
            return
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_cluster_elects_a_meta_leader_every_node_agrees_on(cluster: NatsCluster) -> None:
    leader = await cluster.meta_leader()
    assert leader in {node.name for node in cluster.nodes}
    assert all(node.running for node in cluster.nodes)
    assert len(set(cluster.urls)) == 3


async def test_killing_the_stream_leader_loses_and_repeats_nothing(cluster: NatsCluster) -> None:
    client = await _client(cluster)
    try:
        stream = client.jetstream()
        await stream.add_stream(name="FAILOVER", subjects=["failover.>"], num_replicas=3)
        for index in range(200):
            await _publish_until_acked(client, "failover.a", index)
        info = await stream.stream_info("FAILOVER")
        assert info.cluster is not None and info.cluster.leader is not None
        victim = cluster.node(info.cluster.leader)
        await cluster.kill(victim)
        assert not victim.running
        # The flow goes on while the stream elects a new leader among the two left; a message
        # sent twice around the failover (no answer, then a retry) carries the same id.
        for index in range(200, 400):
            await _publish_until_acked(client, "failover.a", index)
        await cluster.restart(victim)
        assert victim.running and victim.starts == 2
        info = await stream.stream_info("FAILOVER")
        assert info.state.messages == 400
        assert info.cluster is not None
        # Every peer caught up again, the restarted one included.
        deadline = time.monotonic() + 20.0
        while not all(peer.current for peer in info.cluster.replicas or []):
            assert time.monotonic() < deadline, info.cluster
            await asyncio.sleep(0.2)
            info = await stream.stream_info("FAILOVER")
        consumer = await stream.pull_subscribe("failover.a", durable="reader")
        seen: list[int] = []
        while len(seen) < 400:
            for message in await consumer.fetch(100, timeout=5.0):
                seen.append(int(message.data))
                await message.ack()
        assert seen == list(range(400))
    finally:
        await client.close()


async def test_restarting_a_running_node_is_refused(cluster: NatsCluster) -> None:
    with pytest.raises(NatsClusterError, match="still running"):
        await cluster.restart(cluster.nodes[0])
    with pytest.raises(KeyError):
        cluster.node("no-such-node")
