"""Test support: a three-node NATS JetStream cluster on loopback ports, started per test module.

The harness itself lives in ``controlcenter.bench.nats_cluster`` (``controlcenter bench scaleout
--cluster`` starts the same cluster); this module gives the tests their entry points and a few
JetStream look-ups the cluster tests share.
"""

from __future__ import annotations

import asyncio
import time

import nats
import nats.errors
from nats.js.api import StreamInfo

from controlcenter.bench.nats_cluster import (
    NatsCluster,
    NatsClusterError,
    NatsNode,
    nats_cluster,
    nats_server_binary,
)

__all__ = [
    "NatsCluster",
    "NatsClusterError",
    "NatsNode",
    "nats_cluster",
    "nats_server_binary",
    "stream_info",
    "stream_leader",
    "wait_replicas_current",
]


async def _quiet(_error: Exception) -> None:
    """Connection errors are expected while a node is down: the client fails over."""


async def stream_info(cluster: NatsCluster, stream: str, timeout_s: float = 20.0) -> StreamInfo:
    """The stream's info as its current leader reports it, asked through any running node.

    Retried until the deadline: while a stream elects a new leader, nobody answers."""
    urls = [node.url for node in cluster.nodes if node.running]
    client = await nats.connect(urls, connect_timeout=1, max_reconnect_attempts=2, error_cb=_quiet)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                # A short wait per question: during an election, asking again soon finds
                # the new leader sooner than one long wait would.
                return await client.jetstream(timeout=1.0).stream_info(stream)
            except (nats.errors.Error, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await client.close()


async def stream_leader(cluster: NatsCluster, stream: str, timeout_s: float = 20.0) -> NatsNode:
    """The running node that leads ``stream`` now (waits while it has none)."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = await stream_info(cluster, stream, timeout_s)
        leader = info.cluster.leader if info.cluster is not None else None
        if leader is not None and cluster.node(leader).running:
            return cluster.node(leader)
        assert time.monotonic() < deadline, f"stream {stream} has no running leader: {info}"
        await asyncio.sleep(0.2)


async def wait_replicas_current(
    cluster: NatsCluster, stream: str, replicas: int, timeout_s: float = 20.0
) -> StreamInfo:
    """Wait until ``stream`` has a leader and ``replicas - 1`` followers, every one current."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = await stream_info(cluster, stream, timeout_s)
        peers = (info.cluster.replicas or []) if info.cluster is not None else []
        if (
            info.cluster is not None
            and info.cluster.leader is not None
            and len(peers) == replicas - 1
            and all(peer.current and not peer.offline for peer in peers)
        ):
            return info
        assert time.monotonic() < deadline, f"replicas of {stream} not current: {info.cluster}"
        await asyncio.sleep(0.2)
